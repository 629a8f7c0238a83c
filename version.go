package dockercr

import (
	"fmt"

	"github.com/docker-cr/dockercr/internal/criuver"
)

// Version is a CRIU release number.
type Version struct {
	Major, Minor, Patch int
}

// MinCRIUVersion is the oldest CRIU this package accepts. CRIU 3.x
// predates the vDSO layouts of current kernels (3.17 fails `criu check`
// on 6.x kernels that map [vvar_vclock]), and every RPC field the
// backends set exists in 4.0. Kernel-specific needs beyond that (4.2 for
// TCP sockets on kernel 6.18) are left to CRIU's own checks.
var MinCRIUVersion = Version{Major: 4, Minor: 0}

// String returns the version as CRIU prints it, such as "4.2.1".
func (v Version) String() string {
	if v.Patch == 0 {
		return fmt.Sprintf("%d.%d", v.Major, v.Minor)
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// AtLeast reports whether v is the same as or newer than min.
func (v Version) AtLeast(min Version) bool {
	if v.Major != min.Major {
		return v.Major > min.Major
	}
	if v.Minor != min.Minor {
		return v.Minor > min.Minor
	}
	return v.Patch >= min.Patch
}

// IsZero reports whether v is unset.
func (v Version) IsZero() bool { return v == Version{} }

// parseVersionOutput reads the output of `criu --version`.
func parseVersionOutput(out string) (Version, error) {
	p, err := criuver.Parse(out)
	if err != nil {
		return Version{}, err
	}
	return Version{Major: p.Major, Minor: p.Minor, Patch: p.Patch}, nil
}
