package dockercr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
)

// ContainerRestore describes a container restored under Docker.
type ContainerRestore struct {
	ContainerID   string
	ContainerName string
	// PID is the container's restored init process.
	PID int
	// Dir is the checkpoint restored from; LogPath is CRIU's log of
	// the restore, captured from Docker's runc.
	Dir     string
	LogPath string
	Stats   RestoreStats
	// Duration is how long Docker's start from the checkpoint took;
	// LockWait how long the restore first waited for the host-wide
	// runc.conf lock, held by other restores.
	Duration time.Duration
	LockWait time.Duration
}

// Restore starts the stopped container ref from its checkpoint name,
// in place, through Docker: afterwards Docker lists it as running and
// its logs go on where they stopped. It fails with [ErrContainerRunning]
// if the container runs.
//
// Docker 20.10 refuses custom checkpoint directories, so the images are
// linked (or copied) into the container's own checkpoints folder under
// Docker's data root for the restore and removed after it. The dump's
// CRIU options reach runc through its configuration file; see
// [Docker.RestoreAs] for that side effect.
func (d *Docker) Restore(ctx context.Context, ref, name string) (*ContainerRestore, error) {
	info, release, err := d.lockContainer(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer release()
	if info.State != nil && info.State.Running {
		return nil, fmt.Errorf("%w: %s; stop it before restoring in place",
			ErrContainerRunning, containerName(info))
	}
	dir, meta, err := d.loadCheckpoint(containerName(info), name)
	if err != nil {
		return nil, err
	}
	return d.restoreInto(ctx, info.ID, dir, meta)
}

// RestoreAs creates a new container called newName from the metadata of
// the checkpoint name of container origName, and restores the
// checkpoint into it: a clone, while the original may still run. If the
// restore fails, the new container, and any volume it created, are
// removed again.
//
// During any Docker restore, /etc/criu/runc.conf holds the dump's
// options (and a log path); the original file is put back afterwards,
// and restores by this library wait for each other. Other runc
// checkpoints or restores on the host in that window see the same
// options.
func (d *Docker) RestoreAs(ctx context.Context, origName, name, newName string,
	opts ...RestoreOption) (*ContainerRestore, error) {
	if err := ValidateName(newName); err != nil {
		return nil, fmt.Errorf("new container %w", err)
	}
	var rc restoreConfig
	for _, opt := range opts {
		if err := opt(&rc); err != nil {
			return nil, err
		}
	}
	release, err := d.cp.acquire("container-name:" + newName)
	if err != nil {
		return nil, err
	}
	defer release()
	dir, meta, err := d.loadCheckpoint(origName, name)
	if err != nil {
		return nil, err
	}
	// The image is checked first: nothing (a volume, a container) is
	// created for a clone that cannot be made.
	if _, err := d.cli.ImageInspect(ctx, meta.Image); cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrImageNotFound, meta.Image)
	} else if err != nil {
		return nil, fmt.Errorf("inspect image %s: %w", meta.Image, err)
	}
	var undo cleanups
	res, err := d.restoreClone(ctx, dir, meta, rc, newName, &undo)
	if err != nil {
		return nil, errors.Join(err, undo.run(context.WithoutCancel(ctx)))
	}
	return res, nil
}

// restoreClone creates the clone's volumes and container, applies the
// layer and restores; undo collects what it created, for a failure.
func (d *Docker) restoreClone(ctx context.Context, dir string, meta *Metadata, rc restoreConfig,
	newName string, undo *cleanups) (*ContainerRestore, error) {
	mounts, err := d.prepareMounts(ctx, dir, meta, rc, undo)
	if err != nil {
		return nil, err
	}
	id, err := d.createClone(ctx, meta, mounts, newName)
	if err != nil {
		return nil, err
	}
	// Removed before the volumes it uses (cleanups run last first).
	undo.add(func(ctx context.Context) error {
		return d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	})
	if err := d.applyLayer(ctx, id, dir); err != nil {
		return nil, err
	}
	return d.restoreInto(ctx, id, dir, meta)
}

