package integration

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr"
)

// faultDockerMiB is the memory of the container whose dumps over RPC
// are cancelled; faultDockerExecMiB that of the exec backend's, each
// of whose cancelled dumps completes and is restored through Docker
// (about 9 s for 512 MiB here, 3 s for 64 MiB).
const (
	faultDockerMiB     = 512
	faultDockerExecMiB = 64
)

// TestFaultDockerCancel cancels Docker.Checkpoint at each point of
// CRIU's dump. The container lives in a network namespace of its own,
// so the library takes the graceful path: over RPC the dump fails with
// context.Canceled at CRIU's next rollback point, and the container
// (512 MiB) runs on, thawed, untraced, its memory intact, with no
// checkpoint left. The exec backend lets criu finish, as documented:
// the checkpoint is complete and restores in place. That is the same
// at every point, so CI cancels exec at one, the stress run at all.
func TestFaultDockerCancel(t *testing.T) {
	tDockerRequire(t)
	t.Run("rpc", func(t *testing.T) {
		tFaultDockerCancel(t, dockercr.RPCBackend(), faultDockerMiB,
			faultDumpPoints(faultDockerMiB))
	})
	t.Run("exec", func(t *testing.T) {
		pts := faultDumpPoints(faultDockerExecMiB)
		if !faultStress {
			pts = pts[1:2]
		}
		tFaultDockerCancel(t, dockercr.ExecBackend(), faultDockerExecMiB, pts)
	})
}

func tFaultDockerCancel(t *testing.T, b dockercr.Backend, mib int, pts []faultPoint) {
	t.Helper()
	f := tDockerFixture(t)
	c := f.tRun(t, dockerSpec{Args: []string{"mem", "-mib", strconv.Itoa(mib),
		"-interval", "50ms"}})
	d := tFaultDocker(t, f, b)
	n := 0
	for _, pt := range pts {
		for i := range faultRepeats() {
			// A failed dump's kept log replaces the last one's; a
			// dump that exec let finish keeps its name.
			name := "cp"
			if b.Name() == "exec" {
				name += strconv.Itoa(n)
			}
			n++
			t.Run(faultCase(pt.name, i), func(t *testing.T) {
				tFaultDockerCancelCase(t, f, d, b, c, name, pt)
			})
		}
	}
}

