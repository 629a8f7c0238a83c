package integration

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"github.com/docker-cr/dockercr"
)

// TestDockerCounterInPlaceAndClone checkpoints a counting container,
// which stops it, restores it in place, then restores the same
// checkpoint into a clone beside the running original: both go on
// from the dumped count. It runs once per built-in backend.
func TestDockerCounterInPlaceAndClone(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dockerCounterCase(t, b.new())
		})
	}
}

func dockerCounterCase(t *testing.T, b dockercr.Backend) {
	f := tDockerFixture(t)
	c := f.tRun(t, dockerSpec{Args: []string{"counter", "-interval", "50ms"}})
	c.tWaitCount(t, 5)
	d := f.tDockerOn(t, b)

	res, err := d.Checkpoint(f.ctx, c.Name, "cp1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Backend != b.Name() {
		t.Errorf("checkpoint ran on %q, want %q", res.Backend, b.Name())
	}
	if res.ContainerID != c.ID || res.ContainerName != c.Name {
		t.Errorf("checkpoint of %s (%s) reports %s (%s)",
			c.Name, c.ID, res.ContainerName, res.ContainerID)
	}
	c.tWaitStopped(t)
	last := c.tLastCount(t)
	t.Logf("dump took %v (frozen %v), stopped at count %d",
		res.Duration, res.Stats.FrozenTime, last)

	r, err := d.Restore(f.ctx, c.Name, "cp1")
	if err != nil {
		t.Fatal(err)
	}
	tDockerRuncConfUnchanged(t)
	tDockerNoContainerdCopy(t, r.Dir)
	t.Logf("restore in place took %v", r.Duration)
	if pid := c.tState(t).Pid; r.ContainerID != c.ID || r.PID != pid || pid <= 0 {
		t.Errorf("restore reports %s pid %d, docker says %s pid %d",
			r.ContainerID, r.PID, c.ID, pid)
	}
	c.tListedRunning(t)
	c.tResumed(t, last)

	cloneName := tDockerName(t, f.cli, "clone")
	r, err = d.RestoreAs(f.ctx, c.Name, "cp1", cloneName)
	if err != nil {
		t.Fatal(err)
	}
	tDockerRuncConfUnchanged(t)
	tDockerNoContainerdCopy(t, r.Dir)
	t.Logf("restore as clone took %v", r.Duration)
	clone := f.tAttach(t, cloneName, "counter")
	if r.ContainerID != clone.ID {
		t.Errorf("RestoreAs reports %s, docker has %s as %s", r.ContainerID, clone.ID, cloneName)
	}
	clone.tListedRunning(t)
	clone.tResumed(t, last)

	// The original is unaffected by its clone.
	c.tListedRunning(t)
	before := c.tLastCount(t)
	if n := c.tNextCount(t); n <= before {
		t.Fatalf("original counts %d after %d once the clone runs", n, before)
	}
}

// TestDockerMemoryPattern checks that 64 MiB of patterned memory come
// back intact through a checkpoint and a Docker restore.
func TestDockerMemoryPattern(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	c := f.tRun(t, dockerSpec{Args: []string{"mem", "-mib", "64", "-interval", "50ms"}})
	c.tWaitCount(t, 5)
	d := f.tDocker(t)

	res, err := d.Checkpoint(f.ctx, c.Name, "cp")
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.PagesWritten < 64<<20/4096 {
		t.Errorf("dump wrote %d pages, fewer than the workload's 64 MiB", res.Stats.PagesWritten)
	}
	c.tWaitStopped(t)
	last := c.tLastCount(t)
	if _, err := d.Restore(f.ctx, c.Name, "cp"); err != nil {
		t.Fatal(err)
	}
	tDockerRuncConfUnchanged(t)
	c.tResumed(t, last)
	c.tVerify(t)
}

