package dockercr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Layout of a checkpoint directory.
const (
	// ImagesDirName is the folder of CRIU's images inside a checkpoint.
	ImagesDirName = "images"
	// DumpLogName and RestoreLogName are CRIU's logs in the work dir.
	DumpLogName    = "dump.log"
	RestoreLogName = "restore.log"
)

// Suffixes of the hidden siblings a checkpoint is staged in.
const (
	partialSuffix = ".partial-"
	failedSuffix  = ".failed"
)

// stagedDir is a checkpoint being written. It lives in a hidden
// temporary sibling of its final path and is renamed into place only
// once CRIU succeeded, so a failed or interrupted dump never leaves a
// directory at the final path.
type stagedDir struct {
	final   string
	tmp     string
	replace bool
}

// stageCheckpoint validates final and creates its temporary sibling.
func stageCheckpoint(final string, replace bool) (*stagedDir, error) {
	// Check the last element as given: Abs cleans "" and "." into the
	// working directory and "x/.." into x's parent, which a replace
	// would then swap out.
	if err := validateDirName(filepath.Base(final)); err != nil {
		return nil, err
	}
	final, err := filepath.Abs(final)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(final)
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("create checkpoint parent: %w", err)
	}
	if _, err := os.Lstat(final); err == nil && !replace {
		return nil, fmt.Errorf("%w: %s", ErrCheckpointExists, final)
	}

	tmp, err := os.MkdirTemp(parent, "."+base+partialSuffix)
	if err != nil {
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	if err := os.Mkdir(filepath.Join(tmp, ImagesDirName), 0o700); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("create images directory: %w", err)
	}
	return &stagedDir{final: final, tmp: tmp, replace: replace}, nil
}

// validateDirName refuses names that are not one plain path element.
func validateDirName(name string) error {
	switch {
	case name == "" || name == "." || name == ".." || name == "/":
		return fmt.Errorf("%w: %q is not a directory name", ErrInvalidName, name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	case strings.HasPrefix(name, "."):
		// Hidden names are where staging and failed dumps live.
		return fmt.Errorf("%w: %q starts with a dot", ErrInvalidName, name)
	}
	return nil
}

func (s *stagedDir) imagesDir() string { return filepath.Join(s.tmp, ImagesDirName) }

// commit tightens permissions and renames the staging directory into
// place. With replace, an existing checkpoint is swapped out atomically
// and then removed.
func (s *stagedDir) commit() error {
	if err := restrictTree(s.tmp); err != nil {
		return err
	}
	err := unix.Renameat2(unix.AT_FDCWD, s.tmp, unix.AT_FDCWD, s.final, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) && s.replace {
		err = unix.Renameat2(unix.AT_FDCWD, s.tmp, unix.AT_FDCWD, s.final, unix.RENAME_EXCHANGE)
		if err == nil {
			// s.tmp now holds the old checkpoint.
			err = os.RemoveAll(s.tmp)
		}
	} else if errors.Is(err, unix.EEXIST) {
		err = fmt.Errorf("%w: %s", ErrCheckpointExists, s.final)
	}
	if err != nil {
		return fmt.Errorf("commit checkpoint %s: %w", s.final, err)
	}
	return syncDir(filepath.Dir(s.final))
}

// abort removes the images of a failed dump. If the staging directory
// holds CRIU's log, it is kept as PARENT/.NAME.failed (replacing an
// older one) and the new log path is returned; otherwise everything is
// removed and "" is returned.
func (s *stagedDir) abort() (string, error) {
	errImages := os.RemoveAll(s.imagesDir())
	log := filepath.Join(s.tmp, DumpLogName)
	if _, err := os.Stat(log); err != nil {
		return "", errors.Join(errImages, os.RemoveAll(s.tmp))
	}
	failed := filepath.Join(filepath.Dir(s.final), "."+filepath.Base(s.final)+failedSuffix)
	if err := os.RemoveAll(failed); err != nil {
		return "", errors.Join(errImages, err, os.RemoveAll(s.tmp))
	}
	if err := os.Rename(s.tmp, failed); err != nil {
		return "", errors.Join(errImages, err, os.RemoveAll(s.tmp))
	}
	return filepath.Join(failed, DumpLogName), errImages
}

// keep moves the staging directory, images included, to
// PARENT/.NAME.failed (replacing an older one) and returns that path:
// for a dump whose tree CRIU killed, where the images must survive a
// failure after CRIU's success.
func (s *stagedDir) keep() (string, error) {
	failed := filepath.Join(filepath.Dir(s.final), "."+filepath.Base(s.final)+failedSuffix)
	if err := os.RemoveAll(failed); err != nil {
		return "", err
	}
	if err := restrictTree(s.tmp); err != nil {
		return "", err
	}
	return failed, os.Rename(s.tmp, failed)
}

// restrictTree makes every directory under root 0700 and every file
// 0600: checkpoint images hold process memory.
func restrictTree(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return nil
		case d.IsDir():
			return os.Chmod(path, 0o700)
		default:
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode().Perm()&^0o600 != 0 {
				return os.Chmod(path, info.Mode().Perm()&0o600)
			}
			return nil
		}
	})
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
