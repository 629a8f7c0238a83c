package integration

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr"
)

// TestDumpRestore dumps a counter and a 64 MiB memory workload, restores
// them, and checks that they go on from where the dump stopped them.
func TestDumpRestore(t *testing.T) {
	tRequireEnv(t)
	workloads := []struct {
		name string
		args []string
	}{
		{"counter", []string{"counter", "-interval", "20ms"}},
		{"mem-64MiB", []string{"mem", "-mib", "64", "-interval", "20ms"}},
	}
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
				tDumpRestore(t, b, w.args)
			})
		})
	}
}

func tDumpRestore(t *testing.T, b dockercr.Backend, args []string) {
	t.Helper()
	ctx := tContext(t)
	p := tStartWorkload(t, nil, args...)
	p.tNextCount(t)
	c := tNew(t, b)
	dir := tCheckpointDir(t)

	res, err := c.Checkpoint(ctx, p.PID, dir)
	if err != nil {
		t.Fatal(err)
	}
	p.tWaitGone(t)
	last := p.tLastCount(t)
	t.Logf("dump: %v, frozen %v, memdump %v, memwrite %v, pages written %d",
		res.Duration, res.Stats.FrozenTime, res.Stats.MemdumpTime,
		res.Stats.MemwriteTime, res.Stats.PagesWritten)

	if res.Backend != b.Name() {
		t.Errorf("Backend %q, want %q", res.Backend, b.Name())
	}
	if res.CRIUVersion != env.version {
		t.Errorf("CRIUVersion %v, criu --version says %v", res.CRIUVersion, env.version)
	}
	if res.Stats.PagesWritten == 0 || res.Stats.FrozenTime == 0 {
		t.Errorf("stats without pages written or frozen time: %+v", res.Stats)
	}
	if res.Dir != dir || res.ImagesDir != filepath.Join(dir, dockercr.ImagesDirName) ||
		res.LogPath != filepath.Join(dir, dockercr.DumpLogName) {
		t.Errorf("paths %q %q %q for %q", res.Dir, res.ImagesDir, res.LogPath, dir)
	}
	for _, path := range []string{res.ImagesDir, res.LogPath,
		filepath.Join(res.ImagesDir, "inventory.img")} {
		if _, err := os.Stat(path); err != nil {
			t.Error(err)
		}
	}
	tModes(t, dir)
	if names := tEntries(t, filepath.Dir(dir)); len(names) != 1 {
		t.Errorf("checkpoint parent holds %q, want only the checkpoint", names)
	}

	rres, err := c.Restore(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r := tAdopt(t, p, rres.PID)
	t.Logf("restore: %v, pages restored %d", rres.Duration, rres.Stats.PagesRestored)

	if rres.PID != p.PID {
		t.Errorf("restored pid %d, dumped %d", rres.PID, p.PID)
	}
	if rres.Backend != b.Name() || rres.CRIUVersion != env.version || rres.Dir != dir {
		t.Errorf("restore result %+v", rres)
	}
	if rres.LogPath != filepath.Join(dir, dockercr.RestoreLogName) {
		t.Errorf("restore log %q", rres.LogPath)
	}
	if _, err := os.Stat(rres.LogPath); err != nil {
		t.Error(err)
	}
	if rres.Stats.PagesRestored == 0 {
		t.Errorf("restore stats without pages: %+v", rres.Stats)
	}
	if next := r.tNextCount(t); next != last+1 {
		t.Fatalf("after restore the count goes on at %d, dumped at %d", next, last)
	}
	r.tVerify(t)
	tModes(t, dir)
}

// TestTCPEstablished dumps an established loopback TCP connection:
// refused without WithTCPEstablished, carried on with it.
func TestTCPEstablished(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		ctx := tContext(t)
		p := tStartWorkload(t, nil, "tcp", "-interval", "20ms")
		p.tNextCount(t)

		dir := tCheckpointDir(t)
		_, err := tNew(t, b).Checkpoint(ctx, p.PID, dir)
		ce := tCRIUError(t, err)
		tCausesMention(t, ce, "TCP")
		tNoCheckpoint(t, dir)
		p.tRunning(t)

		c := tNew(t, b, dockercr.WithTCPEstablished())
		r := tDumpRestoreRunning(t, c, p, dir)
		// Each count line is one echoed round trip on the restored
		// connection; tWaitLine fails on an "error" line.
		first := r.tNextCount(t)
		for range 3 {
			first++
			if n := r.tNextCount(t); n != first {
				t.Fatalf("sequence %d after %d", n, first-1)
			}
		}
		r.tVerify(t)
	})
}

