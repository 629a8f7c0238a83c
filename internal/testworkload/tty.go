package main

import (
	"errors"
	"flag"
	"os"

	"golang.org/x/sys/unix"
)

// ttyCmd runs on a terminal on stdin, to check CRIU's tty handling (a
// process whose terminal is its session's needs criu --shell-job).
type ttyCmd struct{}

func (*ttyCmd) flags(*flag.FlagSet) {}

func (*ttyCmd) check() error { return nil }

func (c *ttyCmd) start() (*workload, error) {
	if !isTerminal(0) {
		return nil, errors.New("not a tty")
	}

	return &workload{kind: "tty", detail: stdinName(), verify: c.verify}, nil
}

func (*ttyCmd) verify() (string, error) {
	if !isTerminal(0) {
		return "", errors.New("stdin is no longer a tty")
	}

	return stdinName(), nil
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// stdinName is the terminal's path, e.g. "tty=/dev/pts/3".
func stdinName() string {
	name, err := os.Readlink("/proc/self/fd/0")
	if err != nil {
		return "tty=unknown"
	}

	return "tty=" + name
}
