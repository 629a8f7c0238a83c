package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/checkpoint"
	"github.com/docker/docker/api/types/container"

	"github.com/docker-cr/dockercr"
)

// restoreSource is the name of the checkpoint each restore method
// restores from, over and over.
const restoreSource = "restore-src"

// BenchmarkRestore restores the same container, stopped before each
// iteration, in place: from the library's checkpoint through
// Docker.Restore, and from Docker's own checkpoint through
// `docker start --checkpoint`. Only the restore call is timed, and each
// starts from a synced disk (see [settle]): the library's checkpoint is
// fast and leaves its images dirty, while Docker's is slow enough that
// the kernel has written its images back before the first restore.
// After each restore the workload has to prove it was restored intact.
//
// Docker.Restore hard-links its images into Docker's data root, or
// copies them when the checkpoint base is on another mount: here it is
// (the base is under the temporary directory, and a bind mount of
// /var/lib/docker is a mount of its own even on the same filesystem),
// so the library's restore is timed with that copy in it.
func BenchmarkRestore(b *testing.B) {
	e := tRequireEnv(b)
	for _, mib := range sizes {
		b.Run(sizeName(mib), func(b *testing.B) {
			c := tContainer(b, e, mib)
			b.Run(methodLib, func(b *testing.B) { benchLibRestore(b, e, c) })
			b.Run(methodDocker, func(b *testing.B) { benchDockerRestore(b, e, c) })
		})
	}
}

func benchLibRestore(b *testing.B, e *benchEnv, c *benchContainer) {
	ctx := b.Context()
	d := e.lib[methodRPC]
	atDump := tLogAtDump(b, c)
	cp, err := d.Checkpoint(ctx, c.name, restoreSource)
	if err != nil {
		b.Fatalf("checkpoint to restore from: %v", err)
	}
	defer os.RemoveAll(cp.Dir)

	k := key{op: opRestore, mib: c.mib, method: methodLib}
	for b.Loop() {
		untimed(b, "stop container", func() error { return e.stop(ctx, c.id) })
		untimed(b, "settle page cache", settle)
		measure(b, k, func() (time.Duration, error) {
			res, err := d.Restore(ctx, c.name, restoreSource)
			if err != nil {
				// The log goes with the checkpoint directory.
				log, _ := os.ReadFile(filepath.Join(cp.Dir, dockercr.RestoreLogName))
				return 0, fmt.Errorf("%w%s", err, errorLines(string(log)))
			}
			return res.Duration, nil
		})
		untimed(b, "verify restore", func() error { return c.verifyRestored(ctx, atDump) })
	}
	reportRate(b, float64(c.mib))
}

func benchDockerRestore(b *testing.B, e *benchEnv, c *benchContainer) {
	ctx := b.Context()
	atDump := tLogAtDump(b, c)
	// Without leave-running, as `docker checkpoint create` defaults to:
	// the container stops once dumped.
	err := e.cli.CheckpointCreate(ctx, c.id,
		checkpoint.CreateOptions{CheckpointID: restoreSource, Exit: true})
	if err != nil {
		b.Fatalf("docker checkpoint to restore from: %v", err)
	}
	defer func() {
		err := e.cli.CheckpointDelete(ctx, c.id,
			checkpoint.DeleteOptions{CheckpointID: restoreSource})
		if err != nil {
			b.Errorf("remove docker checkpoint: %v", err)
		}
	}()

	k := key{op: opRestore, mib: c.mib, method: methodDocker}
	for b.Loop() {
		untimed(b, "stop container", func() error { return e.stop(ctx, c.id) })
		untimed(b, "settle page cache", settle)
		var copies map[string]bool
		untimed(b, "list containerd copies", func() (err error) {
			copies, err = ctrdCopies(ctrdCopyGlob)
			return err
		})
		measure(b, k, func() (time.Duration, error) {
			return 0, e.cli.ContainerStart(ctx, c.id,
				container.StartOptions{CheckpointID: restoreSource})
		})
		untimed(b, "remove containerd's copy", func() error { return removeNewCtrdCopies(ctrdCopyGlob, copies) })
		untimed(b, "verify restore", func() error { return c.verifyRestored(ctx, atDump) })
	}
	reportRate(b, float64(c.mib))
}

// tLogAtDump makes sure the container runs and returns its log just
// before a checkpoint is taken to restore from: the checkpoint holds at
// least as many count lines, and a restore adds no ready line.
func tLogAtDump(b *testing.B, c *benchContainer) workloadLog {
	b.Helper()
	if err := c.ensureRunning(b.Context()); err != nil {
		b.Fatal(err)
	}
	l, err := c.log(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	return l
}
