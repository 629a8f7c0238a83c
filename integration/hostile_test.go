package integration

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-cr/dockercr"
)

// hostileNames are checkpoint names that must be refused: control
// characters, lengths past the limit, and names that are paths.
var hostileNames = []string{
	"cp\n", "c\tp", "c\x00p", "c\x7fp", "cp\x1b[2J", "cp\r",
	strings.Repeat("n", 129), strings.Repeat("n", 4096),
	"a/b", "../x", "/abs", ".", "..", ".hidden", "x/..", "",
	"../../../../tmp/dcr-it-hostile-escape",
}

// TestHostileNames checkpoints a running container under each hostile
// name: every call fails with ErrInvalidName before anything is
// written, the base directory is not even created, and the container
// runs on, thawed.
func TestHostileNames(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	c := f.tRun(t, dockerSpec{Args: []string{"counter", "-interval", "50ms"}})
	d := f.tDocker(t)
	for _, name := range hostileNames {
		_, err := d.Checkpoint(f.ctx, c.Name, name)
		if !errors.Is(err, dockercr.ErrInvalidName) {
			t.Errorf("checkpoint name %q: %v, want ErrInvalidName", name, err)
		}
	}
	tDockerNothingUnder(t, filepath.Dir(f.base))
	if _, err := os.Lstat("/tmp/dcr-it-hostile-escape"); err == nil {
		t.Error("a checkpoint name escaped to /tmp/dcr-it-hostile-escape")
	}
	c.tRunningThawed(t)
}

// hostileBase prepares a checkpoint base inside root that the library
// must refuse, and returns it.
type hostileBase struct {
	name    string
	prepare func(t *testing.T, root, container string) string
}

var hostileBases = []hostileBase{
	{"symlink", func(t *testing.T, root, _ string) string {
		tHostileMkdir(t, filepath.Join(root, "real"), 0o700)
		return tHostileSymlink(t, "real", filepath.Join(root, "base"))
	}},
	{"dangling-symlink", func(t *testing.T, root, _ string) string {
		return tHostileSymlink(t, filepath.Join(root, "target"), filepath.Join(root, "base"))
	}},
	{"writable-by-others", func(t *testing.T, root, _ string) string {
		return tHostileMkdir(t, filepath.Join(root, "base"), 0o777)
	}},
	{"sticky-world-writable", func(t *testing.T, root, _ string) string {
		return tHostileMkdir(t, filepath.Join(root, "base"), 0o1777)
	}},
	{"group-writable", func(t *testing.T, root, _ string) string {
		return tHostileMkdir(t, filepath.Join(root, "base"), 0o770)
	}},
	{"other-owner", func(t *testing.T, root, _ string) string {
		base := tHostileMkdir(t, filepath.Join(root, "base"), 0o700)
		if err := os.Chown(base, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		return base
	}},
	{"regular-file", func(t *testing.T, root, _ string) string {
		base := filepath.Join(root, "base")
		if err := os.WriteFile(base, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return base
	}},
	{"container-dir-symlink", func(t *testing.T, root, container string) string {
		base := tHostileMkdir(t, filepath.Join(root, "base"), 0o700)
		tHostileMkdir(t, filepath.Join(root, "elsewhere"), 0o700)
		tHostileSymlink(t, filepath.Join(root, "elsewhere"), filepath.Join(base, container))
		return base
	}},
	{"container-dir-writable-by-others", func(t *testing.T, root, container string) string {
		base := tHostileMkdir(t, filepath.Join(root, "base"), 0o700)
		tHostileMkdir(t, filepath.Join(base, container), 0o777)
		return base
	}},
}

// TestHostileBase checkpoints one running container into each unsafe
// base: every checkpoint fails with ErrUnsafeDir, nothing in the tree
// around the base changes (nothing is written through a link), and the
// container runs on, thawed. A safe base then works, which shows the
// refusals were for the base alone.
func TestHostileBase(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	c := f.tRun(t, dockerSpec{Args: []string{"counter", "-interval", "50ms"}})

	for _, hb := range hostileBases {
		t.Run(hb.name, func(t *testing.T) {
			root := t.TempDir()
			f.base = hb.prepare(t, root, c.Name)
			before := tDockerTreeSums(t, root)
			_, err := f.tDocker(t).Checkpoint(f.ctx, c.Name, "cp")
			if !errors.Is(err, dockercr.ErrUnsafeDir) {
				t.Errorf("checkpoint into %s: %v, want ErrUnsafeDir", hb.name, err)
			}
			if after := tDockerTreeSums(t, root); after != before {
				t.Errorf("the refused checkpoint changed the tree:\nbefore\n%s\nafter\n%s", before, after)
			}
			c.tRunningThawed(t)
		})
	}

	t.Run("safe-0755", func(t *testing.T) {
		f.base = tHostileMkdir(t, filepath.Join(t.TempDir(), "base"), 0o755)
		res, err := f.tDocker(t, dockercr.WithLeaveRunning()).Checkpoint(f.ctx, c.Name, "cp")
		if err != nil {
			t.Fatal(err)
		}
		tModes(t, filepath.Join(f.base, c.Name))
		if res.Dir != filepath.Join(f.base, c.Name, "cp") {
			t.Errorf("checkpoint in %s, want it under %s", res.Dir, f.base)
		}
		c.tRunningThawed(t)
	})
}

// tHostileMkdir makes dir with mode perm, set past the umask.
func tHostileMkdir(t *testing.T, dir string, perm os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil {
		t.Fatal(err)
	}
	return dir
}

func tHostileSymlink(t *testing.T, target, link string) string {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	return link
}
