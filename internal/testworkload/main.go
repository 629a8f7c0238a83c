package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Exit codes; a SIGTERM always exits with exitOK.
const (
	exitOK      = 0
	exitSetup   = 1 // setting the workload up failed
	exitUsage   = 2 // bad subcommand or flags
	exitRuntime = 3 // a failure after the ready line
)

const usage = `usage: testworkload SUBCOMMAND [-interval D] [flags]
subcommands: counter, mem, tcp, flock, deleted, shm, tty, writefile
`

// subcommand is one workload: its flags, their validation, its setup.
type subcommand interface {
	flags(fs *flag.FlagSet)
	check() error
	start() (*workload, error)
}

// workload is a set-up subcommand, driven by loop.
type workload struct {
	kind   string                 // first word of the count lines
	detail string                 // extra fields of the ready line
	tick   func(n uint64) error   // optional, runs before count line n
	verify func() (string, error) // optional, detail of a verify line
	every  time.Duration          // periodic silent verify; 0 is off
	failed <-chan error           // optional, failures found elsewhere
}

func newSubcommand(name string) subcommand {
	switch name {
	case "counter":
		return &counterCmd{}
	case "mem":
		return &memCmd{}
	case "tcp":
		return &tcpCmd{}
	case "flock":
		return &flockCmd{}
	case "deleted":
		return &deletedCmd{}
	case "shm":
		return &shmCmd{}
	case "tty":
		return &ttyCmd{}
	case "writefile":
		return &writefileCmd{}
	}

	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

func run(args []string, out io.Writer) int {
	cmd, interval, err := parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(os.Stderr, usage)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(out, "error %v\n", err)
		return exitUsage
	}

	w, err := cmd.start()
	if err != nil {
		fmt.Fprintf(out, "error %v\n", err)
		return exitSetup
	}

	return loop(w, interval, out)
}

// parse picks the subcommand named by args[0] and parses its flags.
func parse(args []string) (subcommand, time.Duration, error) {
	if len(args) == 0 {
		return nil, 0, errors.New("missing subcommand")
	}
	cmd := newSubcommand(args[0])
	if cmd == nil {
		return nil, 0, fmt.Errorf("unknown subcommand %q", args[0])
	}

	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	interval := fs.Duration("interval", 100*time.Millisecond,
		"time between count lines")
	cmd.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", args[0], err)
	}

	if fs.NArg() > 0 {
		return nil, 0, fmt.Errorf("%s: unexpected argument %q", args[0], fs.Arg(0))
	}
	if *interval <= 0 {
		return nil, 0, fmt.Errorf("%s: -interval must be > 0", args[0])
	}
	if err := cmd.check(); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", args[0], err)
	}

	return cmd, *interval, nil
}

// loop prints the ready line, then count lines, and answers signals. All
// output comes from this one goroutine, so lines never interleave; each
// Fprintf on an *os.File is one unbuffered write.
func loop(w *workload, interval time.Duration, out io.Writer) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGUSR1, unix.SIGTERM)
	writeLine(out, "ready", w.kind, fmt.Sprintf("pid=%d", os.Getpid()), w.detail)

	ticks := time.NewTicker(interval)
	var periodic <-chan time.Time
	if w.every > 0 && w.verify != nil {
		periodic = time.NewTicker(w.every).C
	}

	// n lives only in this process's memory: after a restore the next
	// count line continues from where the dump left it.
	var n uint64
	for {
		select {
		case s := <-sigs:
			if s == unix.SIGTERM {
				return exitOK
			}
			report(out, w, n)
		case <-ticks.C:
			if w.tick != nil {
				if err := w.tick(n); err != nil {
					fmt.Fprintf(out, "error %s: %v\n", w.kind, err)
					return exitRuntime
				}
			}
			fmt.Fprintf(out, "%s %d\n", w.kind, n)
			n++
		case <-periodic:
			if _, err := w.verify(); err != nil {
				fmt.Fprintf(out, "error periodic verify: %v\n", err)
				return exitRuntime
			}
		case err := <-w.failed:
			fmt.Fprintf(out, "error %s: %v\n", w.kind, err)
			return exitRuntime
		}
	}
}

// report prints the one verify line answering a SIGUSR1.
func report(out io.Writer, w *workload, n uint64) {
	detail, err := "", error(nil)
	if w.verify != nil {
		detail, err = w.verify()
	}

	count := fmt.Sprintf("count=%d", n)
	if err != nil {
		writeLine(out, "verify FAIL", w.kind, count, err.Error())
		return
	}
	writeLine(out, "verify ok", w.kind, count, detail)
}

// writeLine writes the non-empty fields as one line in a single write.
func writeLine(out io.Writer, fields ...string) {
	var b strings.Builder
	for _, f := range fields {
		if f == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f)
	}
	b.WriteByte('\n')

	io.WriteString(out, b.String())
}