// cleanups undoes, last first, what a failed operation created.
type cleanups []func(context.Context) error

func (c *cleanups) add(f func(context.Context) error) { *c = append(*c, f) }

func (c cleanups) run(ctx context.Context) error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		errs = append(errs, c[i](ctx))
	}
	return errors.Join(errs...)
}

func (d *Docker) loadCheckpoint(containerName, name string) (string, *Metadata, error) {
	dir, err := d.Dir(containerName, name)
	if err != nil {
		return "", nil, err
	}
	meta, err := ReadMetadata(dir)
	if err != nil {
		return "", nil, err
	}
	if err := ValidateImages(filepath.Join(dir, ImagesDirName)); err != nil {
		return "", nil, err
	}
	return dir, meta, nil
}

// RestoreOption adjusts a restore into a new container.
type RestoreOption func(*restoreConfig) error

type restoreConfig struct {
	sources map[string]string
}

// WithMountSource binds hostPath where the checkpointed container had a
// bind mount at destination, instead of the host path it had at dump
// time: for a restore on a host laid out differently.
func WithMountSource(destination, hostPath string) RestoreOption {
	return func(rc *restoreConfig) error {
		if destination == "" || hostPath == "" || !filepath.IsAbs(hostPath) {
			return fmt.Errorf("WithMountSource: want a destination and an absolute host path, got %q, %q",
				destination, hostPath)
		}
		if rc.sources == nil {
			rc.sources = make(map[string]string)
		}
		rc.sources[destination] = hostPath
		return nil
	}
}

// ErrMountSourceMissing means a bind mount of the checkpointed container
// has no source on this host; map one with [WithMountSource].
var ErrMountSourceMissing = errors.New("bind mount source missing")

// prepareMounts resolves the clone's mounts: bind sources remapped and
// checked to exist, named volumes created and filled from the
// checkpoint where this host lacks them.
func (d *Docker) prepareMounts(ctx context.Context, dir string, meta *Metadata, rc restoreConfig,
	undo *cleanups) ([]ContainerMount, error) {
	out := make([]ContainerMount, 0, len(meta.Config.Mounts))
	for _, m := range meta.Config.Mounts {
		switch m.Type {
		case "bind":
			if src, ok := rc.sources[m.Destination]; ok {
				m.Source = src
			}
			if _, err := os.Stat(m.Source); err != nil {
				return nil, fmt.Errorf("%w: %s for %s: %w", ErrMountSourceMissing,
					m.Source, m.Destination, err)
			}
		case "volume":
			if err := d.ensureVolume(ctx, dir, m.Source, undo); err != nil {
				return nil, err
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// ensureVolume creates the named volume if this host lacks it and fills
// it from the checkpoint's volumes/NAME.tar, if the checkpoint has one.
// An existing volume is used as it is.
func (d *Docker) ensureVolume(ctx context.Context, dir, name string, undo *cleanups) error {
	if _, err := d.cli.VolumeInspect(ctx, name); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect volume %s: %w", name, err)
	}
	v, err := d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name})
	if err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	undo.add(func(ctx context.Context) error { return d.cli.VolumeRemove(ctx, name, true) })
	return applyVolume(dir, name, v.Mountpoint)
}

// applyLayer writes the checkpoint's rootfs changes into the writable
// layer of the created, not yet started, container id.
func (d *Docker) applyLayer(ctx context.Context, id, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, RootfsDiffName)); err != nil {
		return nil
	}
	info, err := d.inspect(ctx, id)
	if err != nil {
		return err
	}
	upper := info.GraphDriver.Data["UpperDir"]
	if info.GraphDriver.Name != "overlay2" || upper == "" {
		return fmt.Errorf("container %s: storage driver %q: rootfs changes can only be applied to overlay2",
			id, info.GraphDriver.Name)
	}
	return applyRootfs(dir, upper)
}

