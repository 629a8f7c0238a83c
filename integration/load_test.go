package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr"
)

// Cycles of TestLoadCycles: loadCycles under `make test`, 30 to 50
// seconds on a 2-core VM at about 0.3 s a cycle; loadStressCycles with
// DOCKERCR_STRESS=1 (`make stress`). loadWindow cycles at each end are
// compared for descriptor, goroutine and child growth.
const (
	loadCycles       = 100
	loadStressCycles = 500
	loadWindow       = 10
	stressEnv        = "DOCKERCR_STRESS"
)

// loadSample is what one checkpoint/restore cycle took and left.
type loadSample struct {
	backend         string
	dump, restore   time.Duration
	total           time.Duration
	fds, goroutines int
	children        int
}

// TestLoadCycles checkpoints and restores one 64 MiB memory workload
// many times in a row, the RPC and exec backends alternating, and has
// it verify its memory pattern after every restore. The calling
// process must not gain descriptors, goroutines or children.
func TestLoadCycles(t *testing.T) {
	tRequireEnv(t)
	n := loadCycles
	if os.Getenv(stressEnv) == "1" {
		n = loadStressCycles
	}
	// Debug logging runs, into nothing: a hundred cycles of it would
	// bury a failure in the test's output.
	quiet := dockercr.WithLogger(slog.New(slog.NewTextHandler(io.Discard,
		&slog.HandlerOptions{Level: slog.LevelDebug})))
	cps := make([]*dockercr.Checkpointer, len(backends))
	for i, b := range backends {
		cps[i] = tNew(t, b.new(), quiet)
	}
	// Ten times the usual cycle: the margin is for a loaded host.
	chain := tLoadChain(t, time.Duration(n)*3*time.Second,
		"mem", "-mib", "64", "-interval", "20ms")
	root := t.TempDir()

	samples := make([]loadSample, 0, n)
	for i := range n {
		b := i % len(backends)
		dir := filepath.Join(root, fmt.Sprintf("cp-%03d", i))
		s := chain.tCycle(t, cps[b], dir)
		s.backend = backends[b].name
		samples = append(samples, s)
	}

	tLoadReport(t, samples)
	tLoadNoGrowth(t, samples)
}

// loadChain is a workload that is checkpointed and restored over and
// over: first the started process, then each restored one in turn.
type loadChain struct {
	// ctx bounds every call of the chain.
	ctx   context.Context
	first *proc
	cur   *proc
	// adopted is set while cur is a restored process that runs: the
	// chain's to kill and reap.
	adopted bool
}

// tLoadChain starts the workload, bounds the calls of the chain by
// timeout, and registers one cleanup that kills and reaps whichever
// process of the chain runs when the test ends.
func tLoadChain(t *testing.T, timeout time.Duration, args ...string) *loadChain {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	p := tStartWorkload(t, nil, args...)
	p.tNextCount(t)
	c := &loadChain{ctx: ctx, first: p, cur: p}
	t.Cleanup(func() {
		if c.adopted {
			_ = unix.Kill(c.cur.PID, unix.SIGKILL)
			tReap(t, c.cur.PID)
			ours.Delete(c.cur.PID)
		}
	})
	return c
}

// tCycle checkpoints the current process into dir, reaps it (the dump
// kills it, and its PID must be free for the restore), restores it,
// checks that it counts on and that its memory verifies, and removes
// the checkpoint.
func (c *loadChain) tCycle(t *testing.T, cp *dockercr.Checkpointer, dir string) loadSample {
	t.Helper()
	start := time.Now()
	if _, err := cp.Checkpoint(c.ctx, c.cur.PID, dir); err != nil {
		t.Fatalf("checkpoint of pid %d: %v", c.cur.PID, err)
	}
	dumped := time.Now()
	c.tGone(t)
	last := c.cur.tLastCount(t)

	res, err := cp.Restore(c.ctx, dir)
	if err != nil {
		t.Fatalf("restore of %s: %v", dir, err)
	}
	restored := time.Now()
	c.tAdopt(t, res.PID)
	if next := c.cur.tNextCount(t); next != last+1 {
		t.Fatalf("restored pid %d counts %d, the dump stopped at %d", res.PID, next, last)
	}
	c.cur.tVerify(t)
	s := loadSample{dump: dumped.Sub(start), restore: restored.Sub(dumped),
		total: time.Since(start)}

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s.fds, s.goroutines, s.children = len(openFDs()), runtime.NumGoroutine(), len(childPIDs())
	return s
}

