package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr"
	"github.com/docker-cr/dockercr/internal/modes"
)

// lineTimeout bounds the wait for any one expected line of a workload.
const lineTimeout = 15 * time.Second

// ours holds the PIDs the helpers started or adopted; tReapOrphans
// leaves them alone.
var ours sync.Map

// backends are the built-in backends that tests run as subtests named
// after them.
var backends = []struct {
	name string
	new  func() dockercr.Backend
}{
	{"rpc", dockercr.RPCBackend},
	{"exec", dockercr.ExecBackend},
}

// tRequireEnv skips the test with the reason TestMain found, if any.
// With DOCKERCR_REQUIRE_INTEGRATION=1 TestMain fails before any test.
func tRequireEnv(t *testing.T) {
	t.Helper()
	if env.skip != "" {
		t.Skip("integration environment missing: " + env.skip)
	}
}

// forEachBackend runs f as one subtest per built-in backend.
func forEachBackend(t *testing.T, f func(t *testing.T, b dockercr.Backend)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.new()) })
	}
}

// tNew returns a Checkpointer on the criu under test, with backend b
// (nil for the default), logging to the test's output, then opts.
func tNew(t *testing.T, b dockercr.Backend, opts ...dockercr.Option) *dockercr.Checkpointer {
	t.Helper()
	base := []dockercr.Option{
		dockercr.WithCriuPath(env.criu),
		dockercr.WithLogger(slog.New(slog.NewTextHandler(t.Output(),
			&slog.HandlerOptions{Level: slog.LevelDebug}))),
	}
	if b != nil {
		base = append(base, dockercr.WithBackend(b))
	}
	c, err := dockercr.New(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// proc is a workload process: started by [tStartWorkload], or restored
// by CRIU and adopted with [tAdopt]. Its stdout and stderr go to one
// file, which a restored process goes on writing to.
type proc struct {
	PID  int
	out  string
	kind string
	// next is the index of the first output line not yet consumed.
	next int
	// cmd is set for a process this test started, nil for an adopted
	// one; done is closed once cmd.Wait returned.
	cmd  *exec.Cmd
	done chan struct{}
}

// startSpec describes a workload to start. Env entries are added to the
// test's environment after GODEBUG=multipathtcp=0 (Go 1.24+ would open
// MPTCP sockets, which CRIU refuses), so a GODEBUG in Env wins.
type startSpec struct {
	Args []string
	Env  []string
	// TTY, if set, is the workload's stdin and controlling terminal.
	TTY *os.File
}

// tStartWorkload starts the testworkload with args in a session of its
// own, waits for its ready line and registers a cleanup that kills it
// by PID and reaps it.
func tStartWorkload(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return tStart(t, startSpec{Args: args, Env: env})
}

func tStart(t *testing.T, spec startSpec) *proc {
	t.Helper()
	outPath := filepath.Join(t.TempDir(), "workload.out")
	out, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	cmd := exec.Command(env.workload, spec.Args...)
	cmd.Env = append(append(os.Environ(), "GODEBUG=multipathtcp=0"), spec.Env...)
	cmd.Stdout, cmd.Stderr = out, out
	// A session of its own: CRIU then needs no --shell-job for it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if spec.TTY != nil {
		cmd.Stdin = spec.TTY
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	p := &proc{PID: cmd.Process.Pid, out: outPath, kind: spec.Args[0],
		cmd: cmd, done: make(chan struct{})}
	ours.Store(p.PID, true)
	go func() {
		_ = cmd.Wait()
		ours.Delete(p.PID)
		close(p.done)
	}()
	t.Cleanup(func() {
		// Through the process handle (a pidfd): never a PID reused by
		// a restored process.
		_ = cmd.Process.Kill()
		<-p.done
	})

	p.tWaitLine(t, "ready ")
	return p
}

// tWaitGone waits until a started workload has exited (CRIU kills the
// tree after a dump) and has been reaped, so that its PID is free for
// the restore.
func (p *proc) tWaitGone(t *testing.T) {
	t.Helper()
	if p.cmd == nil {
		t.Fatalf("pid %d was not started by this test", p.PID)
	}
	select {
	case <-p.done:
	case <-time.After(lineTimeout):
		t.Fatalf("pid %d still runs %v after the dump", p.PID, lineTimeout)
	}
	p.next = len(p.lines(t))
}

// tAdopt takes over a process CRIU restored from p's checkpoint. It
// reads on from p's output, checks that the process is a child of the
// test (the subreaper) and registers a cleanup that kills and reaps it.
func tAdopt(t *testing.T, p *proc, pid int) *proc {
	t.Helper()
	if ppid, err := parentPID(pid); err != nil || ppid != os.Getpid() {
		t.Fatalf("restored pid %d has parent %d (%v), want the test process %d",
			pid, ppid, err, os.Getpid())
	}
	ours.Store(pid, true)
	t.Cleanup(func() {
		_ = unix.Kill(pid, unix.SIGKILL)
		tReap(t, pid)
		ours.Delete(pid)
	})
	return &proc{PID: pid, out: p.out, kind: p.kind, next: p.next}
}

// tReapOrphans reaps the zombies this process adopted as subreaper
// that no helper started, such as the helpers of a criu killed on
// cancel, and fails if such a process still runs after a grace time:
// a stopped call must not leave criu's helpers behind. Call it only
// while no call of the library runs.
func tReapOrphans(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var alive []string
		for _, pid := range childPIDs() {
			if _, mine := ours.Load(pid); mine {
				continue
			}
			if state, err := procState(pid); err != nil || state != 'Z' {
				alive = append(alive, describePID(pid))
				continue
			}
			var ws unix.WaitStatus
			if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil {
				t.Errorf("reap orphan %d: %v", pid, err)
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left running by a stopped call: %s", strings.Join(alive, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tReap waits for the child pid, and only for it: waiting on -1 would
// steal the exit status of an exec.Cmd's child.
func tReap(t *testing.T, pid int) unix.WaitStatus {
	t.Helper()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Errorf("wait for pid %d: %v", pid, err)
		}
		return ws
	}
}

// lines returns the complete lines the process has written.
func (p *proc) lines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(p.out)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	} else {
		return nil
	}
	return strings.Split(string(b), "\n")
}

// tWaitLine waits for the next line starting with prefix, consumes it
// and the lines before it, and returns it. It fails at once on an
// "error" line or if the process died.
func (p *proc) tWaitLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		lines := p.lines(t)
		for i := p.next; i < len(lines); i++ {
			if strings.HasPrefix(lines[i], "error") {
				t.Fatalf("pid %d: %s", p.PID, lines[i])
			}
			if strings.HasPrefix(lines[i], prefix) {
				p.next = i + 1
				return lines[i]
			}
		}
		if state, err := procState(p.PID); err != nil || state == 'Z' || state == 'X' {
			t.Fatalf("pid %d is gone (state %q, %v) while waiting for %q; output:\n%s",
				p.PID, state, err, prefix, p.tail(t))
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: no %q line within %v; output:\n%s", p.PID, prefix, lineTimeout, p.tail(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tWaitLineAt is tWaitLine from line index i on, for lines already
// consumed such as the ready line.
func (p *proc) tWaitLineAt(t *testing.T, i int, prefix string) string {
	t.Helper()
	p.next = i
	return p.tWaitLine(t, prefix)
}

// tNextCount waits for the next count line and returns its number.
func (p *proc) tNextCount(t *testing.T) int {
	t.Helper()
	return countOf(t, p.tWaitLine(t, p.countPrefix()))
}

// tLastCount returns the number of the last count line written, -1 if
// there is none.
func (p *proc) tLastCount(t *testing.T) int {
	t.Helper()
	lines := p.lines(t)
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], p.countPrefix()) {
			return countOf(t, lines[i])
		}
	}
	return -1
}

