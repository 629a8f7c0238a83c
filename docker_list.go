package dockercr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// StoredCheckpoint is a checkpoint found under the base directory.
type StoredCheckpoint struct {
	Name     string
	Dir      string
	Created  time.Time
	Metadata *Metadata
}

// Checkpoints lists the complete checkpoints of the container called
// containerName, oldest first. Only directories holding a readable
// checkpoint.json count; staging and failed dumps never do.
func (d *Docker) Checkpoints(containerName string) ([]StoredCheckpoint, error) {
	if err := ValidateName(containerName); err != nil {
		return nil, fmt.Errorf("container %w", err)
	}
	parent := filepath.Join(d.base, containerName)
	if err := plainDirs(d.base, parent); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil, err
	}
	var out []StoredCheckpoint
	for _, e := range entries {
		// ReadDir does not follow symbolic links: e.IsDir() is false
		// for a link, so none is ever listed.
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		meta, err := ReadMetadata(dir)
		if err != nil {
			continue
		}
		out = append(out, StoredCheckpoint{Name: e.Name(), Dir: dir,
			Created: meta.Created, Metadata: meta})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// RemoveCheckpoint deletes the checkpoint name of containerName, and
// the log of a failed dump under that name if one was kept. It refuses
// a path that is not a real directory holding checkpoint.json.
func (d *Docker) RemoveCheckpoint(containerName, name string) error {
	dir, err := d.Dir(containerName, name)
	if err != nil {
		return err
	}
	if err := plainDirs(d.base, filepath.Dir(dir)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrCheckpointNotFound, dir)
	} else if err != nil {
		return err
	}
	failed := filepath.Join(filepath.Dir(dir), "."+name+failedSuffix)
	if err := os.RemoveAll(failed); err != nil {
		return err
	}

	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrCheckpointNotFound, dir)
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafeDir, dir)
	}
	if _, err := ReadMetadata(dir); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	// The container's folder goes too once it holds nothing; os.Remove
	// refuses a folder that is not empty.
	_ = os.Remove(filepath.Dir(dir))
	return nil
}

// plainDirs fails with ErrUnsafeDir unless each path is a directory and
// not a symbolic link, so that listing or removing never acts on what a
// link points to.
func plainDirs(paths ...string) error {
	for _, p := range paths {
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("%w: %s is not a plain directory", ErrUnsafeDir, p)
		}
	}
	return nil
}
