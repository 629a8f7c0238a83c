// Command restore brings a container checkpointed by examples/checkpoint
// back under Docker's management: in place into the stopped container,
// or with -as into a new container (a clone, while the original may
// still run).
//
// Usage:
//
//	go run ./examples/restore [flags] CONTAINER
//
// CONTAINER is the name the checkpoint was made under; it reads
// DIR/CONTAINER/NAME. The CRIU options the dump used (TCP connections,
// file locks, cgroups) are read from the checkpoint's metadata by the
// library, so there are no option flags here. On failure it prints the
// library's error, with CRIU's root-cause lines from Docker's restore
// log, and exits 1.
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
	as := flag.String("as", "", "restore into a new container called `NEWNAME` (a clone)")
	verbose := flag.Bool("v", false, "log what the library runs to stderr")
	asJSON := flag.Bool("json", false, "print the result as one JSON object")
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() != 1 {
		usage()
		os.Exit(2)
	}

	var opts []dockercr.Option
	if *verbose {
		h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
		opts = append(opts, dockercr.WithLogger(slog.New(h)))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	res, err := restore(ctx, opts, *dir, flag.Arg(0), *name, *as)
	if err != nil {
		fail(err)
	}
	if err := report(os.Stdout, res, *as != "", time.Since(start), *asJSON); err != nil {
		fail(err)
	}
}

// restore restores checkpoint name of container ref in place, or into a
// new container newName if that is set.
func restore(ctx context.Context, opts []dockercr.Option, dir, ref, name, newName string) (
	*dockercr.ContainerRestore, error,
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

	if newName != "" {
		return d.RestoreAs(ctx, ref, name, newName)
	}
	return d.Restore(ctx, ref, name)
}

func usage() {
	fmt.Fprintf(flag.CommandLine.Output(), "usage: restore [flags] CONTAINER\n")
	flag.PrintDefaults()
}
