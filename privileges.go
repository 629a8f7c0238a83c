package dockercr

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability numbers from linux/capability.h.
const (
	capSysAdmin          = 21
	capCheckpointRestore = 40 // since Linux 5.9
)

// checkPrivileges fails with [ErrNotPermitted] unless the caller can run
// CRIU as CRIU itself requires without --unprivileged: effective UID 0
// and CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE in the effective set.
// Checking here turns CRIU's console message into a typed error before
// any process is touched.
func checkPrivileges() error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("%w: criu needs root, running as uid %d", ErrNotPermitted, uid)
	}
	eff, err := effectiveCaps("/proc/self/status")
	if err != nil {
		// Without /proc we cannot tell; let CRIU decide.
		return nil
	}
	if eff&(1<<capSysAdmin) == 0 && eff&(1<<capCheckpointRestore) == 0 {
		return fmt.Errorf("%w: criu needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE (effective set %#x)",
			ErrNotPermitted, eff)
	}
	return nil
}

// effectiveCaps reads the CapEff mask from a /proc/PID/status file.
func effectiveCaps(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff in %s", path)
}