// tDumpRestoreRunning dumps p with c into dir, restores it and checks
// that it goes on counting from the dumped value. It returns the
// restored process.
func tDumpRestoreRunning(t *testing.T, c *dockercr.Checkpointer, p *proc, dir string) *proc {
	t.Helper()
	ctx := tContext(t)
	if _, err := c.Checkpoint(ctx, p.PID, dir); err != nil {
		tCRIUError(t, err)
		t.Fatal(err)
	}
	p.tWaitGone(t)
	last := p.tLastCount(t)
	res, err := c.Restore(ctx, dir)
	if err != nil {
		tCRIUError(t, err)
		t.Fatal(err)
	}
	r := tAdopt(t, p, res.PID)
	if next := r.tNextCount(t); next != last+1 {
		t.Fatalf("after restore the count goes on at %d, dumped at %d", next, last)
	}
	return r
}

// TestFileLocks dumps a held flock: refused without WithFileLocks, held
// again after a restore with it.
func TestFileLocks(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		ctx := tContext(t)
		lock := filepath.Join(t.TempDir(), "lock")
		p := tStartWorkload(t, nil, "flock", "-file", lock, "-interval", "20ms")
		p.tVerify(t)

		dir := tCheckpointDir(t)
		_, err := tNew(t, b).Checkpoint(ctx, p.PID, dir)
		ce := tCRIUError(t, err)
		tCausesMention(t, ce, "lock")
		tNoCheckpoint(t, dir)
		p.tRunning(t)

		r := tDumpRestoreRunning(t, tNew(t, b, dockercr.WithFileLocks()), p, dir)
		if line := r.tVerify(t); !strings.Contains(line, "held") {
			t.Fatalf("lock after restore: %s", line)
		}
	})
}

// TestGhostLimit dumps a deleted 4 MiB file that is still open: refused
// with CRIU's default 1 MiB ghost limit, restored with 8 MiB.
func TestGhostLimit(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		ctx := tContext(t)
		file := filepath.Join(t.TempDir(), "ghost")
		p := tStartWorkload(t, nil, "deleted", "-file", file, "-kib", "4096", "-interval", "20ms")
		p.tVerify(t)

		dir := tCheckpointDir(t)
		_, err := tNew(t, b).Checkpoint(ctx, p.PID, dir)
		ce := tCRIUError(t, err)
		tCausesMention(t, ce, "ghost", "limit")
		tNoCheckpoint(t, dir)
		p.tRunning(t)

		r := tDumpRestoreRunning(t, tNew(t, b, dockercr.WithGhostLimit(8<<20)), p, dir)
		r.tVerify(t)
	})
}

// TestShellJob dumps a workload whose stdin is a pseudo-terminal the
// test holds: refused without WithShellJob, and with it restored onto
// the same terminal, handed back with WithInheritFd under CRIU's key
// for an external tty, "tty[RDEV:DEV]" of the terminal's slave side.
func TestShellJob(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		ctx := tContext(t)
		slave := tOpenPTY(t)
		p := tStart(t, startSpec{Args: []string{"tty", "-interval", "20ms"}, TTY: slave})
		p.tVerify(t)

		dir := tCheckpointDir(t)
		_, err := tNew(t, b).Checkpoint(ctx, p.PID, dir)
		ce := tCRIUError(t, err)
		tCausesMention(t, ce, "tty")
		tNoCheckpoint(t, dir)
		p.tRunning(t)

		var st unix.Stat_t
		if err := unix.Fstat(int(slave.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("tty[%x:%x]", st.Rdev, st.Dev)
		c := tNew(t, b, dockercr.WithShellJob(), dockercr.WithInheritFd(key, slave))
		r := tDumpRestoreRunning(t, c, p, dir)
		if line := r.tVerify(t); !strings.HasSuffix(line, " tty="+slave.Name()) {
			t.Fatalf("after restore: %s, want the terminal %s", line, slave.Name())
		}
	})
}

