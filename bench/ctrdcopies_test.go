package bench

import (
	"errors"
	"os"
	"path/filepath"
)

// ctrdCopyGlob matches the directories containerd 1.6 unpacks a
// checkpoint into on `docker start --checkpoint` and never removes: one
// full copy of the images per restore. The library removes its own
// restores' copies; the benchmark has to remove those of Docker's.
const ctrdCopyGlob = "/tmp/ctrd-checkpoint*"

// ctrdCopies returns the paths matching glob (ctrdCopyGlob but in
// tests) present now.
func ctrdCopies(glob string) (map[string]bool, error) {
	paths, err := filepath.Glob(glob)
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(paths))
	for _, p := range paths {
		out[p] = true
	}
	return out, nil
}

// removeNewCtrdCopies removes the paths matching glob that were not in
// before: the benchmark runs alone, so they are the copies its restore
// made.
func removeNewCtrdCopies(glob string, before map[string]bool) error {
	now, err := ctrdCopies(glob)
	if err != nil {
		return err
	}
	var errs []error
	for p := range now {
		if !before[p] {
			errs = append(errs, os.RemoveAll(p))
		}
	}
	return errors.Join(errs...)
}
