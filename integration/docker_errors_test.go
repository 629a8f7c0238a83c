package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/docker-cr/dockercr"
)

// TestDockerCheckpointErrors checks the errors of checkpoints that
// must not start, and that they write nothing.
func TestDockerCheckpointErrors(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()

	t.Run("stopped", func(t *testing.T) {
		t.Parallel()
		f := tDockerFixture(t)
		c := f.tRun(t, dockerSpec{Args: []string{"counter"}})
		if err := f.cli.ContainerStop(f.ctx, c.ID, container.StopOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := f.tDocker(t).Checkpoint(f.ctx, c.Name, "cp")
		if !errors.Is(err, dockercr.ErrContainerNotRunning) {
			t.Fatalf("checkpoint of a stopped container: %v, want ErrContainerNotRunning", err)
		}
		tDockerNothingUnder(t, filepath.Dir(f.base))
	})

	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		f := tDockerFixture(t)
		_, err := f.tDocker(t).Checkpoint(f.ctx, dockerName(t, "never-created"), "cp")
		if !errors.Is(err, dockercr.ErrContainerNotFound) {
			t.Fatalf("checkpoint of a missing container: %v, want ErrContainerNotFound", err)
		}
		tDockerNothingUnder(t, filepath.Dir(f.base))
	})

	t.Run("invalid-name", func(t *testing.T) {
		t.Parallel()
		f := tDockerFixture(t)
		c := f.tRun(t, dockerSpec{Args: []string{"counter", "-interval", "50ms"}})
		d := f.tDocker(t)
		for _, name := range []string{"../x", "a/b", "..", "", ".", ".hidden",
			"../../../tmp/dcr-it-escape", "/abs", "x\x00y"} {
			_, err := d.Checkpoint(f.ctx, c.Name, name)
			if !errors.Is(err, dockercr.ErrInvalidName) {
				t.Errorf("checkpoint name %q: %v, want ErrInvalidName", name, err)
			}
			_, err = d.RestoreAs(f.ctx, c.Name, name, dockerName(t, "clone"))
			if !errors.Is(err, dockercr.ErrInvalidName) {
				t.Errorf("restore of checkpoint name %q: %v, want ErrInvalidName", name, err)
			}
			_, err = d.RestoreAs(f.ctx, c.Name, "cp", name)
			if !errors.Is(err, dockercr.ErrInvalidName) {
				t.Errorf("clone name %q: %v, want ErrInvalidName", name, err)
			}
		}
		tDockerNothingUnder(t, filepath.Dir(f.base))
		if _, err := os.Lstat("/tmp/dcr-it-escape"); err == nil {
			t.Error("a checkpoint name escaped to /tmp/dcr-it-escape")
		}
		c.tRunningThawed(t)
	})

	t.Run("exists", func(t *testing.T) {
		t.Parallel()
		f := tDockerFixture(t)
		c := f.tRun(t, dockerSpec{Args: []string{"counter", "-interval", "50ms"}})
		d := f.tDocker(t, dockercr.WithLeaveRunning())
		res, err := d.Checkpoint(f.ctx, c.Name, "cp")
		if err != nil {
			t.Fatal(err)
		}
		before := tDockerTreeSums(t, res.Dir)
		_, err = d.Checkpoint(f.ctx, c.Name, "cp")
		if !errors.Is(err, dockercr.ErrCheckpointExists) {
			t.Fatalf("second checkpoint of the same name: %v, want ErrCheckpointExists", err)
		}
		if after := tDockerTreeSums(t, res.Dir); after != before {
			t.Fatalf("the existing checkpoint changed:\nbefore %s\nafter %s", before, after)
		}
		if names := tEntries(t, filepath.Dir(res.Dir)); len(names) != 1 {
			t.Errorf("container's checkpoint folder holds %q, want only the first checkpoint", names)
		}
		c.tRunningThawed(t)
	})
}

