// Command checkpoint dumps a running Docker container with dockercr and
// prints where the checkpoint went, the backend and CRIU version used,
// CRIU's statistics and the wall time.
//
// Usage:
//
//	go run ./examples/checkpoint [flags] CONTAINER
//
// The checkpoint lands in DIR/CONTAINER-NAME/NAME, ready for
// examples/restore. Without -leave-running the container stops once it
// is dumped. Ctrl-C cancels a dump in flight; the container then keeps
// running. On failure it prints the library's error, with CRIU's
// root-cause lines, and exits 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/docker-cr/dockercr"
)

func main() {
	name := flag.String("name", "checkpoint1", "checkpoint `name`")
	dir := flag.String("dir", dockercr.DefaultCheckpointBase, "base `directory` of checkpoints")
	leave := flag.Bool("leave-running", false, "keep the container running after the dump")
	tcp := flag.Bool("tcp-established", false, "dump established TCP connections")
	locks := flag.Bool("file-locks", false, "dump held file locks")
	backend := flag.String("backend", "auto", "how to run CRIU: auto, rpc or exec")
	level := flag.Int("log-level", dockercr.DefaultLogLevel, "CRIU log `level`, 0 to 4")
	verbose := flag.Bool("v", false, "log what the library runs to stderr")
	asJSON := flag.Bool("json", false, "print the result as one JSON object")
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() != 1 {
		usage()
		os.Exit(2)
	}

	opts, err := options(*backend, *level, *verbose)
	if err != nil {
		fail(err)
	}
	if *leave {
		opts = append(opts, dockercr.WithLeaveRunning())
	}
	if *tcp {
		opts = append(opts, dockercr.WithTCPEstablished())
	}
	if *locks {
		opts = append(opts, dockercr.WithFileLocks())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	res, err := checkpoint(ctx, opts, *dir, flag.Arg(0), *name)
	if err != nil {
		fail(err)
	}
	if err := report(os.Stdout, res, time.Since(start), *asJSON); err != nil {
		fail(err)
	}
}

// checkpoint builds the Checkpointer and the Docker integration and
// dumps container ref into the checkpoint called name.
func checkpoint(ctx context.Context, opts []dockercr.Option, dir, ref, name string) (
	*dockercr.ContainerCheckpoint, error,
) {
	cp, err := dockercr.New(opts...)
	if err != nil {
		return nil, err
	}
	d, err := dockercr.NewDocker(cp, dockercr.WithCheckpointBase(dir))
	if err != nil {
		return nil, err
	}
	defer d.Close()

	return d.Checkpoint(ctx, ref, name)
}

// options turns the backend, log-level and -v flags into options.
func options(backend string, level int, verbose bool) ([]dockercr.Option, error) {
	var b dockercr.Backend
	switch backend {
	case "auto":
		b = dockercr.AutoBackend()
	case "rpc":
		b = dockercr.RPCBackend()
	case "exec":
		b = dockercr.ExecBackend()
	default:
		return nil, fmt.Errorf("-backend %q: want auto, rpc or exec", backend)
	}
	opts := []dockercr.Option{dockercr.WithBackend(b), dockercr.WithLogLevel(level)}
	if verbose {
		h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
		opts = append(opts, dockercr.WithLogger(slog.New(h)))
	}
	return opts, nil
}

func usage() {
	fmt.Fprintf(flag.CommandLine.Output(), "usage: checkpoint [flags] CONTAINER\n")
	flag.PrintDefaults()
}