// tVerify sends SIGUSR1 and returns the verify line it answers with;
// anything but "verify ok" fails the test.
func (p *proc) tVerify(t *testing.T) string {
	t.Helper()
	p.next = len(p.lines(t))
	if err := unix.Kill(p.PID, unix.SIGUSR1); err != nil {
		t.Fatalf("signal pid %d: %v", p.PID, err)
	}
	line := p.tWaitLine(t, "verify ")
	if !strings.HasPrefix(line, "verify ok ") {
		t.Fatalf("pid %d: %s", p.PID, line)
	}
	return line
}

// tRunning fails unless the process is running freely: not stopped or
// traced (a dump that gave up must let go of it), still counting, and
// its own check passes.
func (p *proc) tRunning(t *testing.T) {
	t.Helper()
	state, err := procState(p.PID)
	if err != nil || state == 'T' || state == 't' || state == 'Z' {
		t.Fatalf("pid %d: state %q (%v)", p.PID, state, err)
	}
	if tracer, err := tracerPID(p.PID); err != nil || tracer != 0 {
		t.Fatalf("pid %d: TracerPid %d (%v)", p.PID, tracer, err)
	}
	before := p.tLastCount(t)
	p.next = len(p.lines(t))
	if n := p.tNextCount(t); n <= before {
		t.Fatalf("pid %d counts %d after %d", p.PID, n, before)
	}
	p.tVerify(t)
}

