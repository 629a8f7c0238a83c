package dockercr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// runcConfPath is the CRIU configuration file runc reads on every
// checkpoint and restore (runc 1.0 and later), one CRIU option per line
// in its command-line spelling without the dashes. Docker passes no
// CRIU options to runc, so this file is the only way to give a restore
// through Docker the options its dump used; a file given over RPC this
// way also overrides runc's own log and work directory.
const runcConfPath = "/etc/criu/runc.conf"

// Suffixes of the files kept beside runc.conf while it is swapped.
const (
	// runcConfSaved holds the original content while ours is in
	// place, so a crash in between can be undone by the next restore.
	runcConfSaved = ".dockercr-saved"
	// runcConfAbsent marks that there was no original file.
	runcConfAbsent = ".dockercr-absent"
	runcConfLock   = ".dockercr-lock"
)

// runcConfSwap is our runc.conf in place for one restore.
type runcConfSwap struct {
	path string
	lock *os.File
}

// swapRuncConf installs lines as runc's CRIU configuration until
// restore is called. The swap is host-wide: it holds an exclusive lock
// beside the file, so concurrent restores by this library wait for each
// other, and any other runc checkpoint or restore on the host during
// the swap sees these options too. An original file is kept and put
// back; if a previous process died mid-swap, its saved original is put
// back first.
func swapRuncConf(ctx context.Context, path string, lines []string) (*runcConfSwap, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	lock, err := lockFile(ctx, path+runcConfLock)
	if err != nil {
		return nil, err
	}
	s := &runcConfSwap{path: path, lock: lock}
	if err := s.recover(); err != nil {
		s.unlock()
		return nil, err
	}
	if err := s.install(lines); err != nil {
		return nil, errors.Join(err, s.restore())
	}
	return s, nil
}

func (s *runcConfSwap) install(lines []string) error {
	orig, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := writeFileAtomic(s.path+runcConfAbsent, nil, 0o600); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		if err := writeFileAtomic(s.path+runcConfSaved, orig, 0o600); err != nil {
			return err
		}
	}
	content := mergeCriuConfig(string(orig), lines)
	return writeFileAtomic(s.path, []byte(content), 0o644)
}

// recover undoes a swap that a crashed process left behind.
func (s *runcConfSwap) recover() error {
	if orig, err := os.ReadFile(s.path + runcConfSaved); err == nil {
		if err := writeFileAtomic(s.path, orig, 0o644); err != nil {
			return err
		}
		return os.Remove(s.path + runcConfSaved)
	}
	if _, err := os.Stat(s.path + runcConfAbsent); err == nil {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return os.Remove(s.path + runcConfAbsent)
	}
	return nil
}

// restore puts the original configuration back and releases the lock.
func (s *runcConfSwap) restore() error {
	defer s.unlock()
	return s.recover()
}

func (s *runcConfSwap) unlock() {
	_ = unix.Flock(int(s.lock.Fd()), unix.LOCK_UN)
	_ = s.lock.Close()
}

// mergeCriuConfig keeps the lines of an existing configuration that do
// not set an option of ours, then appends ours.
func mergeCriuConfig(orig string, lines []string) string {
	ours := make(map[string]bool, len(lines))
	for _, l := range lines {
		ours[strings.Fields(l)[0]] = true
	}
	var b strings.Builder
	for _, l := range strings.Split(orig, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || ours[strings.TrimLeft(f[0], "-")] {
			continue
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// lockFile takes an exclusive flock on path, waiting until ctx is done.
func lockFile(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeFileAtomic replaces path with data through a synced temporary
// file in the same directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}
