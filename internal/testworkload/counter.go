package main

import "flag"

// counterCmd only prints count lines: the smallest thing to dump.
type counterCmd struct{}

func (*counterCmd) flags(*flag.FlagSet) {}

func (*counterCmd) check() error { return nil }

func (*counterCmd) start() (*workload, error) {
	return &workload{kind: "count"}, nil
}
