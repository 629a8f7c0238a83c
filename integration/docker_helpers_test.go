package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr"
)

// dockerLineTimeout bounds the wait for one expected line of a
// container's log; a restore through Docker takes a few seconds.
const dockerLineTimeout = 30 * time.Second

// dockerFixture is one test's client, checkpoint base and library.
type dockerFixture struct {
	ctx  context.Context
	cli  *client.Client
	base string
}

// dockerHostLock coordinates the Docker tests of test runs that share
// the host: each test holds it shared, the one that changes runc's
// CRIU configuration on purpose holds it exclusively.
const dockerHostLock = "/run/dockercr-integration-docker.lock"

// tDockerFixture requires the Docker environment and gives the test a
// client and an empty checkpoint base of its own. Call it after
// t.Parallel: it takes dockerHostLock shared until the test ends.
func tDockerFixture(t *testing.T) *dockerFixture {
	t.Helper()
	return tDockerFixtureLocked(t, unix.LOCK_SH)
}

// tDockerExclusiveFixture is [tDockerFixture] for a test that must run
// alone on the host.
func tDockerExclusiveFixture(t *testing.T) *dockerFixture {
	t.Helper()
	return tDockerFixtureLocked(t, unix.LOCK_EX)
}

func tDockerFixtureLocked(t *testing.T, how int) *dockerFixture {
	t.Helper()
	tDockerRequire(t)
	lock, err := dockerLock(dockerHostLock, how, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	t.Cleanup(cancel)
	return &dockerFixture{ctx: ctx, cli: tDockerClient(t),
		base: filepath.Join(t.TempDir(), "base")}
}

// tDocker returns the library on a Checkpointer with opts and the
// default backend.
func (f *dockerFixture) tDocker(t *testing.T, opts ...dockercr.Option) *dockercr.Docker {
	t.Helper()
	return f.tDockerOn(t, nil, opts...)
}

// tDockerOn is [dockerFixture.tDocker] on backend b.
func (f *dockerFixture) tDockerOn(t *testing.T, b dockercr.Backend,
	opts ...dockercr.Option) *dockercr.Docker {
	t.Helper()
	d, err := dockercr.NewDocker(tNew(t, b, opts...),
		dockercr.WithDockerClient(f.cli), dockercr.WithCheckpointBase(f.base))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// dockerSpec describes a test container. Unless Cmd is set it runs the
// workload with Args as PID 1, its stdout the container's log.
type dockerSpec struct {
	Args     []string
	Cmd      []string
	Env      []string
	HostNet  bool
	Init     bool
	ReadOnly bool
	Tmpfs    map[string]string
	Mounts   []mount.Mount
	Labels   map[string]string
}

// dockerCtr is a test container and how far its log has been read.
type dockerCtr struct {
	ctx  context.Context
	cli  *client.Client
	ID   string
	Name string
	kind string
	// next is the index of the first log line not yet consumed.
	next int
}

// tRun creates and starts a container, force-removes it by name when
// the test ends, and waits for the workload's ready line.
func (f *dockerFixture) tRun(t *testing.T, spec dockerSpec) *dockerCtr {
	t.Helper()
	cfg := &container.Config{Image: dockerEnv.image, Env: spec.Env, Labels: spec.Labels,
		Cmd: append([]string{"/testworkload"}, spec.Args...)}
	if len(spec.Cmd) > 0 {
		cfg.Cmd = spec.Cmd
	}
	hc := &container.HostConfig{
		NetworkMode:    "none",
		ReadonlyRootfs: spec.ReadOnly,
		Tmpfs:          spec.Tmpfs,
		Mounts:         spec.Mounts,
		Init:           &spec.Init,
	}
	if spec.HostNet {
		hc.NetworkMode = "host"
	}

	name := tDockerName(t, f.cli, "c")
	resp, err := f.cli.ContainerCreate(f.ctx, cfg, hc, nil, nil, name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if err := f.cli.ContainerStart(f.ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	c := &dockerCtr{ctx: f.ctx, cli: f.cli, ID: resp.ID, Name: name}
	if len(spec.Cmd) == 0 && len(spec.Args) > 0 {
		c.kind = spec.Args[0]
		c.tWaitLine(t, "ready ")
	}
	return c
}

// tAttach follows a container the library created (a clone).
func (f *dockerFixture) tAttach(t *testing.T, name, kind string) *dockerCtr {
	t.Helper()
	info, err := f.cli.ContainerInspect(f.ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return &dockerCtr{ctx: f.ctx, cli: f.cli, ID: info.ID, Name: name, kind: kind}
}

// tDockerName returns a fresh container name and force-removes the
// container of that name, if any, when the test ends.
func tDockerName(t *testing.T, cli *client.Client, role string) string {
	t.Helper()
	name := dockerName(t, role)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove container %s: %v", name, err)
		}
	})
	return name
}

// tLogs returns the container's complete stdout lines, and its stderr.
func (c *dockerCtr) tLogs(t *testing.T) ([]string, string) {
	t.Helper()
	rc, err := c.cli.ContainerLogs(c.ctx, c.ID,
		container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("logs of %s: %v", c.Name, err)
	}
	defer rc.Close()
	var out, errOut bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errOut, rc); err != nil {
		t.Fatalf("logs of %s: %v", c.Name, err)
	}
	b := out.Bytes()
	i := bytes.LastIndexByte(b, '\n')
	if i < 0 {
		return nil, errOut.String()
	}
	return strings.Split(string(b[:i]), "\n"), errOut.String()
}

func (c *dockerCtr) lines(t *testing.T) []string {
	t.Helper()
	lines, _ := c.tLogs(t)
	return lines
}

// tWaitLine waits for the next log line starting with prefix, consumes
// it and the lines before it, and returns it. An "error" line or the
// container stopping fails the test.
func (c *dockerCtr) tWaitLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.Now().Add(dockerLineTimeout)
	for poll := 0; ; poll++ {
		lines := c.lines(t)
		for i := c.next; i < len(lines); i++ {
			if strings.HasPrefix(lines[i], "error") {
				t.Fatalf("%s: %s\n%s", c.Name, lines[i], c.tail(t))
			}
			if strings.HasPrefix(lines[i], prefix) {
				c.next = i + 1
				return lines[i]
			}
		}
		if poll%20 == 19 && !c.tState(t).Running {
			t.Fatalf("%s stopped while waiting for %q:\n%s", c.Name, prefix, c.tail(t))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q line within %v:\n%s", c.Name, prefix, dockerLineTimeout, c.tail(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countPrefix starts the workload's count lines: its kind, which is
// the subcommand's name except for counter and writefile.
func (c *dockerCtr) countPrefix() string {
	switch c.kind {
	case "counter":
		return "count "
	case "writefile":
		return "write "
	}
	return c.kind + " "
}

// tNextCount waits for the next count line and returns its number.
func (c *dockerCtr) tNextCount(t *testing.T) int {
	t.Helper()
	return countOf(t, c.tWaitLine(t, c.countPrefix()))
}

// tWaitCount waits for count line n, so that a dump after it can
// tell a resumed workload from a restarted one.
func (c *dockerCtr) tWaitCount(t *testing.T, n int) {
	t.Helper()
	for c.tNextCount(t) < n {
	}
}

// tLastCount returns the number of the last count line in the log, -1
// if there is none, and marks the whole log consumed.
func (c *dockerCtr) tLastCount(t *testing.T) int {
	t.Helper()
	lines := c.lines(t)
	c.next = len(lines)
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], c.countPrefix()) {
			return countOf(t, lines[i])
		}
	}
	return -1
}

