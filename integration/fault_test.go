package integration

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr"
)

// faultAction is what a test does to a criu stopped at a fault point.
type faultAction struct {
	name string
	// inject kills criu or cancels the call's context, and lets a
	// stopped criu go on.
	inject func(w *faultWatch, cancel context.CancelFunc) error
	// check holds the call's error against what was done.
	check func(t *testing.T, err error)
}

// faultActions are the faults injected at each point: SIGKILL to criu
// alone, as the OOM killer or an operator would send it, and the
// cancellation of the call's context.
var faultActions = []faultAction{
	{name: "kill",
		inject: func(w *faultWatch, _ context.CancelFunc) error { return w.kill() },
		check:  func(t *testing.T, err error) { t.Helper(); tFaultNamesKill(t, err) }},
	{name: "cancel",
		inject: func(w *faultWatch, cancel context.CancelFunc) error {
			cancel()
			w.resume()
			return nil
		},
		check: func(t *testing.T, err error) {
			t.Helper()
			tFaultCanceled(t, err)
			tCRIUError(t, err)
		}},
}

// TestFaultDump kills criu with SIGKILL, or cancels the context, at
// each point of the dump of a 1 GiB memory workload: the dump fails
// naming the fault, the workload runs on (neither frozen nor traced,
// its memory intact), no checkpoint and no images remain, and the test
// process leaks nothing. One workload takes every fault in turn.
func TestFaultDump(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		p := tStartWorkload(t, nil, "mem", "-mib", strconv.Itoa(faultMiB), "-interval", "20ms")
		c := tNew(t, b)
		if _, err := c.Check(tContext(t)); err != nil {
			t.Fatal(err)
		}
		for _, a := range faultActions {
			for _, pt := range faultDumpPoints(faultMiB) {
				for i := range faultRepeats() {
					t.Run(a.name+"/"+faultCase(pt.name, i), func(t *testing.T) {
						tFaultDumpCase(t, c, p, pt, a)
					})
				}
			}
		}
	})
}

func tFaultDumpCase(t *testing.T, c *dockercr.Checkpointer, p *proc, pt faultPoint, a faultAction) {
	t.Helper()
	tFaultNoLeaks(t)
	p.tNextCount(t)
	ctx, cancel := context.WithCancel(tContext(t))
	defer cancel()
	dir := tCheckpointDir(t)

	w, done := tFaultBreakDump(t, dir, pt, func() error {
		_, err := c.Checkpoint(ctx, p.PID, dir)
		return err
	})
	start := time.Now()
	if err := a.inject(w, cancel); err != nil {
		w.resume()
		t.Fatal(err)
	}
	took, err := tFaultResult(t, done, start)
	t.Logf("fault: %s at %s: returned %v after the fault: %v", a.name, pt.name, took, err)

	a.check(t, err)
	tFaultReapStrays(t)
	tNoCheckpoint(t, dir)
	p.tRunning(t)
}

// TestFaultExit kills the workload itself (SIGKILL) while CRIU dumps
// its memory: the checkpoint fails with ErrProcessNotFound and CRIU's
// own lines, and no checkpoint and no staging directory remain.
func TestFaultExit(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		tFaultNoLeaks(t)
		p := tStartWorkload(t, nil, "mem", "-mib", strconv.Itoa(faultMiB), "-interval", "20ms")
		p.tNextCount(t)
		c := tNew(t, b)
		dir := tCheckpointDir(t)

		w, done := tFaultBreakDump(t, dir, faultDumpPoints(faultMiB)[1], func() error {
			_, err := c.Checkpoint(tContext(t), p.PID, dir)
			return err
		})
		start := time.Now()
		kerr := unix.Kill(p.PID, unix.SIGKILL)
		w.resume()
		if kerr != nil {
			t.Fatal(kerr)
		}
		took, err := tFaultResult(t, done, start)
		t.Logf("fault: workload killed during the dump: returned %v after the kill: %v", took, err)

		if !errors.Is(err, dockercr.ErrProcessNotFound) {
			t.Errorf("error %v does not match ErrProcessNotFound", err)
		}
		tFaultLogErrors(t, tCRIUError(t, err).LogPath)
		p.tWaitGone(t)
		tFaultReapStrays(t)
		tNoCheckpoint(t, dir)
	})
}

// TestFaultRestore kills criu, or cancels the context, at each point of
// a restore of a 1 GiB memory workload: the restore fails naming the
// fault, no half-restored process is left (none with the workload's
// PID, none that was criu's child), and the checkpoint stays intact: a
// last restore brings the workload back from where it was dumped.
func TestFaultRestore(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		p := tStartWorkload(t, nil, "mem", "-mib", strconv.Itoa(faultMiB), "-interval", "20ms")
		p.tNextCount(t)
		c := tNew(t, b)
		dir := tCheckpointDir(t)
		if _, err := c.Checkpoint(tContext(t), p.PID, dir); err != nil {
			t.Fatal(err)
		}
		p.tWaitGone(t)
		last := p.tLastCount(t)

		for _, a := range faultActions {
			for _, pt := range faultRestorePoints() {
				for i := range faultRepeats() {
					t.Run(a.name+"/"+faultCase(pt.name, i), func(t *testing.T) {
						tFaultRestoreCase(t, c, p.PID, dir, pt, a)
					})
				}
			}
		}

		res, err := c.Restore(tContext(t), dir)
		if err != nil {
			t.Fatalf("restore after the faults: %v", err)
		}
		r := tAdopt(t, p, res.PID)
		if next := r.tNextCount(t); next != last+1 {
			t.Fatalf("after the faults the restored count goes on at %d, dumped at %d", next, last)
		}
		r.tVerify(t)
	})
}

