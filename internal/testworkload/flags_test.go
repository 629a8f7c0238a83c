package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // part of the error text
	}{
		{"no subcommand", nil, "missing subcommand"},
		{"unknown subcommand", []string{"sleep"}, `unknown subcommand "sleep"`},
		{"undefined flag", []string{"counter", "-mib", "1"}, "not defined: -mib"},
		{"bad interval", []string{"counter", "-interval", "soon"}, "invalid value"},
		{"zero interval", []string{"counter", "-interval", "0s"}, "-interval must be > 0"},
		{"extra argument", []string{"counter", "now"}, `unexpected argument "now"`},
		{"mem without mib", []string{"mem"}, "-mib must be > 0"},
		{"mem negative mib", []string{"mem", "-mib", "-1"}, "-mib must be > 0"},
		{"mem bad mib", []string{"mem", "-mib", "x"}, "invalid value"},
		{"mem negative verify-every",
			[]string{"mem", "-mib", "1", "-verify-every", "-1s"}, "-verify-every"},
		{"tcp not loopback", []string{"tcp", "-addr", "10.0.0.1:0"}, "not a loopback"},
		{"tcp name not ip", []string{"tcp", "-addr", "localhost:0"}, "not a loopback"},
		{"tcp no port", []string{"tcp", "-addr", "127.0.0.1"}, "-addr"},
		{"flock without file", []string{"flock"}, "-file is required"},
		{"deleted without file", []string{"deleted"}, "-file is required"},
		{"deleted zero kib", []string{"deleted", "-file", "x", "-kib", "0"}, "-kib must be > 0"},
		{"shm without file", []string{"shm", "-kib", "4"}, "-file is required"},
		{"writefile without file", []string{"writefile"}, "-file is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parse(tc.args)
			if err == nil {
				t.Fatalf("parse(%q) succeeded", tc.args)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parse(%q) = %q, want it to contain %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		interval time.Duration
		check    func(t *testing.T, cmd subcommand)
	}{
		{"counter default interval", []string{"counter"}, 100 * time.Millisecond,
			func(t *testing.T, cmd subcommand) {
				if _, ok := cmd.(*counterCmd); !ok {
					t.Errorf("got %T", cmd)
				}
			}},
		{"mem", []string{"mem", "-mib", "8", "-seed", "5",
			"-verify-every", "2s", "-interval", "1s"}, time.Second,
			func(t *testing.T, cmd subcommand) {
				c := cmd.(*memCmd)
				if c.mib != 8 || c.seed != 5 || c.every != 2*time.Second {
					t.Errorf("got %+v", c)
				}
			}},
		{"deleted defaults", []string{"deleted", "-file", "/tmp/x"}, 100 * time.Millisecond,
			func(t *testing.T, cmd subcommand) {
				c := cmd.(*deletedCmd)
				if c.file != "/tmp/x" || c.kib != 4096 || c.seed != 1 {
					t.Errorf("got %+v", c.fileFlags)
				}
			}},
		{"tcp ipv6 loopback", []string{"tcp", "-addr", "[::1]:0"}, 100 * time.Millisecond,
			func(t *testing.T, cmd subcommand) {
				if c := cmd.(*tcpCmd); c.addr != "[::1]:0" {
					t.Errorf("addr %q", c.addr)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd, interval, err := parse(tc.args)
			if err != nil {
				t.Fatalf("parse(%q): %v", tc.args, err)
			}
			if interval != tc.interval {
				t.Errorf("interval %v, want %v", interval, tc.interval)
			}
			tc.check(t, cmd)
		})
	}
}
