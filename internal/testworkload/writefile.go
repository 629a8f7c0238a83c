package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
)

// writefileCmd writes -file once at start and keeps no descriptor on it,
// for tests of filesystem changes around a checkpoint.
type writefileCmd struct {
	file    string
	content string
}

func (c *writefileCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.file, "file", "", "file to write, replaced if present (required)")
	fs.StringVar(&c.content, "content", "dockercr testworkload writefile\n",
		"content to write")
}

func (c *writefileCmd) check() error {
	if c.file == "" {
		return errors.New("-file is required")
	}

	return nil
}

func (c *writefileCmd) start() (*workload, error) {
	if err := os.WriteFile(c.file, []byte(c.content), 0o600); err != nil {
		return nil, err
	}

	return &workload{kind: "write", detail: c.describe(), verify: c.verify}, nil
}

func (c *writefileCmd) verify() (string, error) {
	got, err := os.ReadFile(c.file)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(got, []byte(c.content)) {
		return "", fmt.Errorf("content changed: %d bytes, want %d",
			len(got), len(c.content))
	}

	return c.describe(), nil
}

func (c *writefileCmd) describe() string {
	return fmt.Sprintf("file=%s bytes=%d", c.file, len(c.content))
}
