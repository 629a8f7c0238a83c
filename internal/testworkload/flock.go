package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// flockCmd holds an exclusive flock on -file, to check that CRIU restores
// file locks (criu --file-locks).
type flockCmd struct {
	file string
	f    *os.File // holds the lock; kept so no finalizer closes it
}

func (c *flockCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.file, "file", "", "file to lock, created if missing (required)")
}

func (c *flockCmd) check() error {
	if c.file == "" {
		return errors.New("-file is required")
	}

	return nil
}

func (c *flockCmd) start() (*workload, error) {
	f, err := os.OpenFile(c.file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}

	// Non-blocking: a lock someone else holds is a setup error, not a hang
	// before the ready line.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", c.file, err)
	}
	c.f = f

	return &workload{
		kind:   "flock",
		detail: "file=" + c.file,
		verify: c.verify,
	}, nil
}

// verify opens the path again: the new open file description must not
// get the lock while ours holds it.
func (c *flockCmd) verify() (string, error) {
	probe, err := os.Open(c.file)
	if err != nil {
		return "", fmt.Errorf("reopen: %w", err)
	}
	defer probe.Close()

	if err := sameFile(c.f, probe); err != nil {
		return "", err
	}

	err = unix.Flock(int(probe.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	switch {
	case errors.Is(err, unix.EWOULDBLOCK):
		return "held file=" + c.file, nil
	case err == nil:
		return "", errors.New("lock not held: a second descriptor got LOCK_EX")
	default:
		return "", fmt.Errorf("probe flock: %w", err)
	}
}

// sameFile fails when the path now names another file than the locked
// descriptor, which would make the probe meaningless.
func sameFile(held, probe *os.File) error {
	a, err := held.Stat()
	if err != nil {
		return err
	}
	b, err := probe.Stat()
	if err != nil {
		return err
	}

	if !os.SameFile(a, b) {
		return fmt.Errorf("%s is no longer the locked file", probe.Name())
	}

	return nil
}