// TestDockerCancelledCheckpoint cancels the context while CRIU writes
// the pages of a 1 GiB container: the container goes on running,
// thawed, and no checkpoint appears.
func TestDockerCancelledCheckpoint(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	c := f.tRun(t, dockerSpec{Args: []string{"mem", "-mib", "1024", "-interval", "50ms"}})
	c.tWaitCount(t, 5)
	d := f.tDocker(t)
	dir, err := d.Dir(c.Name, "cp")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := d.Checkpoint(ctx, c.Name, "cp")
		done <- err
	}()
	tDockerWaitPages(t, filepath.Dir(dir), 64<<20, done)
	cancel()
	select {
	case err = <-done:
	case <-time.After(dockerLineTimeout):
		t.Fatal("checkpoint did not return after its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled checkpoint: %v, want context.Canceled in the chain", err)
	}
	t.Logf("cancelled checkpoint: %v", err)
	c.tRunningThawed(t)
	c.tVerify(t)
	tNoCheckpoint(t, dir)
}

// tDockerWaitPages waits until the dump staged under parent has
// written at least n bytes of pages. done reports a dump that ended
// first, which fails the test.
func tDockerWaitPages(t *testing.T, parent string, n int64, done <-chan error) {
	t.Helper()
	deadline := time.After(dockerLineTimeout)
	for {
		pages, _ := filepath.Glob(filepath.Join(parent, ".cp.partial-*", "images", "pages-*.img"))
		var size int64
		for _, p := range pages {
			if st, err := os.Stat(p); err == nil {
				size += st.Size()
			}
		}
		if size >= n {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("dump ended (%v) before %d bytes of pages were written", err, n)
		case <-deadline:
			t.Fatalf("dump wrote %d bytes of pages in %v", size, dockerLineTimeout)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// TestDockerRestoreFailureCause clones a host-network container that
// listens on a fixed loopback port while the original still listens
// there: CRIU's restore cannot bind, and the error carries CRIU's own
// line from the captured restore.log rather than Docker's summary.
func TestDockerRestoreFailureCause(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	port := tDockerFreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := f.tRun(t, dockerSpec{HostNet: true,
		Cmd: []string{"/bin/busybox", "httpd", "-f", "-p", addr, "-h", "/tmp"}})
	tDockerWaitListening(t, c.tState(t).Pid, port)
	d := f.tDocker(t, dockercr.WithLeaveRunning())
	if _, err := d.Checkpoint(f.ctx, c.Name, "cp"); err != nil {
		t.Fatal(err)
	}

	clone := tDockerName(t, f.cli, "clone")
	_, err := d.RestoreAs(f.ctx, c.Name, "cp", clone)
	if err == nil {
		t.Fatal("clone bound the port its running original listens on")
	}
	tDockerRuncConfUnchanged(t)
	ce := tCRIUError(t, err)
	if len(ce.Causes) == 0 {
		t.Fatalf("restore error without CRIU's causes: %v", err)
	}
	if !strings.Contains(ce.Error(), ce.Causes[0]) {
		t.Errorf("summary %q does not lead with the cause %q", ce.Error(), ce.Causes[0])
	}
	tCausesMention(t, ce, "Address already in use")
	if ce.LogPath == "" {
		t.Error("restore error names no log")
	} else if _, err := os.Stat(ce.LogPath); err != nil {
		t.Errorf("restore log: %v", err)
	}
	f.tNoContainer(t, clone)
	c.tListedRunning(t)
}

// tDockerFreePort returns a loopback TCP port that was free a moment
// ago.
func tDockerFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// tDockerWaitListening waits until pid has a socket listening on
// 127.0.0.1:port, read from its /proc/PID/net/tcp so that no packet is
// sent.
func tDockerWaitListening(t *testing.T, pid, port int) {
	t.Helper()
	want := fmt.Sprintf("0100007F:%04X 00000000:0000 0A", port)
	deadline := time.Now().Add(dockerLineTimeout)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d does not listen on 127.0.0.1:%d:\n%s", pid, port, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tDockerNothingUnder fails unless dir holds nothing at all.
func tDockerNothingUnder(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			t.Errorf("left behind: %s", path)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

// tDockerTreeSums returns every path under root with its mode and the
// SHA-256 of its content, one per line.
func tDockerTreeSums(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			h := sha256.Sum256(data)
			sum = hex.EncodeToString(h[:8])
		}
		fmt.Fprintf(&b, "%s %v %s\n", strings.TrimPrefix(path, root), info.Mode(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