func tFaultRestoreCase(t *testing.T, c *dockercr.Checkpointer, pid int, dir string,
	pt faultPoint, a faultAction) {
	t.Helper()
	tFaultNoLeaks(t)
	ctx, cancel := context.WithCancel(tContext(t))
	defer cancel()
	// CRIU's log of an earlier attempt; the watcher must see this one.
	if err := os.Remove(filepath.Join(dir, dockercr.RestoreLogName)); err != nil &&
		!errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		res, err := c.Restore(ctx, dir)
		if err == nil {
			// Not ours to keep: the test fails below.
			_ = unix.Kill(res.PID, unix.SIGKILL)
		}
		done <- err
	}()
	w := faultWatchRestore(dir)
	w.tBreak(t, pt, done)
	criu := w.pid
	start := time.Now()
	if err := a.inject(w, cancel); err != nil {
		w.resume()
		t.Fatal(err)
	}
	took, err := tFaultResult(t, done, start)
	t.Logf("fault: %s at restore %s: returned %v after the fault: %v", a.name, pt.name, took, err)

	a.check(t, err)
	tFaultReapStrays(t)
	tFaultNoProcess(t, pid)
	tFaultChildrenOf(t, criu)
	if err := dockercr.ValidateImages(filepath.Join(dir, dockercr.ImagesDirName)); err != nil {
		t.Fatalf("the checkpoint is damaged after the failed restore: %v", err)
	}
}

// TestFaultCancelTCP cancels dumps of an established loopback TCP
// connection (WithTCPEstablished, the graceful path) at each point.
// Over RPC the dump fails with context.Canceled at CRIU's next rollback
// point and CRIU resumes the tree: the connection carries on with no
// error and no gap in its sequence. The exec backend lets criu finish,
// as documented: the checkpoint is complete, and the connection goes
// on from it after a restore.
func TestFaultCancelTCP(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		c := tNew(t, b, dockercr.WithTCPEstablished())
		if _, err := c.Check(tContext(t)); err != nil {
			t.Fatal(err)
		}
		for _, pt := range faultTCPPoints() {
			for i := range faultRepeats() {
				t.Run(faultCase(pt.name, i), func(t *testing.T) {
					tFaultCancelTCPCase(t, c, b, pt)
				})
			}
		}
	})
}

// tFaultCancelTCPCase cancels a dump of a tcp workload at pt.
func tFaultCancelTCPCase(t *testing.T, c *dockercr.Checkpointer, b dockercr.Backend,
	pt faultPoint) {
	t.Helper()
	tFaultNoLeaks(t)
	p := tStartWorkload(t, nil, "tcp", "-interval", "20ms")
	before := p.tNextCount(t)
	ctx, cancel := context.WithCancel(tContext(t))
	defer cancel()
	dir := tCheckpointDir(t)

	w, done := tFaultBreakDump(t, dir, pt, func() error {
		_, err := c.Checkpoint(ctx, p.PID, dir)
		return err
	})
	start := time.Now()
	cancel()
	w.resume()
	took, err := tFaultResult(t, done, start)
	t.Logf("fault: cancel at tcp %s: returned %v after the cancel: %v", pt.name, took, err)
	tFaultReapStrays(t)

	if b.Name() == "exec" {
		if err != nil {
			t.Fatalf("exec backend: cancelled tcp dump returned %v, want criu let finish", err)
		}
		p.tWaitGone(t)
		last := p.tLastCount(t)
		res, err := c.Restore(tContext(t), dir)
		if err != nil {
			t.Fatal(err)
		}
		p = tAdopt(t, p, res.PID)
		if next := p.tNextCount(t); next != last+1 {
			t.Fatalf("after the restore the sequence goes on at %d, dumped at %d", next, last)
		}
	} else {
		tFaultCanceled(t, err)
		tNoCheckpoint(t, dir)
	}
	// Each count line is one echoed round trip on the connection, and
	// tWaitLine fails on the "error" line a broken connection makes.
	for n := p.tNextCount(t); n < before+20; {
		next := p.tNextCount(t)
		if next != n+1 {
			t.Fatalf("sequence %d after %d", next, n)
		}
		n = next
	}
	p.tRunning(t)
	tFaultNoTCPLock(t, p)
}

// faultNoSpaceMiB is the workload dumped onto a 32 MiB tmpfs.
const faultNoSpaceMiB = "128"

