package integration

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"

	"github.com/docker-cr/dockercr"
)

// The migration tests move a container the way it would travel to
// another host: checkpoint, export to a file, remove the container and
// its checkpoint, import into a second checkpoint base, restore as a
// new container. Nothing of the original is left for the restore to
// find but the archive and the image.

// migrateCP is the name of every checkpoint these tests make.
const migrateCP = "mig"

// migrateLayerScript changes the container's rootfs before it execs
// the workload: it deletes /bin/sleep from the image layer (a whiteout
// in the writable layer), replaces the image's /bin/ls link by a file,
// writes /kept.txt and keeps it open as fd 5, which the workload
// inherits. The deleted workload then holds /tmp/gone open, unlinked.
// $1 and $2 are the contents of /bin/ls and /kept.txt.
const migrateLayerScript = `set -e
busybox rm /bin/sleep /bin/ls
echo "$1" > /bin/ls
echo "$2" > /kept.txt
exec 5</kept.txt
exec /testworkload deleted -file /tmp/gone -kib 256 -interval 50ms`

// migrateSpec is a container of a migration test. Unless Image is set
// it runs the test image; Kind is the workload's kind when Cmd starts
// it through a shell.
type migrateSpec struct {
	dockerSpec
	Image string
	Kind  string
}

// tMigrateName returns a fresh container name dcr-it-mig-ROLE-RANDOM
// and force-removes that container, if any, when the test ends.
func tMigrateName(t *testing.T, f *dockerFixture, role string) string {
	t.Helper()
	name := dockerNamePrefix + "mig-" + role + "-" + dockerRandom()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := f.cli.ContainerRemove(ctx, name, container.RemoveOptions{Force: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove container %s: %v", name, err)
		}
	})
	return name
}

