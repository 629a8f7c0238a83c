package main

import (
	"flag"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// shmCmd maps a patterned file MAP_SHARED and keeps both the mapping and
// the descriptor; the file stays in place (meant for /dev/shm).
type shmCmd struct {
	fileFlags
	f   *os.File
	mem []byte
}

func (c *shmCmd) flags(fs *flag.FlagSet) { c.register(fs) }

func (c *shmCmd) check() error { return c.validate() }

func (c *shmCmd) start() (*workload, error) {
	f, err := os.OpenFile(c.file, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(c.size()); err != nil {
		f.Close()
		return nil, err
	}

	mem, err := unix.Mmap(int(f.Fd()), 0, int(c.size()),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mmap %s: %w", c.file, err)
	}
	fillPattern(mem, c.seed, 0)
	c.f, c.mem = f, mem

	return &workload{kind: "shm", detail: c.describe(), verify: c.verify}, nil
}

// verify reads through the mapping, then through the descriptor: a
// restore that turned the mapping private would pass only the first.
func (c *shmCmd) verify() (string, error) {
	if err := checkPattern(c.mem, c.seed, 0); err != nil {
		return "", fmt.Errorf("mapping: %w", err)
	}
	if err := checkPatternFile(c.f, c.size(), c.seed); err != nil {
		return "", fmt.Errorf("file: %w", err)
	}

	return c.describe(), nil
}
