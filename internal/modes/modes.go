// Package modes checks the permissions of a tree the library wrote:
// checkpoint images hold process memory, so every directory must be
// 0700 and every file 0600. Tests of the root package and of the
// integration suite share it.
package modes

import (
	"fmt"
	"io/fs"
	"path/filepath"
)

// Dir and File are the modes required of directories and files.
const (
	Dir  fs.FileMode = 0o700
	File fs.FileMode = 0o600
)

// Violations walks root and returns one line per directory not Dir and
// per file not File. Symbolic links are skipped: their mode means
// nothing.
func Violations(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Type()&fs.ModeSymlink != 0 {
			return nil
		}
		want := File
		if d.IsDir() {
			want = Dir
		}
		if got := info.Mode().Perm(); got != want {
			out = append(out, fmt.Sprintf("%s has mode %v, want %v", path, got, want))
		}
		return nil
	})
	return out, err
}