func tFaultDockerCancelCase(t *testing.T, f *dockerFixture, d *dockercr.Docker, b dockercr.Backend,
	c *dockerCtr, name string, pt faultPoint) {
	t.Helper()
	tFaultNoLeaks(t)
	c.tWaitCount(t, c.tLastCount(t)+2)
	dir, err := d.Dir(c.Name, name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()

	w, done := tFaultBreakDump(t, dir, pt, func() error {
		_, err := d.Checkpoint(ctx, c.Name, name)
		return err
	})
	start := time.Now()
	cancel()
	w.resume()
	took, err := tFaultResult(t, done, start)
	t.Logf("fault: cancel of a container dump at %s: returned %v after the cancel: %v",
		pt.name, took, err)
	tFaultReapStrays(t)

	if b.Name() == "exec" {
		if err != nil {
			t.Fatalf("exec backend: cancelled container dump returned %v, want criu let finish", err)
		}
		if got := tFaultBackendOf(t, dir); got != "exec" {
			t.Errorf("checkpoint made by %q", got)
		}
		c.tWaitStopped(t)
		last := c.tLastCount(t)
		if _, err := d.Restore(f.ctx, c.Name, name); err != nil {
			t.Fatal(err)
		}
		tDockerRuncConfUnchanged(t)
		c.tResumed(t, last)
	} else {
		tFaultCanceled(t, err)
		tNoCheckpoint(t, dir)
	}
	tFaultDockerFree(t, c)
}

// tFaultBackendOf returns the backend the checkpoint in dir was made
// with, from its metadata.
func tFaultBackendOf(t *testing.T, dir string) string {
	t.Helper()
	meta, err := dockercr.ReadMetadata(dir)
	if err != nil {
		t.Fatalf("completed checkpoint: %v", err)
	}
	return meta.Backend
}

// tFaultDockerFree fails unless the container runs freely: listed
// running, its freezer THAWED, its init neither stopped nor traced,
// counting on, and its own check of its memory passing.
func tFaultDockerFree(t *testing.T, c *dockerCtr) {
	t.Helper()
	c.tRunningThawed(t)
	pid := c.tState(t).Pid
	if state, err := procState(pid); err != nil || state == 'T' || state == 't' {
		t.Fatalf("%s: init pid %d in state %q (%v)", c.Name, pid, state, err)
	}
	c.tVerify(t)
}

// tFaultDocker is [dockerFixture.tDockerOn] with CRIU probed first, so
// that the only criu child during a checkpoint is the dump's.
func tFaultDocker(t *testing.T, f *dockerFixture, b dockercr.Backend,
	opts ...dockercr.Option) *dockercr.Docker {
	t.Helper()
	cp := tNew(t, b, opts...)
	if _, err := cp.Check(f.ctx); err != nil {
		t.Fatal(err)
	}
	d, err := dockercr.NewDocker(cp, dockercr.WithDockerClient(f.cli),
		dockercr.WithCheckpointBase(f.base))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestFaultDockerNoSpace checkpoints a container holding 128 MiB into a
// checkpoint base on a 32 MiB tmpfs: the checkpoint fails naming the
// full disk, the container runs on thawed, and the staging directory is
// gone, so the tmpfs is not left full of partial images.
func TestFaultDockerNoSpace(t *testing.T) {
	tDockerRequire(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			tFaultNoLeaks(t)
			f := tDockerFixture(t)
			f.base = tFaultTmpfs(t, "32m")
			c := f.tRun(t, dockerSpec{Args: []string{"mem", "-mib", faultNoSpaceMiB,
				"-interval", "50ms"}})
			c.tWaitCount(t, 3)
			d := tFaultDocker(t, f, b.new())
			dir, err := d.Dir(c.Name, "cp")
			if err != nil {
				t.Fatal(err)
			}

			start := time.Now()
			_, err = d.Checkpoint(f.ctx, c.Name, "cp")
			t.Logf("fault: full disk under a container dump: returned after %v: %v",
				time.Since(start), err)
			tFaultNoSpace(t, err)
			tFaultReapStrays(t)
			tNoCheckpoint(t, dir)
			tFaultSmallUse(t, f.base)
			tFaultDockerFree(t, c)
		})
	}
}

// faultExits are the ways a container ends while it is dumped: its
// init killed from the host, or `docker kill`.
var faultExits = []struct {
	name string
	kill func(f *dockerFixture, c *dockerCtr, pid int) error
}{
	{"kill-init", func(_ *dockerFixture, _ *dockerCtr, pid int) error {
		return unix.Kill(pid, unix.SIGKILL)
	}},
	{"docker-kill", func(f *dockerFixture, c *dockerCtr, _ int) error {
		return f.cli.ContainerKill(f.ctx, c.ID, "KILL")
	}},
}

// TestFaultDockerExit kills a container holding 1 GiB while CRIU dumps
// its memory, from the host or with docker kill: the checkpoint fails
// saying the container or its process is gone, no checkpoint remains,
// the container's freezer cgroup is gone or thawed, and nothing leaks.
func TestFaultDockerExit(t *testing.T) {
	tDockerRequire(t)
	for _, b := range backends {
		for _, exit := range faultExits {
			t.Run(b.name+"/"+exit.name, func(t *testing.T) {
				tFaultNoLeaks(t)
				f := tDockerFixture(t)
				c := f.tRun(t, dockerSpec{Args: []string{"mem", "-mib",
					strconv.Itoa(faultMiB), "-interval", "50ms"}})
				c.tWaitCount(t, 3)
				pid := c.tState(t).Pid
				freezer := tFaultFreezerDir(t, pid)
				d := tFaultDocker(t, f, b.new())
				dir, err := d.Dir(c.Name, "cp")
				if err != nil {
					t.Fatal(err)
				}

				w, done := tFaultBreakDump(t, dir, faultDumpPoints(faultMiB)[1], func() error {
					_, err := d.Checkpoint(f.ctx, c.Name, "cp")
					return err
				})
				start := time.Now()
				killed := make(chan error, 1)
				go func() { killed <- exit.kill(f, c, pid) }()
				// The kill lands while criu is stopped; Docker's may
				// wait for the container to exit, so criu goes on first.
				time.Sleep(50 * time.Millisecond)
				w.resume()
				took, err := tFaultResult(t, done, start)
				t.Logf("fault: %s during the dump: returned %v after the kill: %v",
					exit.name, took, err)
				if kerr := <-killed; kerr != nil {
					t.Errorf("%s: %v", exit.name, kerr)
				}

				tFaultExitError(t, err)
				tFaultReapStrays(t)
				c.tWaitStopped(t)
				tNoCheckpoint(t, dir)
				tFaultFreezerThawed(t, freezer)
			})
		}
	}
}