// tOpenPTY opens a new pseudo-terminal and returns its slave side; both
// sides are closed at cleanup.
func tOpenPTY(t *testing.T) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return slave
}

// TestMPTCPHint dumps the tcp workload with Go's default MPTCP listener:
// CRIU refuses it, and the error's summary carries CRIU's hint.
func TestMPTCPHint(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		// An empty GODEBUG undoes the helper's multipathtcp=0.
		p := tStartWorkload(t, []string{"GODEBUG="}, "tcp", "-interval", "20ms")
		ready := p.tWaitLineAt(t, 0, "ready ")
		if !strings.Contains(ready, "listener-proto=mptcp") {
			t.Fatalf("the listener is not MPTCP, nothing to refuse: %s", ready)
		}
		p.tNextCount(t)

		dir := tCheckpointDir(t)
		_, err := tNew(t, b, dockercr.WithTCPEstablished()).Checkpoint(tContext(t), p.PID, dir)
		ce := tCRIUError(t, err)
		tCausesMention(t, ce, "Unsupported proto 262")
		if !strings.Contains(err.Error(), "GODEBUG=multipathtcp=0") {
			t.Fatalf("Error() lacks CRIU's hint: %s", err)
		}
		tNoCheckpoint(t, dir)
		p.tRunning(t)
	})
}

// oldCRIUDefault is where scripts/setup.sh installs Debian 12's criu
// 3.17.1, the binary the version gate is tested with.
const oldCRIUDefault = "/opt/dockercr/bin/criu-old"

// tOldCRIU returns DOCKERCR_OLD_CRIU, or the setup script's default.
func tOldCRIU(t *testing.T) string {
	t.Helper()
	path := os.Getenv("DOCKERCR_OLD_CRIU")
	if path == "" {
		path = oldCRIUDefault
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("old criu for the version gate: %v (make setup installs it)", err)
		}
		t.Skipf("old criu for the version gate: %v (make setup installs it)", err)
	}
	return path
}

// TestVersionGate checkpoints with Debian 12's criu 3.17.1: refused
// before any dump, with the version found.
func TestVersionGate(t *testing.T) {
	tRequireEnv(t)
	old := tOldCRIU(t)
	p := tStartWorkload(t, nil, "counter", "-interval", "20ms")
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		dir := tCheckpointDir(t)
		_, err := tNew(t, b, dockercr.WithCriuPath(old)).Checkpoint(tContext(t), p.PID, dir)
		if !errors.Is(err, dockercr.ErrCRIUTooOld) {
			t.Fatalf("got %v, want ErrCRIUTooOld", err)
		}
		var ve *dockercr.VersionError
		if !errors.As(err, &ve) {
			t.Fatalf("%v is not a *VersionError", err)
		}
		if want := (dockercr.Version{Major: 3, Minor: 17, Patch: 1}); ve.Found != want || ve.Path != old {
			t.Fatalf("VersionError found %v at %q, want %v at %q", ve.Found, ve.Path, want, old)
		}
		if ve.Min != dockercr.MinCRIUVersion {
			t.Fatalf("VersionError min %v, want %v", ve.Min, dockercr.MinCRIUVersion)
		}
		tNoCheckpoint(t, dir)
		if entries := tEntries(t, filepath.Dir(dir)); len(entries) != 0 {
			t.Fatalf("refused before the dump, yet %q was written", entries)
		}
	})
	p.tRunning(t)
}

// TestCRIUNotFound points the Checkpointer at criu binaries that do not
// exist, by path and by name, with every built-in backend.
func TestCRIUNotFound(t *testing.T) {
	tRequireEnv(t)
	p := tStartWorkload(t, nil, "counter", "-interval", "20ms")
	paths := map[string]string{
		"path": filepath.Join(t.TempDir(), "no-such-criu"),
		"name": "dockercr-no-such-criu",
	}
	all := append(backends[:len(backends):len(backends)], struct {
		name string
		new  func() dockercr.Backend
	}{"auto", dockercr.AutoBackend})
	for kind, path := range paths {
		for _, b := range all {
			t.Run(kind+"/"+b.name, func(t *testing.T) {
				dir := tCheckpointDir(t)
				_, err := tNew(t, b.new(), dockercr.WithCriuPath(path)).Checkpoint(tContext(t), p.PID, dir)
				if !errors.Is(err, dockercr.ErrCRIUNotFound) {
					t.Fatalf("got %v, want ErrCRIUNotFound", err)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("error %q does not name %q", err, path)
				}
				tNoCheckpoint(t, dir)
			})
		}
	}
	p.tRunning(t)
}

