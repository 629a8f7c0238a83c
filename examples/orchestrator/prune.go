package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/docker-cr/dockercr"
)

// prune removes all but the newest keep checkpoints this program made
// of container under base, and returns the names it removed.
//
// It works through [os.Root], so no path can lead out of base, and it
// removes only real directories (never a symbolic link) whose name this
// program would make and that hold a checkpoint.json: other files,
// checkpoints made by hand, and the hidden staging or failed dumps of
// the library stay.
func prune(base, container string, keep int) ([]string, error) {
	if err := dockercr.ValidateName(container); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(base)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	dir, err := openPlainDir(root, container)
	if err != nil {
		return nil, err
	}
	defer dir.Close()

	names, err := ownCheckpoints(dir)
	if err != nil {
		return nil, err
	}
	if len(names) <= keep {
		return nil, nil
	}
	var removed []string
	var errs []error
	for _, n := range names[:len(names)-keep] {
		if err := dir.RemoveAll(n); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", n, err))
			continue
		}
		removed = append(removed, n)
	}
	return removed, errors.Join(errs...)
}

// openPlainDir opens name in root, refusing a symbolic link.
func openPlainDir(root *os.Root, name string) (*os.Root, error) {
	st, err := root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s in %s is not a directory", name, root.Name())
	}
	return root.OpenRoot(name)
}

// ownCheckpoints lists the checkpoints in dir this program made, oldest
// first.
func ownCheckpoints(dir *os.Root) ([]string, error) {
	entries, err := fs.ReadDir(dir.FS(), ".")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && ownName(e.Name()) && isCheckpoint(dir, e.Name()) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// ownName reports whether name is one this program makes.
func ownName(name string) bool {
	ts, ok := strings.CutPrefix(name, namePrefix)
	if !ok || dockercr.ValidateName(name) != nil {
		return false
	}
	_, err := time.Parse(nameLayout, ts)
	return err == nil
}

// isCheckpoint reports whether dir/name holds a regular checkpoint.json.
func isCheckpoint(dir *os.Root, name string) bool {
	st, err := dir.Lstat(name + "/" + dockercr.MetadataName)
	return err == nil && st.Mode().IsRegular()
}