// tVerify signals the workload through Docker and fails unless it
// answers "verify ok".
func (c *dockerCtr) tVerify(t *testing.T) string {
	t.Helper()
	c.next = len(c.lines(t))
	if err := c.cli.ContainerKill(c.ctx, c.ID, "USR1"); err != nil {
		t.Fatalf("signal %s: %v", c.Name, err)
	}
	line := c.tWaitLine(t, "verify ")
	if !strings.HasPrefix(line, "verify ok ") {
		t.Fatalf("%s: %s", c.Name, line)
	}
	return line
}

// tResumed checks the first count lines after a restore: the workload
// goes on from last, the last count line written before the dump. The
// count is printed before it is incremented, so a dump that froze the
// workload between the two repeats last once; any other value means
// the workload restarted or lost state.
func (c *dockerCtr) tResumed(t *testing.T, last int) {
	t.Helper()
	if last < 2 {
		t.Fatalf("%s: a dump at count %d cannot tell a resume from a restart", c.Name, last)
	}
	first := c.tNextCount(t)
	if first != last && first != last+1 {
		t.Fatalf("%s: first count after the restore is %d, the dump stopped at %d",
			c.Name, first, last)
	}
	if second := c.tNextCount(t); second != first+1 {
		t.Fatalf("%s: count %d follows %d after the restore", c.Name, second, first)
	}
}

