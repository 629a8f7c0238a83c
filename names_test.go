package dockercr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode"

	"github.com/docker/docker/client"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		desc string
		name string
		ok   bool
	}{
		{"letters", "web", true},
		{"digits first", "1cp", true},
		{"dots dashes underscores", "cp-1.2_x", true},
		{"128 characters", strings.Repeat("a", 128), true},
		{"inner dots", "a..b", true},

		{"empty", "", false},
		{"129 characters", strings.Repeat("a", 129), false},
		{"4096 characters", strings.Repeat("a", 4096), false},
		{"newline", "a\nb", false},
		{"trailing newline", "cp\n", false},
		{"tab", "a\tb", false},
		{"carriage return", "cp\r", false},
		{"NUL", "a\x00b", false},
		{"DEL", "a\x7fb", false},
		{"escape sequence", "cp\x1b[2J", false},
		{"space", "a b", false},
		{"non-ASCII letter", "caf\u00e9", false},
		{"right-to-left override", "cp\u202egpj", false},
		{"invalid UTF-8", "cp\xff", false},
		{"separator", "a/b", false},
		{"parent", "../x", false},
		{"absolute", "/abs", false},
		{"dot", ".", false},
		{"dot dot", "..", false},
		{"hidden", ".hidden", false},
		{"ends in parent", "x/..", false},
		{"trailing slash", "cp/", false},
		{"backslash", `a\b`, false},
		{"dash first", "-rf", false},
		{"underscore first", "_cp", false},
		{"staging look-alike", ".cp.partial-1", false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			err := ValidateName(tt.name)
			if tt.ok != (err == nil) {
				t.Fatalf("ValidateName(%q) = %v, want ok %v", tt.name, err, tt.ok)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("%v does not match ErrInvalidName", err)
			}
			if i := strings.IndexFunc(err.Error(), unicode.IsControl); i >= 0 {
				t.Fatalf("error %q carries a control character at %d", err, i)
			}
		})
	}
}

// FuzzValidateName checks that an accepted name is one short, printable
// path element that stays in the directory it is joined to, and that
// the error for a refused one is printable.
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"cp", "..", "a/b", "x\n", strings.Repeat("z", 128), ".h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("%v does not match ErrInvalidName", err)
			}
			if strings.IndexFunc(err.Error(), unicode.IsControl) >= 0 {
				t.Fatalf("error %q carries a control character", err)
			}
			return
		}
		const base = "/base/container"
		joined := filepath.Join(base, name)
		if filepath.Dir(joined) != base || filepath.Base(joined) != name {
			t.Fatalf("accepted %q joins to %s, outside %s", name, joined, base)
		}
		if len(name) > maxNameLen || strings.HasPrefix(name, ".") {
			t.Fatalf("accepted %q (%d bytes)", name, len(name))
		}
		for _, r := range name {
			if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' {
				t.Fatalf("accepted %q with %q", name, r)
			}
		}
	})
}