// tFaultExitError fails unless err says the container stopped or its
// process is gone.
func tFaultExitError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("checkpoint of a container killed during the dump succeeded")
	}
	var ce *dockercr.CRIUError
	if errors.As(err, &ce) {
		t.Logf("criu error detail:\n%s", ce.Detail())
		tFaultLogErrors(t, ce.LogPath)
	}
	if !errors.Is(err, dockercr.ErrContainerNotRunning) &&
		!errors.Is(err, dockercr.ErrProcessNotFound) {
		t.Errorf("error %q matches neither ErrContainerNotRunning nor ErrProcessNotFound", err)
	}
}

// tFaultFreezerDir returns the v1 freezer cgroup directory of pid.
func tFaultFreezerDir(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && strings.Contains(","+parts[1]+",", ",freezer,") {
			return filepath.Join("/sys/fs/cgroup/freezer", parts[2])
		}
	}
	t.Fatalf("no freezer cgroup for pid %d in %q", pid, b)
	return ""
}

// tFaultFreezerThawed fails if the freezer cgroup dir still exists and
// is not THAWED.
func tFaultFreezerThawed(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if state := strings.TrimSpace(string(b)); state != "THAWED" {
		t.Fatalf("freezer %s is %s after the failed checkpoint", dir, state)
	}
}

// TestFaultDockerAltered damages copies of a container checkpoint in
// each way of faultAlterations, checkpoint.json included: Docker.Restore
// refuses each before CRIU runs, naming what is wrong; the container is
// not started, even half-way, and nothing is staged in Docker's
// checkpoints folder. The intact checkpoint then restores in place.
func TestFaultDockerAltered(t *testing.T) {
	tDockerRequire(t)
	tFaultNoLeaks(t)
	f := tDockerFixture(t)
	c := f.tRun(t, dockerSpec{Args: []string{"counter", "-interval", "50ms"}})
	c.tWaitCount(t, 5)
	d := tFaultDocker(t, f, nil)
	res, err := d.Checkpoint(f.ctx, c.Name, "cp")
	if err != nil {
		t.Fatal(err)
	}
	c.tWaitStopped(t)
	last := c.tLastCount(t)
	staged := tFaultDockerCheckpoints(t, f, c.ID)

	for _, alt := range faultAlterations() {
		t.Run(alt.name, func(t *testing.T) {
			name := "alt-" + alt.name
			dir := filepath.Join(filepath.Dir(res.Dir), name)
			tFaultCopyTree(t, res.Dir, dir)
			file := alt.apply(t, dir)
			_, err := d.Restore(f.ctx, c.Name, name)
			t.Logf("fault: %s: %v", alt.name, err)
			alt.check(t, file, err)
			if _, err := os.Stat(filepath.Join(dir, dockercr.RestoreLogName)); err == nil {
				t.Error("criu ran: the damaged checkpoint has a restore.log")
			}
			if st := c.tState(t); st.Running || st.Pid != 0 {
				t.Errorf("container running (pid %d) after a refused restore", st.Pid)
			}
			tFaultNoStaged(t, staged)
			tDockerRuncConfUnchanged(t)
		})
	}

	if _, err := d.Restore(f.ctx, c.Name, "cp"); err != nil {
		t.Fatal(err)
	}
	tDockerRuncConfUnchanged(t)
	c.tListedRunning(t)
	c.tResumed(t, last)
	tFaultNoStaged(t, staged)
}