// TestDockerTCPEstablished runs an established loopback connection
// inside a container: with WithTCPEstablished it survives the
// checkpoint and a Docker restore; without, the checkpoint fails
// naming the socket and leaves the container running.
func TestDockerTCPEstablished(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	spec := dockerSpec{Args: []string{"tcp", "-interval", "50ms"},
		Env: []string{"GODEBUG=multipathtcp=0"}}

	t.Run("with", func(t *testing.T) {
		t.Parallel()
		f := tDockerFixture(t)
		c := f.tRun(t, spec)
		c.tWaitCount(t, 5)
		d := f.tDocker(t, dockercr.WithTCPEstablished())
		if _, err := d.Checkpoint(f.ctx, c.Name, "cp"); err != nil {
			t.Fatal(err)
		}
		c.tWaitStopped(t)
		last := c.tLastCount(t)
		if _, err := d.Restore(f.ctx, c.Name, "cp"); err != nil {
			t.Fatal(err)
		}
		tDockerRuncConfUnchanged(t)
		// Each count line is one echo round trip on the restored
		// connection; tWaitLine fails on the "error" line a broken
		// connection makes.
		c.tResumed(t, last)
		for range 5 {
			c.tWaitCount(t, 5)
		}
		c.tVerify(t)
	})

	t.Run("without", func(t *testing.T) {
		t.Parallel()
		f := tDockerFixture(t)
		c := f.tRun(t, spec)
		c.tWaitCount(t, 5)
		d := f.tDocker(t)
		_, err := d.Checkpoint(f.ctx, c.Name, "cp")
		if err == nil {
			t.Fatal("checkpoint of an established TCP connection succeeded without WithTCPEstablished")
		}
		ce := tCRIUError(t, err)
		tCausesMention(t, ce, "TCP")
		c.tRunningThawed(t)
		c.tVerify(t)
		dir, _ := d.Dir(c.Name, "cp")
		tNoCheckpoint(t, dir)
	})
}

// dockerResourceCase is a container holding one resource CRIU must
// carry through a checkpoint and a Docker restore.
type dockerResourceCase struct {
	name string
	opts []dockercr.Option
	// spec returns the container, after creating what it needs.
	spec func(t *testing.T, f *dockerFixture) dockerSpec
	// check, if set, runs after the restored workload verified; dir
	// is the checkpoint.
	check func(t *testing.T, f *dockerFixture, c *dockerCtr, dir string)
}

// TestDockerResources checkpoints and restores in place containers
// with a held lock, an open deleted file, a shared mapping in /dev/shm,
// a bind mount, a named volume, a tmpfs, a read-only rootfs and
// Docker's init; each workload checks its resource after the restore.
func TestDockerResources(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	for _, tc := range dockerResourceCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := tDockerFixture(t)
			c := f.tRun(t, tc.spec(t, f))
			c.tWaitCount(t, 5)
			c.tVerify(t)
			d := f.tDocker(t, tc.opts...)

			res, err := d.Checkpoint(f.ctx, c.Name, "cp")
			if err != nil {
				t.Fatal(err)
			}
			c.tWaitStopped(t)
			last := c.tLastCount(t)
			if _, err := d.Restore(f.ctx, c.Name, "cp"); err != nil {
				t.Fatal(err)
			}
			tDockerRuncConfUnchanged(t)
			c.tListedRunning(t)
			c.tResumed(t, last)
			c.tVerify(t)
			if tc.check != nil {
				tc.check(t, f, c, res.Dir)
			}

			// The same checkpoint as a clone, beside the original.
			name := tDockerName(t, f.cli, "clone")
			if _, err := d.RestoreAs(f.ctx, c.Name, "cp", name); err != nil {
				t.Fatal(err)
			}
			tDockerRuncConfUnchanged(t)
			clone := f.tAttach(t, name, c.kind)
			clone.tResumed(t, last)
			clone.tVerify(t)
			c.tVerify(t)
		})
	}
}