// createClone creates, without starting it, a container like the one
// meta describes, with the given mounts.
func (d *Docker) createClone(ctx context.Context, meta *Metadata, mounts []ContainerMount,
	newName string) (string, error) {
	c := meta.Config
	cfg := &container.Config{
		Image:      meta.Image,
		Cmd:        c.Cmd,
		Entrypoint: c.Entrypoint,
		Env:        c.Env,
		WorkingDir: c.WorkingDir,
		User:       c.User,
		Labels:     c.Labels,
		StopSignal: c.StopSignal,
		Tty:        c.Tty,
		OpenStdin:  c.OpenStdin,
	}
	init := c.Init
	hc := &container.HostConfig{
		NetworkMode:    container.NetworkMode(c.NetworkMode),
		IpcMode:        container.IpcMode(c.IpcMode),
		ShmSize:        c.ShmSize,
		ReadonlyRootfs: c.ReadonlyRootfs,
		Tmpfs:          c.Tmpfs,
		CapAdd:         c.CapAdd,
		CapDrop:        c.CapDrop,
		SecurityOpt:    c.SecurityOpt,
		Init:           &init,
	}
	for _, m := range mounts {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.Type(m.Type),
			Source: m.Source, Target: m.Destination, ReadOnly: m.ReadOnly})
	}
	resp, err := d.cli.ContainerCreate(ctx, cfg, hc, nil, nil, newName)
	switch {
	case cerrdefs.IsConflict(err):
		return "", fmt.Errorf("%w: %s", ErrContainerExists, newName)
	case cerrdefs.IsNotFound(err):
		return "", fmt.Errorf("%w: %s: %w", ErrImageNotFound, meta.Image, err)
	case err != nil:
		return "", fmt.Errorf("create container %s: %w", newName, err)
	}
	return resp.ID, nil
}

// restoreInto starts container id from the checkpoint in dir.
func (d *Docker) restoreInto(ctx context.Context, id, dir string, meta *Metadata) (*ContainerRestore, error) {
	root, err := d.dataRoot(ctx)
	if err != nil {
		return nil, err
	}
	cpName := "dockercr-" + randomSuffix()
	staged := filepath.Join(root, "containers", id, "checkpoints", cpName)
	copied, err := linkTree(filepath.Join(dir, ImagesDirName), staged)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(staged))
	}
	d.cp.cfg.logger.Debug("container restore: images staged for docker",
		"dir", staged, "copied files", copied)
	defer os.RemoveAll(staged)

	// CRIU's work directory for the restore is a hidden sibling of the
	// checkpoint: runc.conf is global, so a runc checkpoint someone else
	// makes meanwhile writes its statistics there, not over the
	// checkpoint's own stats-dump.
	work, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	log := d.cp.cfg.logger
	log.Debug("container restore: waiting for the runc configuration lock",
		"container", id, "path", d.runcConf)
	waitStart := time.Now()
	swap, err := swapRuncConf(ctx, d.runcConf, runcLines(meta, work))
	if err != nil {
		return nil, err
	}
	res := &ContainerRestore{ContainerID: id, Dir: dir,
		LogPath: filepath.Join(dir, RestoreLogName), LockWait: time.Since(waitStart)}

	log.Debug("container restore: docker start --checkpoint", "container", id,
		"checkpoint", cpName, "waited for the lock", res.LockWait)
	start := time.Now()
	err = d.cli.ContainerStart(ctx, id, container.StartOptions{CheckpointID: cpName})
	res.Duration = time.Since(start)
	if n, cerr := removeContainerdCopies(filepath.Join(dir, ImagesDirName), start); cerr != nil {
		log.Debug("container restore: containerd's copy of the images not removed", "err", cerr)
	} else {
		log.Debug("container restore: removed containerd's copies of the images", "count", n)
	}
	// Under the lock, so that two restores of one checkpoint (clones,
	// say) do not mix their logs.
	keepRestoreFiles(work, dir)
	if err != nil {
		err = d.restoreError(ctx, res.LogPath, err)
	} else if st, serr := readRestoreStats(dir); serr == nil {
		res.Stats = st
	}
	if rerr := swap.restore(); rerr != nil {
		err = errors.Join(err, fmt.Errorf("put back %s: %w", d.runcConf, rerr))
	}
	if err != nil {
		return nil, err
	}
	log.Debug("container restore done", "container", id, "took", res.Duration)

	info, err := d.inspect(ctx, id)
	if err != nil {
		return nil, err
	}
	res.ContainerName = containerName(info)
	if info.State != nil {
		res.PID = info.State.Pid
	}
	return res, nil
}