// tFaultDockerCheckpoints returns the container's checkpoints folder
// under Docker's data root, where Docker.Restore stages images.
func tFaultDockerCheckpoints(t *testing.T, f *dockerFixture, id string) string {
	t.Helper()
	info, err := f.cli.Info(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(info.DockerRootDir, "containers", id, "checkpoints")
}

// tFaultNoStaged fails if the checkpoints folder holds a dockercr-*
// entry: images staged for a restore and not removed.
func tFaultNoStaged(t *testing.T, dir string) {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(dir, "dockercr-*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Fatalf("staged restore images left in Docker's folder: %q", left)
	}
}

// faultDockerdScript runs dockerd for the tests (scripts/dockerd.sh).
const faultDockerdScript = "../scripts/dockerd.sh"

// TestFaultDockerdRestart checkpoints a counting container, which stops
// it, then stops dockerd and starts it again before restoring: the
// checkpoint restores in place under the new daemon and the count goes
// on. It holds the host's Docker lock exclusively. Without live-restore
// every container on the host stops with dockerd; that is expected.
func TestFaultDockerdRestart(t *testing.T) {
	tDockerRequire(t)
	tFaultNoLeaks(t)
	f := tDockerExclusiveFixture(t)
	c := f.tRun(t, dockerSpec{Args: []string{"counter", "-interval", "50ms"}})
	c.tWaitCount(t, 5)
	d := tFaultDocker(t, f, nil)
	if _, err := d.Checkpoint(f.ctx, c.Name, "cp"); err != nil {
		t.Fatal(err)
	}
	c.tWaitStopped(t)
	last := c.tLastCount(t)
	tFaultLogRunning(t, f)

	start := time.Now()
	tFaultDockerd(t, "stop")
	t.Cleanup(func() {
		if _, err := f.cli.Ping(context.Background()); err != nil {
			tFaultDockerd(t, "start")
		}
	})
	if _, err := f.cli.Ping(f.ctx); err == nil {
		t.Fatal("docker still answers after dockerd.sh stop")
	}
	tFaultDockerd(t, "start")
	t.Logf("fault: dockerd stopped and started again in %v", time.Since(start))
	// The client's idle connections went with the old daemon.
	f.cli.HTTPClient().CloseIdleConnections()

	start = time.Now()
	r, err := d.Restore(f.ctx, c.Name, "cp")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restore after the restart took %v (Docker's start %v)", time.Since(start), r.Duration)
	tDockerRuncConfUnchanged(t)
	c.tListedRunning(t)
	c.tResumed(t, last)
	tFaultNoStaged(t, tFaultDockerCheckpoints(t, f, c.ID))
}

// tFaultDockerd runs scripts/dockerd.sh with action (stop or start).
// dockerd.sh start leaves dockerd behind when its shell exits, and an
// orphan goes to the nearest subreaper: this test process, which would
// then own the daemon and kill it with its leftovers at exit. So the
// subreaper flag is off while the script runs, and dockerd is adopted
// by init, as when setup starts it.
func tFaultDockerd(t *testing.T, action string) {
	t.Helper()
	if action == "start" {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
				t.Fatal(err)
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", faultDockerdScript, action).CombinedOutput()
	t.Logf("dockerd.sh %s: %s", action, bytes.TrimSpace(out))
	if err != nil {
		t.Fatalf("dockerd.sh %s: %v", action, err)
	}
}

// tFaultLogRunning names the containers that are about to stop with
// dockerd, none of which this test owns.
func tFaultLogRunning(t *testing.T, f *dockerFixture) {
	t.Helper()
	list, err := f.cli.ContainerList(f.ctx, container.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range list {
		names = append(names, strings.Join(c.Names, ","))
	}
	t.Logf("containers running when dockerd stops: %q", names)
}
