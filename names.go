package dockercr

import (
	"fmt"
	"os"
	"regexp"
	"syscall"
)

// maxNameLen bounds checkpoint names; they become directory names.
const maxNameLen = 128

// validName is what a checkpoint name may look like: one path element
// that cannot be ".", "..", hidden, or hold a separator or control
// character.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// ValidateName fails with [ErrInvalidName] unless name is usable as a
// checkpoint name: 1 to 128 characters of letters, digits, '_', '.' and
// '-', starting with a letter or digit. Such a name can never escape
// the directory it is joined to.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > maxNameLen || !validName.MatchString(name) {
		return fmt.Errorf("%w: %q: want 1-%d of [A-Za-z0-9_.-], starting with a letter or digit",
			ErrInvalidName, name, maxNameLen)
	}
	return nil
}

// ErrUnsafeDir means a directory the library writes checkpoints into is
// a symbolic link, is not a directory, is owned by another user, or is
// writable by group or others, any of which would let another user
// redirect or read process memory.
var ErrUnsafeDir = fmt.Errorf("unsafe checkpoint directory")

// ensureSafeDir creates dir (0700) if missing and checks that it is a
// real directory owned by the caller and writable by nobody else.
func ensureSafeDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if st.Mode()&os.ModeSymlink != 0 || !st.IsDir() {
		return fmt.Errorf("%w: %s is not a plain directory", ErrUnsafeDir, dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d", ErrUnsafeDir, dir, sys.Uid)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by others (mode %v)", ErrUnsafeDir, dir, st.Mode().Perm())
	}
	return nil
}