// keepRestoreFiles moves CRIU's restore log and statistics from the
// restore's work directory into the checkpoint, replacing older ones.
func keepRestoreFiles(work, dir string) {
	for _, name := range []string{RestoreLogName, "stats-restore"} {
		dst := filepath.Join(dir, name)
		_ = os.Remove(dst)
		_ = os.Rename(filepath.Join(work, name), dst)
	}
}

// restoreError turns Docker's reply into a CRIUError that carries the
// root causes from the restore log runc wrote for us. Docker's own text
// ("criu failed: type NOTIFY errno 0", a log path containerd deletes)
// stays as the message; a cancelled context is reported as such.
func (d *Docker) restoreError(ctx context.Context, logPath string, err error) error {
	msg := err.Error()
	if ctx.Err() != nil {
		msg, err = "", fmt.Errorf("stopped: %w", context.Cause(ctx))
	}
	return newCRIUError(&Request{Action: ActionRestore}, "docker", logPath, 0, msg, 0, err)
}

// runcLines renders the CRIU options a restore of meta needs for runc.
// The log and the statistics go to work, a directory of ours, so a
// failure's cause survives containerd removing its own work directory.
func runcLines(meta *Metadata, work string) []string {
	o := meta.Options
	lines := []string{"log-file " + filepath.Join(work, RestoreLogName), "work-dir " + work}
	flags := []struct {
		on   bool
		name string
	}{
		{o.TCPEstablished, "tcp-established"},
		{o.TCPClose, "tcp-close"},
		{o.TCPSkipInFlight, "skip-in-flight"},
		{o.FileLocks, "file-locks"},
		{o.ExtUnixSockets, "ext-unix-sk"},
		{o.LinkRemap, "link-remap"},
		{o.MntnsCompatMode, "mntns-compat-mode"},
	}
	for _, f := range flags {
		if f.on {
			lines = append(lines, f.name)
		}
	}
	if o.ManageCgroups != "" {
		lines = append(lines, "manage-cgroups "+string(o.ManageCgroups))
	}
	return lines
}

func (d *Docker) dataRoot(ctx context.Context) (string, error) {
	info, err := d.cli.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("docker info: %w", err)
	}
	if info.DockerRootDir == "" {
		return "", errors.New("docker info reports no data root")
	}
	return info.DockerRootDir, nil
}

// linkTree makes dst a copy of the flat directory src, with hard links
// where both are on one mount (restores read images only), and returns
// how many files had to be copied instead. Docker's data root is often
// a mount of its own (a bind of /var/lib/docker counts), so a
// checkpoint base on that same mount saves the copy.
func linkTree(src, dst string) (copied int, _ error) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return 0, err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return copied, fmt.Errorf("unexpected %s in checkpoint images", filepath.Join(src, e.Name()))
		}
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if err := os.Link(from, to); err == nil {
			continue
		}
		if err := copyFile(from, to); err != nil {
			return copied, err
		}
		copied++
	}
	return copied, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

func randomSuffix() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b[:])
}
