package dockercr

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// containerdTmpPrefix names the directories containerd 1.6 unpacks a
// checkpoint into for `docker start --checkpoint`: it makes one in its
// temporary directory for every restore and never removes it, so each
// restore leaks a full copy of the images (seen here: 858 of them, 44
// GB, after a day of tests).
const containerdTmpPrefix = "ctrd-checkpoint"

// removeContainerdCopies removes the copies containerd made of the
// images in imagesDir during a restore that started at since. A copy is
// recognised by its name, its age and its inventory and process tree
// being byte for byte those of imagesDir, so another restore's copy is
// never taken for ours. It returns how many it removed.
func removeContainerdCopies(imagesDir string, since time.Time) (int, error) {
	want := make(map[string][]byte, 2)
	for _, name := range []string{"inventory.img", "pstree.img"} {
		b, err := os.ReadFile(filepath.Join(imagesDir, name))
		if err != nil {
			return 0, err
		}
		want[name] = b
	}

	removed := 0
	for _, tmp := range containerdTmpDirs() {
		entries, err := os.ReadDir(tmp)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), containerdTmpPrefix) {
				continue
			}
			dir := filepath.Join(tmp, e.Name())
			if !copyOf(dir, want, since) {
				continue
			}
			if err := os.RemoveAll(dir); err != nil {
				return removed, err
			}
			removed++
		}
	}
	return removed, nil
}

// containerdTmpDirs are where containerd may make its copies: it uses
// XDG_RUNTIME_DIR, else the temporary directory, which for a daemon
// started without TMPDIR is /tmp.
func containerdTmpDirs() []string {
	dirs := []string{"/tmp"}
	for _, d := range []string{os.Getenv("XDG_RUNTIME_DIR"), os.TempDir()} {
		if d != "" && d != "/tmp" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

func copyOf(dir string, want map[string][]byte, since time.Time) bool {
	st, err := os.Lstat(dir)
	// The directory is made at the start of the restore; a second of
	// slack covers coarse timestamps.
	if err != nil || !st.IsDir() || st.ModTime().Before(since.Add(-time.Second)) {
		return false
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, b) {
			return false
		}
	}
	return true
}