// TestEnsureSafeDir checks what a checkpoint base or container folder
// may be: a real directory of ours that only we can write to.
func TestEnsureSafeDir(t *testing.T) {
	tests := []struct {
		desc string
		// prepare makes the directory to check in parent and returns
		// its path.
		prepare func(t *testing.T, parent string) string
		want    error
		// root marks cases that need root to prepare.
		root bool
		// perm is the mode an accepted directory has afterwards.
		perm fs.FileMode
	}{
		{"missing is created 0700", func(t *testing.T, p string) string {
			return filepath.Join(p, "d")
		}, nil, false, 0o700},
		{"0700", tHostileDir(0o700), nil, false, 0o700},
		{"0755 is kept", tHostileDir(0o755), nil, false, 0o755},
		{"0777", tHostileDir(0o777), ErrUnsafeDir, false, 0},
		{"sticky 1777", tHostileDir(0o1777), ErrUnsafeDir, false, 0},
		{"group-writable 0770", tHostileDir(0o770), ErrUnsafeDir, false, 0},
		{"other-writable 0702", tHostileDir(0o702), ErrUnsafeDir, false, 0},
		{"symlink to a safe dir", func(t *testing.T, p string) string {
			tHostileNoErr(t, os.Mkdir(filepath.Join(p, "real"), 0o700))
			tHostileNoErr(t, os.Symlink("real", filepath.Join(p, "d")))
			return filepath.Join(p, "d")
		}, ErrUnsafeDir, false, 0},
		{"dangling symlink", func(t *testing.T, p string) string {
			tHostileNoErr(t, os.Symlink(filepath.Join(p, "target"), filepath.Join(p, "d")))
			return filepath.Join(p, "d")
		}, ErrUnsafeDir, false, 0},
		{"regular file", func(t *testing.T, p string) string {
			tHostileNoErr(t, os.WriteFile(filepath.Join(p, "d"), nil, 0o600))
			return filepath.Join(p, "d")
		}, ErrUnsafeDir, false, 0},
		{"owned by another uid", func(t *testing.T, p string) string {
			d := tHostileDir(0o700)(t, p)
			tHostileNoErr(t, os.Chown(d, 65534, 65534))
			return d
		}, ErrUnsafeDir, true, 0},
		{"missing parent", func(t *testing.T, p string) string {
			return filepath.Join(p, "no", "d")
		}, fs.ErrNotExist, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skipf("preparing %s needs root, running as uid %d", tt.desc, os.Geteuid())
			}
			parent := t.TempDir()
			dir := tt.prepare(t, parent)
			before := tHostileTree(t, parent)
			err := ensureSafeDir(dir)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				st, err := os.Lstat(dir)
				if err != nil {
					t.Fatal(err)
				}
				if !st.IsDir() || st.Mode().Perm() != tt.perm {
					t.Fatalf("after ensureSafeDir: mode %v, want a directory %v", st.Mode(), tt.perm)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("ensureSafeDir: %v, want %v", err, tt.want)
			}
			if after := tHostileTree(t, parent); after != before {
				t.Fatalf("a refused directory changed the tree:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestDockerHostileNames calls the Docker methods that only touch the
// base directory with names that try to leave it: each is refused with
// ErrInvalidName, and a checkpoint planted outside the base survives.
// The Docker client points at no daemon; none is needed.
func TestDockerHostileNames(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "base")
	victim := filepath.Join(root, "victim")
	tHostileNoErr(t, os.MkdirAll(filepath.Join(base, "c"), 0o700))
	tHostileNoErr(t, os.Mkdir(victim, 0o700))
	tHostileNoErr(t, writeMetadata(victim, &Metadata{Format: metadataFormat}))
	d := tHostileDocker(t, base)
	before := tHostileTree(t, root)

	pairs := []struct{ container, name string }{
		{"..", "victim"},
		{"c", "../../victim"},
		{"c/..", "../victim"},
		{"c", root + "/victim"},
		{"c", "."},
		{"c", ".."},
		{"c", "victim\n"},
		{"c", "vic\x00tim"},
		{"c", strings.Repeat("v", 129)},
		{"", "victim"},
	}
	for _, p := range pairs {
		if _, err := d.Dir(p.container, p.name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Dir(%q, %q): %v, want ErrInvalidName", p.container, p.name, err)
		}
		if err := d.RemoveCheckpoint(p.container, p.name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("RemoveCheckpoint(%q, %q): %v, want ErrInvalidName", p.container, p.name, err)
		}
		var out bytes.Buffer
		_, err := d.Export(context.Background(), p.container, p.name, &out)
		if !errors.Is(err, ErrInvalidName) || out.Len() != 0 {
			t.Errorf("Export(%q, %q): %v and %d bytes, want ErrInvalidName and none",
				p.container, p.name, err, out.Len())
		}
		if _, err := d.Checkpoints(p.container); p.container != "c" && !errors.Is(err, ErrInvalidName) {
			t.Errorf("Checkpoints(%q): %v, want ErrInvalidName", p.container, err)
		}
	}
	if after := tHostileTree(t, root); after != before {
		t.Fatalf("hostile names changed the tree:\nbefore %s\nafter  %s", before, after)
	}
}

// tHostileDocker returns a Docker on base whose client reaches no
// daemon: enough for the methods that only read the base.
func tHostileDocker(t *testing.T, base string) *Docker {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "none.sock")
	cli, err := client.NewClientWithOpts(client.WithHost("unix://" + sock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	cp, err := New()
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDocker(cp, WithDockerClient(cli), WithCheckpointBase(base))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// tHostileDir returns a prepare function that makes the directory d
// with mode perm, set past the umask.
func tHostileDir(perm fs.FileMode) func(t *testing.T, parent string) string {
	return func(t *testing.T, parent string) string {
		t.Helper()
		d := filepath.Join(parent, "d")
		tHostileNoErr(t, os.Mkdir(d, 0o700))
		tHostileNoErr(t, os.Chmod(d, perm))
		return d
	}
}

// tHostileTree lists every path under root with its mode, owner and
// size, one per line, to compare a tree before and after a call.
func tHostileTree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		uid := -1
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			uid = int(st.Uid)
		}
		size := int64(0)
		if info.Mode().IsRegular() {
			size = info.Size()
		}
		fmt.Fprintf(&b, "%s %v uid=%d size=%d\n", strings.TrimPrefix(path, root), info.Mode(), uid, size)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func tHostileNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