func dockerResourceCases() []dockerResourceCase {
	args := func(a ...string) func(*testing.T, *dockerFixture) dockerSpec {
		return func(*testing.T, *dockerFixture) dockerSpec {
			return dockerSpec{Args: append(a, "-interval", "50ms")}
		}
	}
	return []dockerResourceCase{
		{name: "flock", opts: []dockercr.Option{dockercr.WithFileLocks()},
			spec: args("flock", "-file", "/tmp/lock")},
		{name: "deleted-file", opts: []dockercr.Option{dockercr.WithGhostLimit(16 << 20)},
			spec: args("deleted", "-file", "/tmp/gone", "-kib", "4096")},
		{name: "dev-shm", spec: args("shm", "-file", "/dev/shm/x", "-kib", "1024")},
		{name: "bind-mount", spec: dockerBindSpec, check: dockerCheckBind},
		{name: "named-volume", spec: dockerVolumeSpec},
		{name: "tmpfs", spec: func(*testing.T, *dockerFixture) dockerSpec {
			return dockerSpec{Args: []string{"writefile", "-file", "/scratch/f",
				"-content", "in tmpfs", "-interval", "50ms"},
				Tmpfs: map[string]string{"/scratch": "size=16m"}}
		}},
		{name: "read-only-rootfs", spec: func(*testing.T, *dockerFixture) dockerSpec {
			return dockerSpec{Args: []string{"writefile", "-file", "/tmp/f",
				"-content", "on a read-only rootfs", "-interval", "50ms"},
				ReadOnly: true, Tmpfs: map[string]string{"/tmp": ""}}
		}},
		{name: "init", spec: func(*testing.T, *dockerFixture) dockerSpec {
			return dockerSpec{Args: []string{"counter", "-interval", "50ms"}, Init: true}
		}, check: dockerCheckInit},
	}
}

// dockerBindContent is what the bind-mount case writes through the
// container into a host directory.
const dockerBindContent = "written through a bind mount"

func dockerBindSpec(t *testing.T, _ *dockerFixture) dockerSpec {
	dir := t.TempDir()
	return dockerSpec{
		Args: []string{"writefile", "-file", "/data/f", "-content", dockerBindContent,
			"-interval", "50ms"},
		Mounts: []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: "/data"}},
		Labels: map[string]string{"dcr-it.bind": dir},
	}
}

// dockerCheckBind reads the file on the host side of the bind.
func dockerCheckBind(t *testing.T, f *dockerFixture, c *dockerCtr, _ string) {
	info, err := f.cli.ContainerInspect(f.ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(info.Config.Labels["dcr-it.bind"], "f"))
	if err != nil || string(b) != dockerBindContent {
		t.Fatalf("host side of the bind holds %q (%v), want %q", b, err, dockerBindContent)
	}
}

// dockerCheckInit checks that the workload ran under Docker's init and
// that the checkpoint asks runc's restore for CRIU's compat mount
// engine: the default one fails on the init binary Docker binds as a
// file ("mnt-v2: Can't remount ... with MS_PRIVATE").
func dockerCheckInit(t *testing.T, f *dockerFixture, c *dockerCtr, dir string) {
	lines := c.lines(t)
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ready ") ||
		slices.Contains(strings.Fields(lines[0]), "pid=1") {
		t.Errorf("first line %q: the workload should not be PID 1 under --init",
			lines[:min(1, len(lines))])
	}
	meta, err := dockercr.ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !meta.Config.Init || !meta.Options.MntnsCompatMode {
		t.Errorf("metadata init %v, mntns-compat-mode %v; want both", meta.Config.Init,
			meta.Options.MntnsCompatMode)
	}
}

func dockerVolumeSpec(t *testing.T, f *dockerFixture) dockerSpec {
	name := dockerName(t, "vol")
	if _, err := f.cli.VolumeCreate(f.ctx, volume.CreateOptions{Name: name}); err != nil {
		t.Fatal(err)
	}
	// Registered before the container's own cleanup, so it runs after.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := f.cli.VolumeRemove(ctx, name, true); err != nil {
			t.Errorf("remove volume %s: %v", name, err)
		}
	})
	return dockerSpec{
		Args: []string{"writefile", "-file", "/vol/f", "-content", "in a named volume",
			"-interval", "50ms"},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: name, Target: "/vol"}},
	}
}