func (p *proc) countPrefix() string {
	if p.kind == "counter" {
		return "count "
	}
	return p.kind + " "
}

func (p *proc) tail(t *testing.T) string {
	t.Helper()
	lines := p.lines(t)
	return strings.Join(lines[max(0, len(lines)-10):], "\n")
}

func countOf(t *testing.T, line string) int {
	t.Helper()
	_, num, _ := strings.Cut(line, " ")
	n, err := strconv.Atoi(num)
	if err != nil {
		t.Fatalf("not a count line: %q", line)
	}
	return n
}

// procState returns the state letter from /proc/PID/stat.
func procState(pid int) (byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("malformed stat of %d", pid)
	}
	return b[i+2], nil
}

// statusField returns a numeric field of /proc/PID/status.
func statusField(pid int, name string) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", name, pid)
}

func tracerPID(pid int) (int, error) { return statusField(pid, "TracerPid") }

func parentPID(pid int) (int, error) { return statusField(pid, "PPid") }

// tCheckpointDir returns a path for a checkpoint in a fresh directory;
// the directory itself does not exist yet.
func tCheckpointDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "ckpt")
}

// tEntries lists the names in dir.
func tEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// tNoCheckpoint fails if dir exists, or if its parent holds anything
// but a kept log of a failed dump (.NAME.failed).
func tNoCheckpoint(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("checkpoint dir %s exists after a failure (%v)", dir, err)
	}
	failed := "." + filepath.Base(dir) + ".failed"
	for _, name := range tEntries(t, filepath.Dir(dir)) {
		if name != failed {
			t.Fatalf("failed checkpoint left %s in %s", name, filepath.Dir(dir))
		}
		// What is kept is for reading: the log, never the images.
		kept := filepath.Join(filepath.Dir(dir), failed)
		if _, err := os.Stat(filepath.Join(kept, dockercr.ImagesDirName)); err == nil {
			t.Fatalf("failed checkpoint kept its images in %s", kept)
		}
	}
}

// tModes walks root and fails unless dirs are 0700 and files 0600.
func tModes(t *testing.T, root string) {
	t.Helper()
	bad, err := modes.Violations(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bad {
		t.Error(line)
	}
}

// tCRIUError fails unless err is a *dockercr.CRIUError, and returns it.
func tCRIUError(t *testing.T, err error) *dockercr.CRIUError {
	t.Helper()
	var ce *dockercr.CRIUError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *CRIUError", err, err)
	}
	t.Logf("criu error detail:\n%s", ce.Detail())
	return ce
}

// tCausesMention fails unless some root cause contains every word.
func tCausesMention(t *testing.T, ce *dockercr.CRIUError, words ...string) {
	t.Helper()
	for _, c := range ce.Causes {
		all := true
		for _, w := range words {
			all = all && strings.Contains(c, w)
		}
		if all {
			return
		}
	}
	t.Fatalf("no root cause mentions %q; causes %q", words, ce.Causes)
}

// tContext returns a context bounded well below the test timeout.
func tContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// childModeEnv selects a mode of the re-executed test binary; see
// [tRunAs].
const childModeEnv = "DOCKERCR_TEST_CHILD_MODE"

// childModes are what a re-executed test binary can do. Each reads its
// input from DOCKERCR_TEST_* variables and answers with its exit code.
var childModes = map[string]func() int{}

func runChildMode(mode string) int {
	f, ok := childModes[mode]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", childModeEnv, mode)
		return 125
	}
	return f()
}

// tRunAs re-executes the test binary as uid/gid in the given child
// mode and returns its exit code. The binary is copied to a directory
// that user can reach: go test's own build directory is 0700.
func tRunAs(t *testing.T, uid, gid uint32, mode string, env ...string) (int, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "dockercr-child-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "integration.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append([]string{childModeEnv + "=" + mode}, env...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run %s as uid %d: %v", mode, uid, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}
