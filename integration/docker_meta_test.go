package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"
	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr"
)

// TestDockerMetadata checks what a container checkpoint records beside
// the images, and that everything in it is private to its owner, also
// after a restore has added CRIU's log and statistics.
func TestDockerMetadata(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	bind := t.TempDir()
	c := f.tRun(t, dockerSpec{
		Args:   []string{"counter", "-interval", "50ms"},
		Env:    []string{"DCR_IT_ENV=kept"},
		Labels: map[string]string{"dcr-it.label": "kept"},
		Mounts: []mount.Mount{{Type: mount.TypeBind, Source: bind, Target: "/data"}},
	})
	d := f.tDocker(t, dockercr.WithLeaveRunning(), dockercr.WithFileLocks(),
		dockercr.WithGhostLimit(2<<20))
	start := time.Now()
	res, err := d.Checkpoint(f.ctx, c.Name, "cp")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := d.Dir(c.Name, "cp"); res.Dir != want {
		t.Errorf("checkpoint in %s, Dir says %s", res.Dir, want)
	}
	st, err := os.Stat(filepath.Join(res.Dir, dockercr.MetadataName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, mode %v, want 0600", dockercr.MetadataName, err, st.Mode())
	}
	meta, err := dockercr.ReadMetadata(res.Dir)
	if err != nil {
		t.Fatal(err)
	}

	info, err := f.cli.ContainerInspect(f.ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	tDockerCheckIdentity(t, meta, info.ID, c.Name, info.Image, start)
	tDockerCheckOptions(t, meta.Options)
	tDockerCheckConfig(t, meta.Config, bind)
	if meta.Stats.PagesWritten == 0 || meta.Stats.FrozenTime == 0 ||
		meta.Stats != res.Stats {
		t.Errorf("stats %+v, the checkpoint returned %+v", meta.Stats, res.Stats)
	}
	tDockerCheckDescriptors(t, res.ImagesDir, meta.Descriptors)
	tModes(t, res.Dir)

	clone := tDockerName(t, f.cli, "clone")
	r, err := d.RestoreAs(f.ctx, c.Name, "cp", clone)
	if err != nil {
		t.Fatal(err)
	}
	tDockerRuncConfUnchanged(t)
	if r.LogPath != filepath.Join(res.Dir, dockercr.RestoreLogName) {
		t.Errorf("restore log %s, want it in the checkpoint %s", r.LogPath, res.Dir)
	}
	if _, err := os.Stat(r.LogPath); err != nil {
		t.Errorf("restore log: %v", err)
	}
	tModes(t, res.Dir)
	c.tRunningThawed(t)
}

func tDockerCheckIdentity(t *testing.T, meta *dockercr.Metadata, id, name, imageID string,
	start time.Time) {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		field, got, want string
	}{
		{"containerId", meta.ContainerID, id},
		{"containerName", meta.ContainerName, name},
		{"image", meta.Image, dockerEnv.image},
		{"imageId", meta.ImageID, imageID},
		{"criuVersion", meta.CRIUVersion, env.version.String()},
		{"kernel", meta.Kernel, unix.ByteSliceToString(u.Release[:])},
		{"backend", meta.Backend, "rpc"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("metadata %s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if meta.Created.Before(start.Add(-time.Second)) || meta.Created.After(time.Now()) {
		t.Errorf("metadata created %v, the checkpoint started %v", meta.Created, start)
	}
}

// tDockerCheckOptions wants the options TestDockerMetadata dumped with,
// plus what the library adds for every container.
func tDockerCheckOptions(t *testing.T, o dockercr.CheckpointOptions) {
	t.Helper()
	if !o.LeaveRunning || !o.FileLocks || o.GhostLimit != 2<<20 || o.TCPEstablished {
		t.Errorf("options %+v, want leave-running, file-locks, ghost limit 2 MiB only", o)
	}
	if o.ManageCgroups != dockercr.CgroupsSoft {
		t.Errorf("manage-cgroups %q, want the container default soft", o.ManageCgroups)
	}
	for _, ext := range []string{"mnt[/data]:/data", "mnt[/etc/hosts]:/etc/hosts"} {
		if !slices.Contains(o.External, ext) {
			t.Errorf("external mounts %q lack %s", o.External, ext)
		}
	}
}

func tDockerCheckConfig(t *testing.T, cfg dockercr.ContainerConfig, bind string) {
	t.Helper()
	wantCmd := []string{"/testworkload", "counter", "-interval", "50ms"}
	if !slices.Equal(cfg.Cmd, wantCmd) {
		t.Errorf("cmd %q, want %q", cfg.Cmd, wantCmd)
	}
	if !slices.Contains(cfg.Env, "DCR_IT_ENV=kept") || cfg.Labels["dcr-it.label"] != "kept" {
		t.Errorf("env %q, labels %q: the container's own are missing", cfg.Env, cfg.Labels)
	}
	if cfg.NetworkMode != "none" {
		t.Errorf("network mode %q, want none", cfg.NetworkMode)
	}
	want := dockercr.ContainerMount{Type: "bind", Source: bind, Destination: "/data"}
	if !slices.Contains(cfg.Mounts, want) {
		t.Errorf("mounts %+v lack %+v", cfg.Mounts, want)
	}
}

// tDockerCheckDescriptors reads the descriptors.json runc's restore
// needs: the stdio targets at dump time, stdout a pipe to Docker.
func tDockerCheckDescriptors(t *testing.T, images string, recorded []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(images, "descriptors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var descs []string
	if err := json.Unmarshal(b, &descs); err != nil {
		t.Fatalf("descriptors.json %q: %v", b, err)
	}
	if len(descs) != 3 || !strings.HasPrefix(descs[1], "pipe:[") || !slices.Equal(descs, recorded) {
		t.Errorf("descriptors.json %q (metadata %q), want three targets, stdout a pipe",
			descs, recorded)
	}
}

// TestDockerRuncConfPutBack gives runc a CRIU configuration of its own
// and checks that a restore leaves it as it was. It runs alone, on the
// host too: the other Docker tests, also those of another test run,
// check that the file stays as it was before them.
func TestDockerRuncConfPutBack(t *testing.T) {
	f := tDockerExclusiveFixture(t)
	orig := dockerEnv.runcConf
	t.Cleanup(func() {
		err := dockerWithRuncLock(func() error {
			if orig.exists {
				return os.WriteFile(dockerRuncConf, []byte(orig.data), 0o644)
			}
			return os.Remove(dockerRuncConf)
		})
		if err != nil {
			t.Errorf("put back %s: %v", dockerRuncConf, err)
		}
	})
	// A comment and a valid option that is not one of the library's:
	// CRIU refuses a restore whose configuration it cannot parse.
	const own = "# set by TestDockerRuncConfPutBack\ntimeout 30\n"
	err := dockerWithRuncLock(func() error {
		return os.WriteFile(dockerRuncConf, []byte(own), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}

	c := f.tRun(t, dockerSpec{Args: []string{"counter", "-interval", "50ms"}})
	c.tWaitCount(t, 5)
	d := f.tDocker(t)
	if _, err := d.Checkpoint(f.ctx, c.Name, "cp"); err != nil {
		t.Fatal(err)
	}
	c.tWaitStopped(t)
	last := c.tLastCount(t)
	if _, err := d.Restore(f.ctx, c.Name, "cp"); err != nil {
		t.Fatal(err)
	}
	tDockerRuncConfIs(t, dockerFileState{exists: true, data: own})
	if st, err := os.Stat(dockerRuncConf); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("%s: %v, mode %v after the restore, want 0644 as before", dockerRuncConf, err, st.Mode())
	}
	c.tResumed(t, last)
}