func (c *dockerCtr) tState(t *testing.T) *container.State {
	t.Helper()
	info, err := c.cli.ContainerInspect(c.ctx, c.ID)
	if err != nil {
		t.Fatalf("inspect %s: %v", c.Name, err)
	}
	return info.State
}

// tWaitStopped waits until Docker sees the container stopped, as it is
// after a dump that did not leave it running.
func (c *dockerCtr) tWaitStopped(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, dockerLineTimeout)
	defer cancel()
	waitC, errC := c.cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case <-waitC:
	case err := <-errC:
		t.Fatalf("%s did not stop after the dump: %v", c.Name, err)
	}
}

// tListedRunning fails unless `docker ps` lists the container running.
func (c *dockerCtr) tListedRunning(t *testing.T) {
	t.Helper()
	list, err := c.cli.ContainerList(c.ctx, container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("id", c.ID))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].State != "running" {
		t.Fatalf("docker ps lists %+v for %s, want it running", list, c.Name)
	}
}

// tRunningThawed fails unless the container runs freely after a failed
// checkpoint: Docker lists it running, its freezer cgroup is THAWED,
// and it goes on counting.
func (c *dockerCtr) tRunningThawed(t *testing.T) {
	t.Helper()
	c.tListedRunning(t)
	pid := c.tState(t).Pid
	if state := tDockerFreezerState(t, pid); state != "THAWED" {
		t.Fatalf("%s: freezer state %s after the failed checkpoint", c.Name, state)
	}
	if tracer, err := tracerPID(pid); err != nil || tracer != 0 {
		t.Fatalf("%s: pid %d has TracerPid %d (%v)", c.Name, pid, tracer, err)
	}
	last := c.tLastCount(t)
	if n := c.tNextCount(t); n <= last {
		t.Fatalf("%s counts %d after %d", c.Name, n, last)
	}
}

// tDockerFreezerState returns the freezer state of pid's cgroup:
// THAWED, FREEZING or FROZEN (cgroup v2's cgroup.freeze is mapped to
// THAWED and FROZEN).
func tDockerFreezerState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if strings.Contains(","+parts[1]+",", ",freezer,") {
			return tReadTrimmed(t, filepath.Join("/sys/fs/cgroup/freezer", parts[2], "freezer.state"))
		}
		if parts[0] == "0" && parts[1] == "" {
			if tReadTrimmed(t, filepath.Join("/sys/fs/cgroup", parts[2], "cgroup.freeze")) == "1" {
				return "FROZEN"
			}
			return "THAWED"
		}
	}
	t.Fatalf("no freezer cgroup for pid %d in %q", pid, b)
	return ""
}

func tReadTrimmed(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (c *dockerCtr) tail(t *testing.T) string {
	t.Helper()
	lines, stderr := c.tLogs(t)
	s := strings.Join(lines[max(0, len(lines)-10):], "\n")
	if stderr != "" {
		s += "\nstderr: " + stderr
	}
	return s
}

// tNoContainer fails unless Docker knows no container name.
func (f *dockerFixture) tNoContainer(t *testing.T, name string) {
	t.Helper()
	_, err := f.cli.ContainerInspect(f.ctx, name)
	if !cerrdefs.IsNotFound(err) {
		t.Fatalf("container %s: inspect says %v, want it removed", name, err)
	}
}

// dockerLock opens path and takes an flock on it (LOCK_SH or LOCK_EX)
// within timeout; closing the file releases it.
func dockerLock(path string, how int, timeout time.Duration) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dockerRandom() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// tDockerNoContainerdCopy fails if a copy of the checkpoint in dir is
// left in /tmp/ctrd-checkpoint*: containerd 1.6 unpacks every
// checkpoint it restores there and never removes it; the library must.
func tDockerNoContainerdCopy(t *testing.T, dir string) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(dir, "images", "inventory.img"))
	if err != nil {
		t.Fatal(err)
	}
	copies, _ := filepath.Glob("/tmp/ctrd-checkpoint*/inventory.img")
	for _, c := range copies {
		if got, err := os.ReadFile(c); err == nil && bytes.Equal(got, want) {
			t.Errorf("containerd's copy of the checkpoint is left in %s", filepath.Dir(c))
		}
	}
}
