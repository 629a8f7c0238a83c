// Command orchestrator shows dockercr embedded in a long-running
// program: it checkpoints several containers at once, every interval,
// keeps the last N checkpoints of each, and stops cleanly on SIGINT or
// SIGTERM.
//
// Usage:
//
//	go run ./examples/orchestrator [-every 30s] [-keep 3] [-dir DIR]
//		[-leave-running=true] CONTAINER...
//
// One [dockercr.Checkpointer] and one [dockercr.Docker] serve every
// container; each round runs one goroutine per container. Checkpoints
// are named auto-TIMESTAMP (UTC), so that they sort by age and retention
// never touches checkpoints made by hand. A signal cancels the dumps in
// flight (their containers keep running, thawed), waits for them, and
// exits 0.
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
	every := flag.Duration("every", 30*time.Second, "checkpoint `interval`")
	keep := flag.Int("keep", 3, "checkpoints to keep per container")
	dir := flag.String("dir", dockercr.DefaultCheckpointBase, "base `directory` of checkpoints")
	leave := flag.Bool("leave-running", true, "keep the containers running after each dump")
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() == 0 || *every <= 0 || *keep < 1 {
		usage()
		os.Exit(2)
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var opts []dockercr.Option
	if *leave {
		opts = append(opts, dockercr.WithLeaveRunning())
	}
	o, err := newOrchestrator(opts, *dir, *keep, log)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	defer o.close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("started", "containers", flag.Args(), "every", *every, "keep", *keep, "dir", *dir)
	o.loop(ctx, *every, flag.Args())
	log.Info("stopped")
}

func usage() {
	fmt.Fprintf(flag.CommandLine.Output(),
		"usage: orchestrator [-every D] [-keep N] [-dir DIR] [-leave-running=BOOL] CONTAINER...\n")
	flag.PrintDefaults()
}