// tMigrateRun starts a --network none container and waits for the
// workload's ready line.
func (f *dockerFixture) tMigrateRun(t *testing.T, role string, spec migrateSpec) *dockerCtr {
	t.Helper()
	img := spec.Image
	if img == "" {
		img = dockerEnv.image
	}
	cfg := &container.Config{Image: img, Env: spec.Env,
		Cmd: append([]string{"/testworkload"}, spec.Args...)}
	kind := spec.Kind
	if len(spec.Cmd) > 0 {
		cfg.Cmd = spec.Cmd
	} else {
		kind = spec.Args[0]
	}
	hc := &container.HostConfig{NetworkMode: "none", Mounts: spec.Mounts}

	name := tMigrateName(t, f, role)
	resp, err := f.cli.ContainerCreate(f.ctx, cfg, hc, nil, nil, name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if err := f.cli.ContainerStart(f.ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	c := &dockerCtr{ctx: f.ctx, cli: f.cli, ID: resp.ID, Name: name, kind: kind}
	c.tWaitLine(t, "ready ")
	return c
}

// tMigrateDocker returns the library on the checkpoint base base: one
// per "host" of a migration.
func (f *dockerFixture) tMigrateDocker(t *testing.T, base string,
	opts ...dockercr.DockerOption) *dockercr.Docker {
	t.Helper()
	all := append([]dockercr.DockerOption{dockercr.WithDockerClient(f.cli),
		dockercr.WithCheckpointBase(base)}, opts...)
	d, err := dockercr.NewDocker(tNew(t, nil), all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// tMigrateCheckpoint checkpoints c, which stops it, and returns the
// result and the last count line written before the dump.
func tMigrateCheckpoint(t *testing.T, d *dockercr.Docker,
	c *dockerCtr) (*dockercr.ContainerCheckpoint, int) {
	t.Helper()
	res, err := d.Checkpoint(c.ctx, c.Name, migrateCP)
	if err != nil {
		t.Fatal(err)
	}
	c.tWaitStopped(t)
	return res, c.tLastCount(t)
}

// tMigrateExport exports the checkpoint of c into a new file and checks
// the summary against the file.
func tMigrateExport(t *testing.T, d *dockercr.Docker, c *dockerCtr,
	opts ...dockercr.ArchiveOption) (string, *dockercr.ArchiveSummary) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "checkpoint.tar")
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sum, err := d.Export(c.ctx, c.Name, migrateCP, out, opts...)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Compressed != st.Size() || sum.Files == 0 || sum.Bytes == 0 {
		t.Fatalf("export summary %+v for a file of %d bytes", sum, st.Size())
	}
	t.Logf("export (%s) took %v: %d files, %d bytes -> %d", sum.Compression,
		time.Since(start).Round(time.Millisecond), sum.Files, sum.Bytes, sum.Compressed)
	return path, sum
}

// tMigrateRemoveOriginal removes the container c and its checkpoint, as
// if the archive had been carried to another host.
func (f *dockerFixture) tMigrateRemoveOriginal(t *testing.T, d *dockercr.Docker, c *dockerCtr) {
	t.Helper()
	if err := f.cli.ContainerRemove(f.ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	f.tNoContainer(t, c.Name)
	dir, err := d.Dir(c.Name, migrateCP)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveCheckpoint(c.Name, migrateCP); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("checkpoint %s still there after RemoveCheckpoint (%v)", dir, err)
	}
}

// tMigrateImport imports the archive at path with d and checks that it
// landed where the metadata names it.
func tMigrateImport(t *testing.T, d *dockercr.Docker, base, path string,
	c *dockerCtr) *dockercr.StoredCheckpoint {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	start := time.Now()
	sc, err := d.Import(c.ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("import took %v", time.Since(start).Round(time.Millisecond))
	want := filepath.Join(base, c.Name, migrateCP)
	if sc.Dir != want || sc.Name != migrateCP || sc.Metadata == nil ||
		sc.Metadata.ContainerID != c.ID {
		t.Fatalf("import stored %+v, want %s of container %s", sc, want, c.ID)
	}
	return sc
}

// tMigrateRestoreAs restores the imported checkpoint of c as newName and
// follows the new container.
func (f *dockerFixture) tMigrateRestoreAs(t *testing.T, d *dockercr.Docker, c *dockerCtr,
	newName string, opts ...dockercr.RestoreOption) *dockerCtr {
	t.Helper()
	r, err := d.RestoreAs(f.ctx, c.Name, migrateCP, newName, opts...)
	if err != nil {
		t.Fatal(err)
	}
	tDockerRuncConfUnchanged(t)
	t.Logf("restore as %s took %v", newName, r.Duration.Round(time.Millisecond))
	clone := f.tAttach(t, newName, c.kind)
	if r.ContainerID != clone.ID || r.PID != clone.tState(t).Pid || r.PID <= 0 {
		t.Fatalf("RestoreAs reports %s pid %d; docker has %s pid %d", r.ContainerID, r.PID,
			clone.ID, clone.tState(t).Pid)
	}
	return clone
}

// tMigrateReadFile reads path inside container c through Docker (the
// API of docker cp); ok is false if Docker finds no such file.
func tMigrateReadFile(t *testing.T, c *dockerCtr, path string) (string, bool) {
	t.Helper()
	rc, _, err := c.cli.CopyFromContainer(c.ctx, c.ID, path)
	if cerrdefs.IsNotFound(err) {
		return "", false
	}
	if err != nil {
		t.Fatalf("copy %s from %s: %v", path, c.Name, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatalf("copy %s from %s: %v", path, c.Name, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		t.Fatalf("%s in %s is a %q tar entry, want a regular file", path, c.Name, hdr.Typeflag)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// tMigrateFDTarget returns where descriptor fd of the container's init
// points, as the kernel shows it in /proc.
func tMigrateFDTarget(t *testing.T, c *dockerCtr, fd string) string {
	t.Helper()
	pid := c.tState(t).Pid
	target, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", fd))
	if err != nil {
		t.Fatalf("fd %s of %s (pid %d): %v", fd, c.Name, pid, err)
	}
	return target
}

// migrateCase is one way an archive travels.
type migrateCase struct {
	name string
	opts []dockercr.ArchiveOption
	want dockercr.Compression
	// noRootfs is set for an export without the writable layer.
	noRootfs bool
}

// TestMigrateContainer moves a container that counts, changed its image
// layer, wrote and holds open a file, and holds open a file it deleted,
// to a checkpoint base where it never was, as a new container. With
// its writable layer in the archive (zstd, gzip, none) the clone goes
// on counting with its files as they were. Without it the restore must
// fail naming the file the process holds open, and leave no container:
// CRIU cannot reopen a file that is not there.
func TestMigrateContainer(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	cases := []migrateCase{
		{name: "zstd", want: dockercr.CompressZstd},
		{name: "gzip", opts: []dockercr.ArchiveOption{dockercr.WithCompression(dockercr.CompressGzip)},
			want: dockercr.CompressGzip},
		{name: "none", opts: []dockercr.ArchiveOption{dockercr.WithCompression(dockercr.CompressNone)},
			want: dockercr.CompressNone},
		{name: "without-rootfs", opts: []dockercr.ArchiveOption{dockercr.WithoutRootfs()},
			want: dockercr.CompressZstd, noRootfs: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			migrateContainerCase(t, tc)
		})
	}
}

func migrateContainerCase(t *testing.T, tc migrateCase) {
	f := tDockerFixture(t)
	lsContent := "replaced in the writable layer " + dockerRandom()
	kept := "written before the checkpoint " + dockerRandom()
	c := f.tMigrateRun(t, "src", migrateSpec{Kind: "deleted", dockerSpec: dockerSpec{
		Cmd: []string{"sh", "-c", migrateLayerScript, "sh", lsContent, kept}}})
	c.tWaitCount(t, 5)
	c.tVerify(t)

	src := f.tMigrateDocker(t, f.base)
	start := time.Now()
	_, last := tMigrateCheckpoint(t, src, c)
	t.Logf("checkpoint took %v", time.Since(start).Round(time.Millisecond))
	path, sum := tMigrateExport(t, src, c, tc.opts...)
	if sum.Compression != tc.want {
		t.Errorf("archive compressed with %q, want %q", sum.Compression, tc.want)
	}
	if tc.want != dockercr.CompressNone && sum.Compressed >= sum.Bytes {
		t.Errorf("%s archive of %d bytes holds %d bytes of files", tc.want, sum.Compressed, sum.Bytes)
	}
	f.tMigrateRemoveOriginal(t, src, c)

	base := filepath.Join(t.TempDir(), "other-host")
	dst := f.tMigrateDocker(t, base)
	sc := tMigrateImport(t, dst, base, path, c)
	tMigrateCheckLayerFiles(t, sc.Dir, !tc.noRootfs)

	newName := tMigrateName(t, f, "clone")
	if tc.noRootfs {
		migrateRestoreWithoutLayer(t, f, dst, c, newName)
		return
	}
	clone := f.tMigrateRestoreAs(t, dst, c, newName)
	clone.tResumed(t, last)
	// The workload's own check: /tmp/gone is unlinked, of its size,
	// with its pattern, through the restored descriptor.
	clone.tVerify(t)
	if target := tMigrateFDTarget(t, clone, "5"); target != "/kept.txt" {
		t.Errorf("fd 5 of the clone points to %q, want /kept.txt", target)
	}
	tMigrateCheckDeletedFD(t, clone, "/tmp/gone")
	tMigrateCheckFile(t, clone, "/kept.txt", kept+"\n")
	tMigrateCheckFile(t, clone, "/bin/ls", lsContent+"\n")
	if _, ok := tMigrateReadFile(t, clone, "/bin/sleep"); ok {
		t.Errorf("/bin/sleep, deleted from the image layer before the checkpoint, is back in %s",
			clone.Name)
	}
}

// migrateRestoreWithoutLayer restores a checkpoint exported without
// the writable layer: CRIU must refuse, since the process holds
// /kept.txt open, and the library must remove the container it made.
func migrateRestoreWithoutLayer(t *testing.T, f *dockerFixture, d *dockercr.Docker,
	c *dockerCtr, newName string) {
	_, err := d.RestoreAs(f.ctx, c.Name, migrateCP, newName)
	if err == nil {
		t.Fatal("restore without the writable layer succeeded, " +
			"though the process holds /kept.txt open")
	}
	tDockerRuncConfUnchanged(t)
	ce := tCRIUError(t, err)
	tCausesMention(t, ce, "kept.txt")
	f.tNoContainer(t, newName)
}

// tMigrateCheckLayerFiles checks that the imported checkpoint dir has
// the writable layer, deleting /bin/sleep, if want, and none if not.
func tMigrateCheckLayerFiles(t *testing.T, dir string, want bool) {
	t.Helper()
	for _, name := range []string{dockercr.RootfsDiffName, dockercr.DeletedFilesName} {
		_, err := os.Stat(filepath.Join(dir, name))
		if want && err != nil {
			t.Fatalf("imported checkpoint lacks %s: %v", name, err)
		}
		if !want && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("checkpoint exported without its rootfs has %s (%v)", name, err)
		}
	}
	if !want {
		return
	}
	b, err := os.ReadFile(filepath.Join(dir, dockercr.DeletedFilesName))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != `["/bin/sleep"]` {
		t.Errorf("%s holds %s, want [\"/bin/sleep\"]", dockercr.DeletedFilesName, got)
	}
}

func tMigrateCheckFile(t *testing.T, c *dockerCtr, path, want string) {
	t.Helper()
	got, ok := tMigrateReadFile(t, c, path)
	if !ok || got != want {
		t.Errorf("%s in %s holds %q (found %v), want %q", path, c.Name, got, ok, want)
	}
}

// tMigrateCheckDeletedFD fails unless the container's init holds path
// open, unlinked, as /proc shows it: "PATH (deleted)".
func tMigrateCheckDeletedFD(t *testing.T, c *dockerCtr, path string) {
	t.Helper()
	pid := c.tState(t).Pid
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	var targets []string
	for _, fd := range tEntries(t, dir) {
		if target, err := os.Readlink(filepath.Join(dir, fd)); err == nil {
			targets = append(targets, target)
		}
	}
	if !slices.Contains(targets, path+" (deleted)") {
		t.Errorf("%s (pid %d) holds %q, want %q among them", c.Name, pid, targets, path+" (deleted)")
	}
}

// tMigrateVolume creates a named volume, removed when the test ends.
// Call it before the containers that mount it are made: the cleanups
// run in reverse, so the volume goes after them.
func (f *dockerFixture) tMigrateVolume(t *testing.T) string {
	t.Helper()
	name := dockerNamePrefix + "mig-vol-" + dockerRandom()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := f.cli.VolumeRemove(ctx, name, true); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove volume %s: %v", name, err)
		}
	})
	if _, err := f.cli.VolumeCreate(f.ctx, volume.CreateOptions{Name: name}); err != nil {
		t.Fatal(err)
	}
	return name
}

// tMigrateRemoveVolume removes the volume, as on a host that never had
// it.
func (f *dockerFixture) tMigrateRemoveVolume(t *testing.T, name string) {
	t.Helper()
	if err := f.cli.VolumeRemove(f.ctx, name, false); err != nil {
		t.Fatal(err)
	}
	f.tMigrateNoVolume(t, name)
}

// tMigrateNoVolume fails unless Docker knows no volume name.
func (f *dockerFixture) tMigrateNoVolume(t *testing.T, name string) {
	t.Helper()
	if _, err := f.cli.VolumeInspect(f.ctx, name); !cerrdefs.IsNotFound(err) {
		t.Fatalf("volume %s: inspect says %v, want none", name, err)
	}
}

// TestMigrateNamedVolume moves a container whose workload wrote into a
// named volume, checkpointed with WithVolumeCapture, and removes the
// volume as well as the container: the restore creates the volume
// again, filled from the archive.
func TestMigrateNamedVolume(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	vol := f.tMigrateVolume(t)
	content := "in a named volume " + dockerRandom()
	c := f.tMigrateRun(t, "src", migrateSpec{dockerSpec: dockerSpec{
		Args:   []string{"writefile", "-file", "/vol/f", "-content", content, "-interval", "50ms"},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/vol"}}}})
	c.tWaitCount(t, 5)

	src := f.tMigrateDocker(t, f.base, dockercr.WithVolumeCapture())
	res, last := tMigrateCheckpoint(t, src, c)
	if _, err := os.Stat(filepath.Join(res.Dir, dockercr.VolumesDirName, vol+".tar")); err != nil {
		t.Fatalf("checkpoint with WithVolumeCapture: %v", err)
	}
	path, _ := tMigrateExport(t, src, c)
	f.tMigrateRemoveOriginal(t, src, c)
	f.tMigrateRemoveVolume(t, vol)

	base := filepath.Join(t.TempDir(), "other-host")
	dst := f.tMigrateDocker(t, base)
	tMigrateImport(t, dst, base, path, c)
	clone := f.tMigrateRestoreAs(t, dst, c, tMigrateName(t, f, "clone"))
	clone.tResumed(t, last)
	clone.tVerify(t)

	v, err := f.cli.VolumeInspect(f.ctx, vol)
	if err != nil {
		t.Fatalf("volume %s after the restore: %v", vol, err)
	}
	b, err := os.ReadFile(filepath.Join(v.Mountpoint, "f"))
	if err != nil || string(b) != content {
		t.Fatalf("recreated volume holds %q (%v), want %q", b, err, content)
	}
}

// TestMigrateErrors checks the clear failures of a restore on a host
// that lacks what the container needs: its image, a bind mount's
// source, a free name. None may leave a container behind or touch an
// existing one.
func TestMigrateErrors(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	t.Run("image-missing", func(t *testing.T) {
		t.Parallel()
		migrateImageMissing(t)
	})
	t.Run("bind-source-missing", func(t *testing.T) {
		t.Parallel()
		migrateBindSourceMissing(t)
	})
}

// migrateImageMissing runs the container from a tag of its own, which
// is removed with the container, as on a host that never pulled it.
// The container has a captured named volume, removed too: the refused
// restore must not leave that volume behind either.
func migrateImageMissing(t *testing.T) {
	f := tDockerFixture(t)
	tag := dockerNamePrefix + "mig-img:" + dockerRandom()
	if err := f.cli.ImageTag(f.ctx, dockerEnv.image, tag); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tMigrateUntag(t, f, tag) })
	vol := f.tMigrateVolume(t)
	c := f.tMigrateRun(t, "src", migrateSpec{Image: tag, dockerSpec: dockerSpec{
		Args:   []string{"writefile", "-file", "/vol/f", "-interval", "50ms"},
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/vol"}}}})
	c.tWaitCount(t, 3)

	src := f.tMigrateDocker(t, f.base, dockercr.WithVolumeCapture())
	tMigrateCheckpoint(t, src, c)
	path, _ := tMigrateExport(t, src, c)
	f.tMigrateRemoveOriginal(t, src, c)
	f.tMigrateRemoveVolume(t, vol)
	tMigrateUntag(t, f, tag)
	if _, err := f.cli.ImageInspect(f.ctx, tag); !cerrdefs.IsNotFound(err) {
		t.Fatalf("image %s still there after its removal: %v", tag, err)
	}

	base := filepath.Join(t.TempDir(), "other-host")
	dst := f.tMigrateDocker(t, base)
	tMigrateImport(t, dst, base, path, c)
	newName := tMigrateName(t, f, "clone")
	_, err := dst.RestoreAs(f.ctx, c.Name, migrateCP, newName)
	if !errors.Is(err, dockercr.ErrImageNotFound) || !strings.Contains(err.Error(), tag) {
		t.Fatalf("restore without the image: %v, want ErrImageNotFound naming %s", err, tag)
	}
	f.tNoContainer(t, newName)
	if v, err := f.cli.VolumeInspect(f.ctx, vol); !cerrdefs.IsNotFound(err) {
		t.Fatalf("the restore refused for the missing image left volume %s behind (%v, "+
			"mountpoint %q): RestoreAs creates and fills captured volumes "+
			"before it creates the container",
			vol, err, v.Mountpoint)
	}
}

// tMigrateUntag removes the tag; the image stays under its other tag.
func tMigrateUntag(t *testing.T, f *dockerFixture, tag string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := f.cli.ImageRemove(ctx, tag, image.RemoveOptions{})
	if err != nil && !cerrdefs.IsNotFound(err) {
		t.Errorf("remove image tag %s: %v", tag, err)
	}
}

// migrateBindSourceMissing removes the host directory of a bind mount
// before the restore, which must then fail until WithMountSource maps
// the mount to where its data went; then restores again under the name
// that restore took.
func migrateBindSourceMissing(t *testing.T) {
	f := tDockerFixture(t)
	hostDir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := "through a bind mount " + dockerRandom()
	c := f.tMigrateRun(t, "src", migrateSpec{dockerSpec: dockerSpec{
		Args:   []string{"writefile", "-file", "/data/f", "-content", content, "-interval", "50ms"},
		Mounts: []mount.Mount{{Type: mount.TypeBind, Source: hostDir, Target: "/data"}}}})
	c.tWaitCount(t, 5)

	src := f.tMigrateDocker(t, f.base)
	_, last := tMigrateCheckpoint(t, src, c)
	path, _ := tMigrateExport(t, src, c)
	f.tMigrateRemoveOriginal(t, src, c)
	// The data moves elsewhere on the "other host".
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(hostDir, moved); err != nil {
		t.Fatal(err)
	}

	base := filepath.Join(t.TempDir(), "other-host")
	dst := f.tMigrateDocker(t, base)
	tMigrateImport(t, dst, base, path, c)
	newName := tMigrateName(t, f, "clone")
	_, err := dst.RestoreAs(f.ctx, c.Name, migrateCP, newName)
	if !errors.Is(err, dockercr.ErrMountSourceMissing) || !strings.Contains(err.Error(), hostDir) {
		t.Fatalf("restore without the bind source: %v, want ErrMountSourceMissing naming %s",
			err, hostDir)
	}
	f.tNoContainer(t, newName)

	remap := dockercr.WithMountSource("/data", moved)
	clone := f.tMigrateRestoreAs(t, dst, c, newName, remap)
	clone.tResumed(t, last)
	clone.tVerify(t)
	info, err := f.cli.ContainerInspect(f.ctx, clone.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Mounts) != 1 || info.Mounts[0].Source != moved ||
		info.Mounts[0].Destination != "/data" {
		t.Errorf("clone mounts %+v, want %s at /data", info.Mounts, moved)
	}

	t.Run("name-taken", func(t *testing.T) {
		started := info.State.StartedAt
		_, err := dst.RestoreAs(f.ctx, c.Name, migrateCP, newName, remap)
		if !errors.Is(err, dockercr.ErrContainerExists) {
			t.Fatalf("restore under a taken name: %v, want ErrContainerExists", err)
		}
		again, err := f.cli.ContainerInspect(f.ctx, newName)
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != clone.ID || !again.State.Running || again.State.StartedAt != started {
			t.Fatalf("%s is %s running %v started %s after the refused restore, was %s started %s",
				newName, again.ID, again.State.Running, again.State.StartedAt, clone.ID, started)
		}
		before := clone.tLastCount(t)
		if n := clone.tNextCount(t); n <= before {
			t.Fatalf("%s counts %d after %d once the restore was refused", newName, n, before)
		}
	})
}