// tGone waits until the dumped process is gone and reaped.
func (c *loadChain) tGone(t *testing.T) {
	t.Helper()
	if c.cur == c.first {
		c.cur.tWaitGone(t)
		return
	}
	if ws := tReap(t, c.cur.PID); !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Fatalf("dumped pid %d ended with status %v, want killed by CRIU", c.cur.PID, ws)
	}
	ours.Delete(c.cur.PID)
	c.adopted = false
	c.cur.next = len(c.cur.lines(t))
}

// tAdopt makes the restored pid the current process; like [tAdopt]
// it must be a child of the test, the subreaper.
func (c *loadChain) tAdopt(t *testing.T, pid int) {
	t.Helper()
	if ppid, err := parentPID(pid); err != nil || ppid != os.Getpid() {
		t.Fatalf("restored pid %d has parent %d (%v), want the test process %d",
			pid, ppid, err, os.Getpid())
	}
	ours.Store(pid, true)
	c.cur = &proc{PID: pid, out: c.first.out, kind: c.first.kind, next: c.cur.next}
	c.adopted = true
}

// tLoadReport logs the spread of the cycle times, over all cycles and
// per backend.
func tLoadReport(t *testing.T, samples []loadSample) {
	t.Helper()
	pick := func(backend string, f func(loadSample) time.Duration) []time.Duration {
		var d []time.Duration
		for _, s := range samples {
			if backend == "" || s.backend == backend {
				d = append(d, f(s))
			}
		}
		return d
	}
	total := func(s loadSample) time.Duration { return s.total }
	dump := func(s loadSample) time.Duration { return s.dump }
	restore := func(s loadSample) time.Duration { return s.restore }

	// tCycle fails the test on a restore that does not verify, so
	// every sample is a verified one.
	t.Logf("load: %d cycles of a 64 MiB workload, %s alternating; "+
		"memory verified ok after %d restores",
		len(samples), strings.Join(loadBackendNames(), " and "), len(samples))
	t.Logf("load: cycle %s", loadSpread(pick("", total)))
	for _, b := range loadBackendNames() {
		t.Logf("load: %s cycle %s; dump %s; restore %s", b, loadSpread(pick(b, total)),
			loadSpread(pick(b, dump)), loadSpread(pick(b, restore)))
	}
}

func loadBackendNames() []string {
	names := make([]string, len(backends))
	for i, b := range backends {
		names[i] = b.name
	}
	return names
}

// loadSpread renders median, p90 (nearest rank), min and max.
func loadSpread(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	p90 := s[min(len(s)-1, (len(s)*9+9)/10-1)]
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("median %v p90 %v min %v max %v",
		r(s[len(s)/2]), r(p90), r(s[0]), r(s[len(s)-1]))
}

// tLoadNoGrowth compares the first and last loadWindow cycles: the
// highest descriptor, goroutine and child count of the last may not
// exceed that of the first.
func tLoadNoGrowth(t *testing.T, samples []loadSample) {
	t.Helper()
	if len(samples) < 2*loadWindow {
		t.Fatalf("%d cycles, too few to compare two windows of %d", len(samples), loadWindow)
	}
	first, last := samples[:loadWindow], samples[len(samples)-loadWindow:]
	counts := []struct {
		what string
		f    func(loadSample) int
	}{
		{"descriptors", func(s loadSample) int { return s.fds }},
		{"goroutines", func(s loadSample) int { return s.goroutines }},
		{"child processes", func(s loadSample) int { return s.children }},
	}
	for _, c := range counts {
		a, b := loadMax(first, c.f), loadMax(last, c.f)
		t.Logf("load: %s: at most %d in the first %d cycles, %d in the last %d",
			c.what, a, loadWindow, b, loadWindow)
		if b > a {
			t.Errorf("%s grew from %d to %d over %d cycles", c.what, a, b, len(samples))
		}
	}
}

