package main

import (
	"flag"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// deletedCmd keeps a descriptor on a patterned file it has unlinked. CRIU
// saves such a file's content in the image as a ghost file; its default
// --ghost-limit is 1 MiB, less than the default -kib here.
type deletedCmd struct {
	fileFlags
	f *os.File
}

func (c *deletedCmd) flags(fs *flag.FlagSet) { c.register(fs) }

func (c *deletedCmd) check() error { return c.validate() }

func (c *deletedCmd) start() (*workload, error) {
	f, err := os.OpenFile(c.file, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := writePatternFile(f, c.size(), c.seed); err != nil {
		f.Close()
		return nil, err
	}
	if err := os.Remove(c.file); err != nil {
		f.Close()
		return nil, err
	}
	c.f = f

	return &workload{kind: "deleted", detail: c.describe(), verify: c.verify}, nil
}

// verify checks that the file is still unlinked, then its content.
func (c *deletedCmd) verify() (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(c.f.Fd()), &st); err != nil {
		return "", fmt.Errorf("fstat: %w", err)
	}
	if st.Nlink != 0 {
		return "", fmt.Errorf("file has %d links, want 0", st.Nlink)
	}
	if st.Size != c.size() {
		return "", fmt.Errorf("file has %d bytes, want %d", st.Size, c.size())
	}

	if err := checkPatternFile(c.f, c.size(), c.seed); err != nil {
		return "", err
	}

	return c.describe(), nil
}