// TestProcessNotFound checkpoints a PID no process can have.
func TestProcessNotFound(t *testing.T) {
	tRequireEnv(t)
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	// PIDs are below pid_max, so pid_max itself is never in use.
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		dir := tCheckpointDir(t)
		_, err := tNew(t, b).Checkpoint(tContext(t), pid, dir)
		if !errors.Is(err, dockercr.ErrProcessNotFound) {
			t.Fatalf("got %v, want ErrProcessNotFound", err)
		}
		if entries := tEntries(t, filepath.Dir(dir)); len(entries) != 0 {
			t.Fatalf("checkpoint of a missing pid wrote %q", entries)
		}
	})
}

// Child mode and exit codes of the unprivileged checkpoint.
const (
	modeCheckpoint       = "checkpoint"
	exitNotPermitted     = 0
	exitOtherError       = 3
	exitNoError          = 4
	nobodyUID, nobodyGID = 65534, 65534
)

func init() {
	childModes[modeCheckpoint] = childCheckpoint
}

// childCheckpoint runs in the re-executed test binary: it checkpoints
// DOCKERCR_TEST_PID with backend DOCKERCR_TEST_BACKEND into
// DOCKERCR_TEST_DIR and says with its exit code whether the error was
// ErrNotPermitted.
func childCheckpoint() int {
	pid, _ := strconv.Atoi(os.Getenv("DOCKERCR_TEST_PID"))
	var b dockercr.Backend = dockercr.ExecBackend()
	if os.Getenv("DOCKERCR_TEST_BACKEND") == "rpc" {
		b = dockercr.RPCBackend()
	}
	c, err := dockercr.New(dockercr.WithBackend(b), dockercr.WithCriuPath(os.Getenv("DOCKERCR_CRIU")))
	if err == nil {
		_, err = c.Checkpoint(context.Background(), pid, os.Getenv("DOCKERCR_TEST_DIR"))
	}
	fmt.Fprintln(os.Stderr, "checkpoint as uid", os.Geteuid(), "->", err)
	switch {
	case err == nil:
		return exitNoError
	case errors.Is(err, dockercr.ErrNotPermitted):
		return exitNotPermitted
	}
	return exitOtherError
}

// TestNotPermitted checkpoints as uid 65534 from a re-executed test
// binary: ErrNotPermitted, and the workload untouched.
func TestNotPermitted(t *testing.T) {
	tRequireEnv(t)
	p := tStartWorkload(t, nil, "counter", "-interval", "20ms")
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		parent := t.TempDir()
		// The child may write nothing here, and must not try.
		code, out := tRunAs(t, nobodyUID, nobodyGID, modeCheckpoint,
			"DOCKERCR_TEST_PID="+strconv.Itoa(p.PID),
			"DOCKERCR_TEST_BACKEND="+b.Name(),
			"DOCKERCR_TEST_DIR="+filepath.Join(parent, "ckpt"),
			"DOCKERCR_CRIU="+env.criu)
		if code != exitNotPermitted {
			t.Fatalf("unprivileged checkpoint exited %d, want %d (ErrNotPermitted): %s",
				code, exitNotPermitted, out)
		}
		t.Logf("child: %s", strings.TrimSpace(out))
		if entries := tEntries(t, parent); len(entries) != 0 {
			t.Fatalf("unprivileged checkpoint wrote %q", entries)
		}
	})
	p.tRunning(t)
}