func loadMax(samples []loadSample, f func(loadSample) int) int {
	m := 0
	for _, s := range samples {
		m = max(m, f(s))
	}
	return m
}

// TestLoadEightContainers checkpoints eight containers at once through
// one Checkpointer and one Docker, then restores them all in place at
// once: every call succeeds and every workload verifies its memory.
func TestLoadEightContainers(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	cs := make([]*dockerCtr, 8)
	for i := range cs {
		cs[i] = f.tRun(t, dockerSpec{Args: []string{"mem", "-mib", "16", "-interval", "50ms"}})
	}
	for _, c := range cs {
		c.tWaitCount(t, 3)
	}
	d := f.tDocker(t)

	ops := make([]func() error, len(cs))
	for i, c := range cs {
		ops[i] = func() error { _, err := d.Checkpoint(f.ctx, c.Name, "cp"); return err }
	}
	outs := tLoadAtOnce(t, ops...)
	tLoadAllOK(t, "checkpoint", outs)
	last := make([]int, len(cs))
	for i, c := range cs {
		c.tWaitStopped(t)
		last[i] = c.tLastCount(t)
	}

	for i, c := range cs {
		ops[i] = func() error { _, err := d.Restore(f.ctx, c.Name, "cp"); return err }
	}
	outs = tLoadAtOnce(t, ops...)
	tLoadAllOK(t, "restore", outs)
	tDockerRuncConfUnchanged(t)
	for i, c := range cs {
		c.tListedRunning(t)
		c.tResumed(t, last[i])
		c.tVerify(t)
	}
}

// loadOutcome is how one of several concurrent calls ended.
type loadOutcome struct {
	err        error
	start, end time.Time
}

// tLoadAtOnce runs ops in goroutines released together and returns
// their outcomes in order.
func tLoadAtOnce(t *testing.T, ops ...func() error) []loadOutcome {
	t.Helper()
	outs := make([]loadOutcome, len(ops))
	gate := make(chan struct{})
	done := make(chan int)
	for i, op := range ops {
		go func() {
			<-gate
			outs[i].start = time.Now()
			outs[i].err = op()
			outs[i].end = time.Now()
			done <- i
		}()
	}
	close(gate)
	for range ops {
		<-done
	}
	return outs
}

// tLoadAllOK fails unless every call succeeded, and logs how many ran
// at the same time.
func tLoadAllOK(t *testing.T, what string, outs []loadOutcome) {
	t.Helper()
	first, last := outs[0].start, outs[0].end
	for i, o := range outs {
		if o.err != nil {
			t.Errorf("%s %d of %d: %v", what, i+1, len(outs), o.err)
		}
		first, last = minTime(first, o.start), maxTime(last, o.end)
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d concurrent %ss: %v in all, at most %d at the same time",
		len(outs), what, last.Sub(first).Round(time.Millisecond), loadOverlap(outs))
}