// TestFaultNoSpace dumps a 128 MiB workload into a checkpoint base on a
// 32 MiB tmpfs: the dump fails naming the full disk, the workload runs
// on, and the staging directory is gone, so the tmpfs is not left full
// of partial images (only the failed dump's log is kept).
func TestFaultNoSpace(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		tFaultNoLeaks(t)
		base := tFaultTmpfs(t, "32m")
		p := tStartWorkload(t, nil, "mem", "-mib", faultNoSpaceMiB, "-interval", "20ms")
		p.tNextCount(t)
		c := tNew(t, b)
		dir := filepath.Join(base, "ckpt")

		start := time.Now()
		_, err := c.Checkpoint(tContext(t), p.PID, dir)
		t.Logf("fault: full disk: returned after %v: %v", time.Since(start), err)
		tFaultNoSpace(t, err)
		tFaultReapStrays(t)
		tNoCheckpoint(t, dir)
		tFaultSmallUse(t, base)
		p.tRunning(t)
	})
}

// faultAlteration damages a copy of a checkpoint between checkpoint
// and restore.
type faultAlteration struct {
	name string
	// docker marks alterations that only a container checkpoint has
	// the file for.
	docker bool
	// apply damages the checkpoint in dir and returns the name of the
	// file it damaged.
	apply func(t *testing.T, dir string) string
	// check holds the refusal against the damage done to file.
	check func(t *testing.T, file string, err error)
}

// faultAlterations removes the checkpoint, truncates its largest pages
// image by one page, flips the first byte of inventory.img, deletes the
// root task's core image, and (for containers) breaks checkpoint.json.
func faultAlterations() []faultAlteration {
	images := func(dir, name string) string {
		return filepath.Join(dir, dockercr.ImagesDirName, name)
	}
	return []faultAlteration{
		{name: "removed",
			apply: func(t *testing.T, dir string) string {
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				return ""
			},
			check: func(t *testing.T, _ string, err error) {
				if !errors.Is(err, dockercr.ErrCheckpointNotFound) {
					t.Fatalf("restore of a removed checkpoint: %v, want ErrCheckpointNotFound", err)
				}
			}},
		{name: "pages-truncated",
			apply: func(t *testing.T, dir string) string {
				name, size := tFaultLargestPages(t, dir)
				if err := os.Truncate(images(dir, name), size-4096); err != nil {
					t.Fatal(err)
				}
				return name
			},
			check: tFaultImageError},
		{name: "inventory-flipped",
			apply: func(t *testing.T, dir string) string {
				tFaultFlip(t, images(dir, "inventory.img"), 0)
				return "inventory.img"
			},
			check: tFaultImageError},
		{name: "core-deleted",
			apply: func(t *testing.T, dir string) string {
				name := tFaultRootCore(t, dir)
				if err := os.Remove(images(dir, name)); err != nil {
					t.Fatal(err)
				}
				return name
			},
			check: tFaultImageError},
		{name: "metadata-corrupted", docker: true,
			apply: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, dockercr.MetadataName)
				if err := os.WriteFile(path, []byte(`{"format": 1, "containerId": `), 0o600); err != nil {
					t.Fatal(err)
				}
				return dockercr.MetadataName
			},
			check: func(t *testing.T, file string, err error) {
				if err == nil || !strings.Contains(err.Error(), file) {
					t.Fatalf("restore with a broken %s: %v, want an error naming it", file, err)
				}
			}},
	}
}

// TestFaultAltered damages copies of a checkpoint in each way of
// faultAlterations: every restore is refused before CRIU runs (no
// restore.log appears), naming what is wrong, and no process comes
// back. The intact checkpoint then restores.
func TestFaultAltered(t *testing.T) {
	tRequireEnv(t)
	tFaultNoLeaks(t)
	p := tStartWorkload(t, nil, "counter", "-interval", "20ms")
	p.tNextCount(t)
	c := tNew(t, nil)
	dir := tCheckpointDir(t)
	if _, err := c.Checkpoint(tContext(t), p.PID, dir); err != nil {
		t.Fatal(err)
	}
	p.tWaitGone(t)
	last := p.tLastCount(t)

	for _, alt := range faultAlterations() {
		if alt.docker {
			continue
		}
		t.Run(alt.name, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "ckpt")
			tFaultCopyTree(t, dir, cp)
			file := alt.apply(t, cp)
			_, err := c.Restore(tContext(t), cp)
			t.Logf("fault: %s: %v", alt.name, err)
			alt.check(t, file, err)
			if _, err := os.Stat(filepath.Join(cp, dockercr.RestoreLogName)); err == nil {
				t.Error("criu ran: the damaged checkpoint has a restore.log")
			}
			tFaultReapStrays(t)
			tFaultNoProcess(t, p.PID)
		})
	}

	res, err := c.Restore(tContext(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	r := tAdopt(t, p, res.PID)
	if next := r.tNextCount(t); next != last+1 {
		t.Fatalf("the intact checkpoint goes on at %d, dumped at %d", next, last)
	}
}