// tCriuWrapper writes a criu wrapper script that appends its first
// argument to a log and then runs the real criu, except for `swrk`
// when failSwrk is set: then it exits 1 before speaking RPC. It returns
// the script and a function reading the logged commands.
func tCriuWrapper(t *testing.T, failSwrk bool) (string, func() []string) {
	t.Helper()
	dir := t.TempDir()
	script, calls := filepath.Join(dir, "criu"), filepath.Join(dir, "calls")
	fail := ""
	if failSwrk {
		fail = "[ \"$1\" = swrk ] && exit 1\n"
	}
	text := fmt.Sprintf("#!/bin/sh\necho \"$1\" >> '%s'\n%sexec '%s' \"$@\"\n", calls, fail, env.criu)
	if err := os.WriteFile(script, []byte(text), 0o700); err != nil {
		t.Fatal(err)
	}
	return script, func() []string {
		b, err := os.ReadFile(calls)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(b))
	}
}

// TestFallback runs AutoBackend against a criu whose swrk cannot speak
// RPC: it falls back to exec; RPCBackend alone reports ErrRPCUnavailable.
func TestFallback(t *testing.T) {
	tRequireEnv(t)
	criu, calls := tCriuWrapper(t, true)

	t.Run("auto falls back to exec", func(t *testing.T) {
		ctx := tContext(t)
		p := tStartWorkload(t, nil, "counter", "-interval", "20ms")
		p.tNextCount(t)
		c := tNew(t, dockercr.AutoBackend(), dockercr.WithCriuPath(criu))
		dir := tCheckpointDir(t)
		res, err := c.Checkpoint(ctx, p.PID, dir)
		if err != nil {
			t.Fatal(err)
		}
		if res.Backend != "exec" {
			t.Fatalf("Backend %q, want exec after the RPC failure", res.Backend)
		}
		p.tWaitGone(t)
		last := p.tLastCount(t)
		rres, err := c.Restore(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		r := tAdopt(t, p, rres.PID)
		if rres.Backend != "exec" {
			t.Fatalf("restore Backend %q, want exec", rres.Backend)
		}
		if next := r.tNextCount(t); next != last+1 {
			t.Fatalf("count %d after restore, dumped at %d", next, last)
		}
		// Each call tried swrk first; the version probe (a checkpoint
		// probes no features unless an option needs them), the dump
		// and the restore then ran as exec.
		if got := calls(); countEqual(got, "swrk") != 3 || countEqual(got, "--version") != 1 ||
			countEqual(got, "dump") != 1 || countEqual(got, "restore") != 1 || len(got) != 6 {
			t.Fatalf("criu ran as %q", got)
		}
	})

	t.Run("rpc alone fails", func(t *testing.T) {
		p := tStartWorkload(t, nil, "counter", "-interval", "20ms")
		dir := tCheckpointDir(t)
		_, err := tNew(t, dockercr.RPCBackend(), dockercr.WithCriuPath(criu)).Checkpoint(tContext(t), p.PID, dir)
		if !errors.Is(err, dockercr.ErrRPCUnavailable) {
			t.Fatalf("got %v, want ErrRPCUnavailable", err)
		}
		tNoCheckpoint(t, dir)
		p.tRunning(t)
	})
}

// countEqual counts the elements of s equal to v.
func countEqual(s []string, v string) int {
	n := 0
	for _, e := range s {
		if e == v {
			n++
		}
	}
	return n
}

// TestNoRetryOfCRIUFailure dumps a TCP connection without
// WithTCPEstablished through AutoBackend: CRIU's own refusal comes back
// from RPC and is not retried with exec, which would freeze the tree a
// second time.
func TestNoRetryOfCRIUFailure(t *testing.T) {
	tRequireEnv(t)
	criu, calls := tCriuWrapper(t, false)
	p := tStartWorkload(t, nil, "tcp", "-interval", "20ms")
	p.tNextCount(t)

	dir := tCheckpointDir(t)
	_, err := tNew(t, dockercr.AutoBackend(), dockercr.WithCriuPath(criu)).Checkpoint(tContext(t), p.PID, dir)
	ce := tCRIUError(t, err)
	if ce.Backend != "rpc" {
		t.Fatalf("failure from backend %q, want rpc", ce.Backend)
	}
	if errors.Is(err, dockercr.ErrRPCUnavailable) {
		t.Fatalf("CRIU's refusal %v counts as an RPC channel failure", err)
	}
	// The version probe and the dump: two swrk runs, no criu dump.
	if got := calls(); len(got) != 2 || countEqual(got, "swrk") != 2 {
		t.Fatalf("criu ran as %q, want swrk twice", got)
	}
	log, err := os.ReadFile(ce.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	// CRIU logs its version once per run, at the start.
	if n := strings.Count(string(log), ") Version: "); n != 1 {
		t.Fatalf("the dump log shows %d dump runs, want 1", n)
	}
	p.tRunning(t)
}

// cancelMiB is the memory workload of the cancellation tests: a full
// dump of it takes about 2 s here when the page cache absorbs the
// writes, and up to 19 s when the disk is the limit; 1 GiB was seen
// finishing in 0.92 s, before the latest cancel point.
const cancelMiB = "2048"

// TestCancel cancels dumps of a large memory workload at several points
// and through WithTimeout: each returns promptly with the cause, leaves
// no checkpoint, and the workload runs on, neither stopped nor traced.
func TestCancel(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		p := tStartWorkload(t, nil, "mem", "-mib", cancelMiB, "-interval", "20ms")
		// Leave-running, so that a dump which beats its cancel point
		// fails only its own subtest, not the next ones.
		c := tNew(t, b, dockercr.WithLeaveRunning())
		// Probe first, so that every cancel point falls in the dump.
		if _, err := c.Check(tContext(t)); err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond, time.Second} {
			t.Run("cancel at "+at.String(), func(t *testing.T) {
				ctx, cancel := context.WithCancel(tContext(t))
				defer cancel()
				time.AfterFunc(at, cancel)
				err := tCancelledDump(t, c, ctx, p, at)
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("got %v, want context.Canceled", err)
				}
			})
		}
		t.Run("WithTimeout 300ms", func(t *testing.T) {
			ct := tNew(t, b, dockercr.WithLeaveRunning(), dockercr.WithTimeout(300*time.Millisecond))
			if _, err := ct.Check(tContext(t)); err != nil {
				t.Fatal(err)
			}
			err := tCancelledDump(t, ct, tContext(t), p, 300*time.Millisecond)
			if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "WithTimeout(300ms)") {
				t.Fatalf("got %v, want the WithTimeout cause and context.DeadlineExceeded", err)
			}
		})
	})
}

