package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/docker-cr/dockercr"
)

// namePrefix and nameLayout make the names of this program's
// checkpoints: fixed-width UTC, so that names sort by age, and only
// characters [dockercr.ValidateName] accepts.
const (
	namePrefix = "auto-"
	nameLayout = "20060102T150405.000Z"
)

// orchestrator checkpoints containers periodically through one shared
// Docker integration.
type orchestrator struct {
	docker *dockercr.Docker
	base   string
	keep   int
	log    *slog.Logger
}

func newOrchestrator(opts []dockercr.Option, base string, keep int,
	log *slog.Logger,
) (*orchestrator, error) {
	cp, err := dockercr.New(opts...)
	if err != nil {
		return nil, err
	}
	d, err := dockercr.NewDocker(cp, dockercr.WithCheckpointBase(base))
	if err != nil {
		return nil, err
	}
	return &orchestrator{docker: d, base: base, keep: keep, log: log}, nil
}

func (o *orchestrator) close() {
	if err := o.docker.Close(); err != nil {
		o.log.Warn("close docker client", "err", err)
	}
}

// loop runs a round at once and then on every tick until ctx is done.
// Rounds never overlap: a round longer than every skips ticks.
func (o *orchestrator) loop(ctx context.Context, every time.Duration, refs []string) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		o.round(ctx, refs)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// round checkpoints every container at once and waits for all of them.
func (o *orchestrator) round(ctx context.Context, refs []string) {
	name := namePrefix + time.Now().UTC().Format(nameLayout)
	if err := dockercr.ValidateName(name); err != nil {
		o.log.Error("checkpoint name", "err", err)
		return
	}

	var wg sync.WaitGroup
	for _, ref := range refs {
		wg.Go(func() { o.checkpointOne(ctx, ref, name) })
	}
	wg.Wait()
}

// checkpointOne dumps one container, logs the result and, after a
// success only, prunes its older checkpoints.
func (o *orchestrator) checkpointOne(ctx context.Context, ref, name string) {
	start := time.Now()
	res, err := o.docker.Checkpoint(ctx, ref, name)
	switch {
	case err != nil && ctx.Err() != nil:
		o.log.Warn("checkpoint cancelled", "container", ref, "name", name, "err", err)
		return
	case err != nil:
		o.logFailure(ref, name, err)
		return
	}
	o.log.Info("checkpoint", "container", res.ContainerName, "name", name,
		"backend", res.Backend, "frozen", res.Stats.FrozenTime,
		"pages", res.Stats.PagesWritten, "took", time.Since(start).Round(time.Millisecond))

	removed, err := prune(o.docker, res.ContainerName, o.keep)
	for _, r := range removed {
		o.log.Info("removed old checkpoint", "container", res.ContainerName, "name", r)
	}
	if err != nil {
		o.log.Error("retention", "container", res.ContainerName, "err", err)
	}
}

// logFailure logs a failed checkpoint; a CRIU failure carries the
// root-cause lines of CRIU's log.
func (o *orchestrator) logFailure(ref, name string, err error) {
	attrs := []any{"container", ref, "name", name, "err", err}
	var ce *dockercr.CRIUError
	if errors.As(err, &ce) {
		attrs = append(attrs, "causes", ce.Causes, "log", ce.LogPath)
	}
	o.log.Error("checkpoint failed", attrs...)
}
