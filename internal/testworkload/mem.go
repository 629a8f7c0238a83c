package main

import (
	"flag"
	"fmt"
	"time"
)

// memCmd holds -mib MiB of patterned memory, to check that CRIU restores
// every page at its own address.
type memCmd struct {
	mib   int
	seed  uint64
	every time.Duration
	buf   []byte
}

func (c *memCmd) flags(fs *flag.FlagSet) {
	fs.IntVar(&c.mib, "mib", 0, "MiB to allocate (required)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the memory pattern")
	fs.DurationVar(&c.every, "verify-every", 0,
		"also verify this often; a failure exits 3 (0 is off)")
}

func (c *memCmd) check() error {
	if c.mib <= 0 {
		return fmt.Errorf("-mib must be > 0, got %d", c.mib)
	}
	if c.every < 0 {
		return fmt.Errorf("-verify-every must be >= 0, got %v", c.every)
	}

	return nil
}

func (c *memCmd) start() (*workload, error) {
	// Filling writes every page, so all of them are resident when the
	// ready line goes out.
	c.buf = make([]byte, c.mib<<20)
	fillPattern(c.buf, c.seed, 0)

	return &workload{
		kind:   "mem",
		detail: c.describe(),
		verify: c.verify,
		every:  c.every,
	}, nil
}

func (c *memCmd) verify() (string, error) {
	if err := checkPattern(c.buf, c.seed, 0); err != nil {
		return "", err
	}

	return c.describe(), nil
}

func (c *memCmd) describe() string {
	return fmt.Sprintf("mib=%d seed=%d", c.mib, c.seed)
}
