package dockercr

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRemoveContainerdCopies(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	images := t.TempDir()
	write := func(dir, name, content string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(images, "inventory.img", "inv-ours")
	write(images, "pstree.img", "tree-ours")

	start := time.Now()
	dirs := map[string]struct {
		inventory string
		age       time.Duration
		wantGone  bool
	}{
		"ctrd-checkpoint111": {"inv-ours", 0, true},
		"ctrd-checkpoint222": {"inv-theirs", 0, false},
		"ctrd-checkpoint333": {"inv-ours", time.Hour, false},
		"other-dir":          {"inv-ours", 0, false},
	}
	for name, d := range dirs {
		p := filepath.Join(tmp, name)
		write(p, "inventory.img", d.inventory)
		write(p, "pstree.img", "tree-ours")
		if d.age > 0 {
			old := start.Add(-d.age)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}

	n, err := removeContainerdCopies(images, start)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("removed %d directories, want 1", n)
	}
	for name, d := range dirs {
		_, err := os.Stat(filepath.Join(tmp, name))
		if gone := os.IsNotExist(err); gone != d.wantGone {
			t.Errorf("%s: gone %v, want %v", name, gone, d.wantGone)
		}
	}
}