// loadOverlap is the largest number of calls that were running at one
// instant.
func loadOverlap(outs []loadOutcome) int {
	most := 0
	for _, o := range outs {
		n := 0
		for _, p := range outs {
			if !p.start.After(o.start) && p.end.After(o.start) {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// TestLoadSamePID runs two operations of one Checkpointer on one
// process at once: exactly one proceeds, the other is refused with
// ErrBusy while the first still runs, and writes nothing.
func TestLoadSamePID(t *testing.T) {
	tRequireEnv(t)
	args := []string{"mem", "-mib", "128", "-interval", "20ms"}

	t.Run("two-checkpoints", func(t *testing.T) {
		ctx := tContext(t)
		p := tStartWorkload(t, nil, args...)
		c := tNew(t, nil)
		parent := t.TempDir()
		dirs := []string{filepath.Join(parent, "a"), filepath.Join(parent, "b")}
		outs := tLoadAtOnce(t,
			func() error { _, err := c.Checkpoint(ctx, p.PID, dirs[0]); return err },
			func() error { _, err := c.Checkpoint(ctx, p.PID, dirs[1]); return err })
		won := tLoadOneBusy(t, outs)
		if got := tEntries(t, parent); !slices.Equal(got, []string{filepath.Base(dirs[won])}) {
			t.Fatalf("checkpoint parent holds %q, want only the checkpoint that ran", got)
		}
		p.tWaitGone(t)
		tLoadRestoreVerify(t, c, p, dirs[won])
	})

	t.Run("restore-during-checkpoint", func(t *testing.T) {
		ctx := tContext(t)
		p := tStartWorkload(t, nil, args...)
		c := tNew(t, nil)
		dir := tCheckpointDir(t)
		done := make(chan error, 1)
		go func() { _, err := c.Checkpoint(ctx, p.PID, dir); done <- err }()
		tLoadWaitGlob(t, filepath.Join(filepath.Dir(dir), ".ckpt.partial-*"), done)
		_, err := c.Restore(ctx, dir)
		if !errors.Is(err, dockercr.ErrBusy) {
			t.Errorf("restore of the directory being dumped: %v, want ErrBusy", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("the checkpoint the restore waited on: %v", err)
		}
		p.tWaitGone(t)
		tLoadRestoreVerify(t, c, p, dir)
	})
}

// tLoadRestoreVerify restores the checkpoint of p in dir and checks the
// restored process counts on and verifies its memory.
func tLoadRestoreVerify(t *testing.T, c *dockercr.Checkpointer, p *proc, dir string) {
	t.Helper()
	last := p.tLastCount(t)
	res, err := c.Restore(tContext(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	r := tAdopt(t, p, res.PID)
	if next := r.tNextCount(t); next != last+1 {
		t.Fatalf("restored pid %d counts %d, the dump stopped at %d", r.PID, next, last)
	}
	r.tVerify(t)
}

// TestLoadSameContainer runs two operations on one container at once
// through one Docker: two checkpoints, a checkpoint while a restore
// runs, and a restore of the checkpoint being taken. Exactly one
// proceeds; the other is refused with ErrBusy and writes nothing.
func TestLoadSameContainer(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	spec := dockerSpec{Args: []string{"mem", "-mib", "128", "-interval", "50ms"}}

	t.Run("two-checkpoints", func(t *testing.T) {
		t.Parallel()
		f := tDockerFixture(t)
		c := f.tRun(t, spec)
		c.tWaitCount(t, 3)
		d := f.tDocker(t)
		names := []string{"cp-a", "cp-b"}
		outs := tLoadAtOnce(t,
			func() error { _, err := d.Checkpoint(f.ctx, c.Name, names[0]); return err },
			func() error { _, err := d.Checkpoint(f.ctx, c.Name, names[1]); return err })
		won := tLoadOneBusy(t, outs)
		f.tLoadOnly(t, c, names[won])
		c.tWaitStopped(t)
		f.tLoadRestoreVerify(t, d, c, names[won])
	})

	t.Run("checkpoint-during-restore", func(t *testing.T) {
		t.Parallel()
		f := tDockerFixture(t)
		c := f.tRun(t, spec)
		c.tWaitCount(t, 3)
		d := f.tDocker(t)
		if _, err := d.Checkpoint(f.ctx, c.Name, "cp"); err != nil {
			t.Fatal(err)
		}
		c.tWaitStopped(t)
		last := c.tLastCount(t)

		done := make(chan error, 1)
		go func() { _, err := d.Restore(f.ctx, c.Name, "cp"); done <- err }()
		// The restore links the images into Docker's checkpoints
		// folder of the container once it holds the container.
		tLoadWaitGlob(t, filepath.Join(f.tLoadDataRoot(t), "containers", c.ID,
			"checkpoints", "dockercr-*"), done)
		_, err := d.Checkpoint(f.ctx, c.Name, "cp2")
		if !errors.Is(err, dockercr.ErrBusy) {
			t.Errorf("checkpoint while a restore of the container runs: %v, want ErrBusy", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("the restore the checkpoint met: %v", err)
		}
		f.tLoadOnly(t, c, "cp")
		c.tResumed(t, last)
		c.tVerify(t)
	})

	t.Run("restore-during-checkpoint", func(t *testing.T) {
		t.Parallel()
		f := tDockerFixture(t)
		c := f.tRun(t, spec)
		c.tWaitCount(t, 3)
		d := f.tDocker(t)
		done := make(chan error, 1)
		go func() { _, err := d.Checkpoint(f.ctx, c.Name, "cp"); done <- err }()
		tLoadWaitGlob(t, filepath.Join(f.base, c.Name, ".cp.partial-*"), done)
		_, err := d.Restore(f.ctx, c.Name, "cp")
		if !errors.Is(err, dockercr.ErrBusy) {
			t.Errorf("restore of the checkpoint being taken: %v, want ErrBusy", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("the checkpoint the restore met: %v", err)
		}
		f.tLoadOnly(t, c, "cp")
		c.tWaitStopped(t)
		f.tLoadRestoreVerify(t, d, c, "cp")
	})
}

// tLoadOneBusy fails unless exactly one of two calls succeeded and the
// other failed with ErrBusy before the first returned, that is while
// it ran. It returns the index of the one that ran.
func tLoadOneBusy(t *testing.T, outs []loadOutcome) int {
	t.Helper()
	if len(outs) != 2 {
		t.Fatalf("%d outcomes, want two", len(outs))
	}
	for won, lost := range []int{1, 0} {
		if outs[won].err != nil || !errors.Is(outs[lost].err, dockercr.ErrBusy) {
			continue
		}
		if !outs[lost].end.Before(outs[won].end) {
			t.Fatalf("ErrBusy came %v after the call it met had returned",
				outs[lost].end.Sub(outs[won].end))
		}
		t.Logf("call %d ran; call %d was refused after %v: %v", won+1, lost+1,
			outs[lost].end.Sub(outs[lost].start).Round(time.Microsecond), outs[lost].err)
		return won
	}
	t.Fatalf("want one success and one ErrBusy, got %v and %v", outs[0].err, outs[1].err)
	return -1
}

// tLoadWaitGlob waits until pattern matches something, while the call
// whose result done carries still runs; its ending first fails.
func tLoadWaitGlob(t *testing.T, pattern string, done <-chan error) {
	t.Helper()
	deadline := time.After(dockerLineTimeout)
	for {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("the call ended (%v) before %s appeared", err, pattern)
		case <-deadline:
			t.Fatalf("no %s within %v", pattern, dockerLineTimeout)
		case <-time.After(time.Millisecond):
		}
	}
}

// tLoadOnly fails unless the container's checkpoint folder holds the
// checkpoint name and nothing else: no trace of a refused call.
func (f *dockerFixture) tLoadOnly(t *testing.T, c *dockerCtr, name string) {
	t.Helper()
	if got := tEntries(t, filepath.Join(f.base, c.Name)); !slices.Equal(got, []string{name}) {
		t.Fatalf("checkpoints of %s: %q, want only %s", c.Name, got, name)
	}
}

// tLoadRestoreVerify restores the stopped container c in place from
// its checkpoint name; it must go on counting and verify its memory.
func (f *dockerFixture) tLoadRestoreVerify(t *testing.T, d *dockercr.Docker, c *dockerCtr,
	name string) {
	t.Helper()
	last := c.tLastCount(t)
	if _, err := d.Restore(f.ctx, c.Name, name); err != nil {
		t.Fatal(err)
	}
	tDockerRuncConfUnchanged(t)
	c.tResumed(t, last)
	c.tVerify(t)
}

// tLoadDataRoot returns Docker's data root.
func (f *dockerFixture) tLoadDataRoot(t *testing.T) string {
	t.Helper()
	info, err := f.cli.Info(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.DockerRootDir
}