// tCancelledDump checkpoints p with a context that ends at about at,
// checks what the stopped dump left behind and returns its error.
func tCancelledDump(t *testing.T, c *dockercr.Checkpointer, ctx context.Context, p *proc, at time.Duration) error {
	t.Helper()
	dir := tCheckpointDir(t)
	start := time.Now()
	_, err := c.Checkpoint(ctx, p.PID, dir)
	took := time.Since(start)
	t.Logf("stopped at %v: returned after %v: %v", at, took, err)
	if err == nil {
		t.Fatalf("the dump finished within %v; make the workload larger", took)
	}
	if took > at+5*time.Second {
		t.Errorf("returned %v after the cancel", took-at)
	}
	ce := tCRIUError(t, err)
	t.Logf("criu's last words: %s", tLastLogLine(t, ce.LogPath))
	tReapOrphans(t)
	tNoCheckpoint(t, dir)
	p.tRunning(t)
	return err
}

// tLastLogLine returns the last line of CRIU's log at path: where a
// stopped run had got to.
func tLastLogLine(t *testing.T, path string) string {
	t.Helper()
	if path == "" {
		// Stopped before CRIU opened its log: nothing was kept.
		return "(no log yet)"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("log of the stopped dump: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// TestFeatures holds Check's feature report against the kernel, probed
// here without CRIU, and checks that WithTrackMem is refused before any
// dump where the kernel cannot track dirty memory.
func TestFeatures(t *testing.T) {
	tRequireEnv(t)
	softDirty, uffd := kernelSoftDirty(t), kernelUserfaultfd()
	t.Logf("kernel: soft-dirty %v, userfaultfd %v", softDirty, uffd)

	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		ctx := tContext(t)
		c := tNew(t, b, dockercr.WithTrackMem(), dockercr.WithLeaveRunning())
		envr, err := c.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if envr.CRIUVersion != env.version || envr.Backend != b.Name() {
			t.Errorf("Check: version %v backend %q; criu --version says %v",
				envr.CRIUVersion, envr.Backend, env.version)
		}
		if envr.Features.MemTrack != softDirty {
			t.Errorf("Features.MemTrack %v, kernel soft-dirty %v", envr.Features.MemTrack, softDirty)
		}
		if envr.Features.LazyPages != uffd {
			t.Errorf("Features.LazyPages %v, kernel userfaultfd %v", envr.Features.LazyPages, uffd)
		}

		p := tStartWorkload(t, nil, "counter", "-interval", "20ms")
		dir := tCheckpointDir(t)
		_, err = c.Checkpoint(ctx, p.PID, dir)
		if softDirty {
			// Where the kernel tracks dirty memory, the dump goes on.
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		var fe *dockercr.FeatureError
		if !errors.As(err, &fe) || !errors.Is(err, dockercr.ErrNotSupported) {
			t.Fatalf("got %v, want a *FeatureError matching ErrNotSupported", err)
		}
		if len(fe.Missing) != 1 || fe.Missing[0].Feature != "mem_dirty_track" {
			t.Fatalf("missing %+v, want mem_dirty_track", fe.Missing)
		}
		if entries := tEntries(t, filepath.Dir(dir)); len(entries) != 0 {
			t.Fatalf("refused before the dump, yet %q was written", entries)
		}
		p.tRunning(t)
	})
}

// kernelSoftDirty reports whether the kernel tracks soft-dirty pages:
// after clearing the bits (clear_refs 4), a write to a page must set
// bit 55 of its pagemap entry.
func kernelSoftDirty(t *testing.T) bool {
	t.Helper()
	page := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1
	if err := os.WriteFile("/proc/self/clear_refs", []byte("4"), 0); err != nil {
		t.Logf("clear_refs 4: %v", err)
		return false
	}
	mem[0] = 2

	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var entry [8]byte
	addr := uintptr(unsafe.Pointer(&mem[0]))
	if _, err := f.ReadAt(entry[:], int64(addr/uintptr(page))*8); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(entry[:])&(1<<55) != 0
}

// kernelUserfaultfd reports whether the userfaultfd syscall works.
func kernelUserfaultfd() bool {
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK, 0, 0)
	if errno != 0 {
		return false
	}
	unix.Close(int(fd))
	return true
}

// TestExistingCheckpoint checks that a checkpoint is never overwritten
// unless asked, and that WithReplaceExisting puts the newer dump in its
// place.
func TestExistingCheckpoint(t *testing.T) {
	tRequireEnv(t)
	forEachBackend(t, func(t *testing.T, b dockercr.Backend) {
		ctx := tContext(t)
		p := tStartWorkload(t, nil, "counter", "-interval", "20ms")
		p.tNextCount(t)
		dir := tCheckpointDir(t)
		if _, err := tNew(t, b, dockercr.WithLeaveRunning()).Checkpoint(ctx, p.PID, dir); err != nil {
			t.Fatal(err)
		}
		first := p.tLastCount(t)
		marker := filepath.Join(dir, "marker")
		if err := os.WriteFile(marker, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := tSnapshot(t, dir)

		_, err := tNew(t, b).Checkpoint(ctx, p.PID, dir)
		if !errors.Is(err, dockercr.ErrCheckpointExists) {
			t.Fatalf("got %v, want ErrCheckpointExists", err)
		}
		if after := tSnapshot(t, dir); !maps.Equal(before, after) {
			t.Fatal("the existing checkpoint changed")
		}
		p.tRunning(t)

		// The replacing dump is later: its count is past the first's.
		c := tNew(t, b, dockercr.WithReplaceExisting())
		r := tDumpRestoreRunning(t, c, p, dir)
		if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the old checkpoint's marker survived the replace: %v", err)
		}
		if n := r.tLastCount(t); n <= first+1 {
			t.Fatalf("restored count %d, the first dump was at %d: old images restored?", n, first)
		}
		if entries := tEntries(t, filepath.Dir(dir)); len(entries) != 1 {
			t.Fatalf("checkpoint parent holds %q after the replace", entries)
		}
	})
}

// tSnapshot maps each file under dir to its content.
func tSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
