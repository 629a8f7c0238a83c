package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/checkpoint"

	"github.com/docker-cr/dockercr"
)

// BenchmarkCheckpoint dumps the same running container, leave-running,
// with each method in turn: the library with either backend, raw criu
// with the library's options, and Docker's own checkpoint.
func BenchmarkCheckpoint(b *testing.B) {
	e := tRequireEnv(b)
	for _, mib := range sizes {
		b.Run(sizeName(mib), func(b *testing.B) {
			c := tContainer(b, e, mib)
			tWarmUp(b, e, c)
			for _, m := range []string{methodRPC, methodExec} {
				b.Run(m, func(b *testing.B) { benchLibCheckpoint(b, e, c, m) })
			}
			b.Run(methodRaw, func(b *testing.B) { benchRawCheckpoint(b, e, c) })
			b.Run(methodDocker, func(b *testing.B) { benchDockerCheckpoint(b, e, c) })
		})
	}
}

// tWarmUp dumps c once through the library and once raw, unmeasured:
// the first dump of a run pays for cold caches whichever method it is.
// It also checks that the raw dump passes the options the library used.
func tWarmUp(b *testing.B, e *benchEnv, c *benchContainer) {
	b.Helper()
	ctx := b.Context()
	res, err := e.lib[methodRPC].Checkpoint(ctx, c.name, "warmup")
	if err != nil {
		b.Fatalf("warm-up checkpoint: %v", err)
	}
	defer os.RemoveAll(res.Dir)
	meta, err := dockercr.ReadMetadata(res.Dir)
	if err != nil {
		b.Fatal(err)
	}

	dir := filepath.Join(e.tmp, "raw", sizeName(c.mib)+"-warmup")
	defer os.RemoveAll(dir)
	raw, err := planRawDump(ctx, c, dir)
	if err != nil {
		b.Fatal(err)
	}
	if err := raw.sameOptions(meta); err != nil {
		b.Fatalf("raw criu would not dump like the library: %v", err)
	}
	if err := raw.run(ctx); err != nil {
		b.Fatalf("warm-up raw dump: %v", err)
	}
}

// benchLibCheckpoint also runs, unmeasured, a raw dump next to each
// library checkpoint as its pair: before it on odd iterations, after it
// on even ones, so that neither gains from always going second.
func benchLibCheckpoint(b *testing.B, e *benchEnv, c *benchContainer, method string) {
	d := e.lib[method]
	k := key{op: opCheckpoint, mib: c.mib, method: method}
	for i := 0; b.Loop(); i++ {
		var pair time.Duration
		pairDump := func() error {
			dir := filepath.Join(e.tmp, "raw", fmt.Sprintf("%s-%s-%d", sizeName(c.mib), method, i))
			var err error
			pair, err = timedRawDump(b.Context(), c, dir)
			return err
		}
		if i%2 == 1 {
			untimed(b, "paired raw dump", pairDump)
		}

		var res *dockercr.ContainerCheckpoint
		measure(b, k, func() (time.Duration, error) {
			var err error
			res, err = d.Checkpoint(b.Context(), c.name, fmt.Sprintf("%s-%d", method, i))
			if err != nil {
				return 0, err
			}
			if res.Backend != strings.TrimPrefix(method, "lib-") {
				return 0, fmt.Errorf("ran backend %q", res.Backend)
			}
			return res.Duration, nil
		})
		untimed(b, "remove checkpoint", func() error { return os.RemoveAll(res.Dir) })
		if i%2 == 0 {
			untimed(b, "paired raw dump", pairDump)
		}
		results.pairLast(k, pair)
	}
	reportRate(b, float64(c.mib))
}

// timedRawDump runs one raw dump into dir, removes it and returns how
// long criu ran.
func timedRawDump(ctx context.Context, c *benchContainer, dir string) (time.Duration, error) {
	raw, err := planRawDump(ctx, c, dir)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	err = raw.run(ctx)
	took := time.Since(start)
	return took, errors.Join(err, os.RemoveAll(dir))
}

func benchRawCheckpoint(b *testing.B, e *benchEnv, c *benchContainer) {
	k := key{op: opCheckpoint, mib: c.mib, method: methodRaw}
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(e.tmp, "raw", fmt.Sprintf("%s-%d", sizeName(c.mib), i))
		var raw *rawDump
		untimed(b, "plan raw dump", func() error {
			var err error
			raw, err = planRawDump(b.Context(), c, dir)
			return err
		})
		measure(b, k, func() (time.Duration, error) { return 0, raw.run(b.Context()) })
		untimed(b, "remove raw dump", func() error { return os.RemoveAll(dir) })
	}
	reportRate(b, float64(c.mib))
}

func benchDockerCheckpoint(b *testing.B, e *benchEnv, c *benchContainer) {
	k := key{op: opCheckpoint, mib: c.mib, method: methodDocker}
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("docker-%d", i)
		measure(b, k, func() (time.Duration, error) {
			return 0, e.cli.CheckpointCreate(b.Context(), c.id,
				checkpoint.CreateOptions{CheckpointID: name})
		})
		untimed(b, "remove docker checkpoint", func() error {
			return e.cli.CheckpointDelete(b.Context(), c.id,
				checkpoint.DeleteOptions{CheckpointID: name})
		})
	}
	reportRate(b, float64(c.mib))
}
