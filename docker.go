package dockercr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"golang.org/x/sys/unix"
)

// DefaultCheckpointBase is where container checkpoints go unless
// [WithCheckpointBase] says otherwise.
const DefaultCheckpointBase = "/tmp/docker-checkpoints"

// Errors of the Docker integration.
var (
	// ErrContainerNotFound means Docker knows no such container.
	ErrContainerNotFound = errors.New("container not found")
	// ErrContainerNotRunning means a checkpoint was asked of a
	// container that is not running, or whose init ended during the
	// dump (the error then also matches [ErrProcessNotFound]).
	ErrContainerNotRunning = errors.New("container is not running")
	// ErrContainerRunning means a restore in place was asked while the
	// container still runs; stop it first.
	ErrContainerRunning = errors.New("container is running")
	// ErrContainerExists means a clone's name is taken.
	ErrContainerExists = errors.New("container already exists")
	// ErrImageNotFound means the image a clone needs is not on this
	// host.
	ErrImageNotFound = errors.New("image not found")
)

// Docker checkpoints Docker containers with CRIU directly, through a
// [Checkpointer], and restores them through Docker, so they come back
// under Docker's management.
//
// A checkpoint of container NAME called CP lives in BASE/NAME/CP: the
// images in images/, CRIU's dump.log and restore.log, and the
// [Metadata] in checkpoint.json.
type Docker struct {
	cp        *Checkpointer
	cli       *client.Client
	base      string
	runcConf  string
	ownClient bool

	noRootfs bool
	volumes  bool
}

// DockerOption configures a [Docker].
type DockerOption func(*Docker) error

// WithDockerClient uses cli instead of a client from the environment
// (DOCKER_HOST and friends). The caller keeps ownership of cli.
func WithDockerClient(cli *client.Client) DockerOption {
	return func(d *Docker) error {
		if cli == nil {
			return errors.New("WithDockerClient: nil client")
		}
		d.cli = cli
		return nil
	}
}

// WithCheckpointBase sets the directory container checkpoints go to.
// Default: [DefaultCheckpointBase]. It is created 0700 if missing, and
// refused with [ErrUnsafeDir] if it is a symbolic link, owned by another
// user, or writable by others. A restore links the images into Docker's
// data root, or copies them when the base is on another mount (about
// 0.2-0.4 s per 256 MiB here): a base on the data root's mount saves
// that copy.
func WithCheckpointBase(dir string) DockerOption {
	return func(d *Docker) error {
		abs, err := absDir("WithCheckpointBase", dir)
		d.base = abs
		return err
	}
}

// WithoutRootfsCapture skips saving the container's writable layer
// into the checkpoint. Default: each checkpoint holds rootfs-diff.tar
// and deleted.files, captured while the container is frozen, so that a
// restore on another host, or into a new container, finds the files the
// processes created or hold open. Skip it for containers with a large
// writable layer whose checkpoints only restore in place.
func WithoutRootfsCapture() DockerOption {
	return func(d *Docker) error { d.noRootfs = true; return nil }
}

// WithVolumeCapture saves the contents of the container's named volumes
// into the checkpoint (volumes/NAME.tar), while it is frozen. A restore
// on a host without the volume creates and fills it. Default: off;
// volumes are often shared and large.
func WithVolumeCapture() DockerOption {
	return func(d *Docker) error { d.volumes = true; return nil }
}

// NewDocker returns a Docker integration that dumps with cp. Without
// [WithDockerClient] it connects to the daemon named by the environment
// and negotiates the API version, so Engine 20.10 and newer work.
func NewDocker(cp *Checkpointer, opts ...DockerOption) (*Docker, error) {
	if cp == nil {
		return nil, errors.New("NewDocker: nil Checkpointer")
	}
	d := &Docker{cp: cp, base: DefaultCheckpointBase, runcConf: runcConfPath}
	for _, opt := range opts {
		if err := opt(d); err != nil {
			return nil, err
		}
	}
	if d.cli == nil {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("docker client: %w", err)
		}
		d.cli, d.ownClient = cli, true
	}
	return d, nil
}

// Close releases the Docker client if NewDocker created it.
func (d *Docker) Close() error {
	if d.ownClient {
		return d.cli.Close()
	}
	return nil
}

// Dir returns the directory of checkpoint name of container.
func (d *Docker) Dir(containerName, name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	if err := ValidateName(containerName); err != nil {
		return "", fmt.Errorf("container %w", err)
	}
	return filepath.Join(d.base, containerName, name), nil
}

// ContainerCheckpoint describes a completed container checkpoint.
type ContainerCheckpoint struct {
	CheckpointResult
	ContainerID   string
	ContainerName string
	Name          string
	// FreezeTime is how long freezing the container's cgroup took
	// before CRIU ran; Frozen is how long it stayed frozen in all,
	// CRIU's dump and the filesystem capture included.
	FreezeTime time.Duration
	Frozen     time.Duration
}

// Checkpoint dumps the running container (a name or an ID) into the
// checkpoint called name. Besides the [Checkpointer]'s options it gives
// CRIU what a container needs: the merged rootfs as root, every bind
// mount [DiscoverMounts] finds as external (with runc's keys, so
// Docker can restore it), cgroup management (soft unless chosen), and
// the container's freezer cgroup. Unless the Checkpointer leaves it
// running, the container stops once dumped, as after a crash.
//
// The container is frozen first, its writable layer (and with
// [WithVolumeCapture] its volumes) saved, then it is dumped and thawed,
// so memory and files agree. A failed or cancelled dump leaves the
// container running, thawed, and no directory at the checkpoint's path.
func (d *Docker) Checkpoint(ctx context.Context, ref, name string) (*ContainerCheckpoint, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	info, release, err := d.lockContainer(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer release()
	if info.State == nil || !info.State.Running || info.State.Pid <= 0 {
		return nil, fmt.Errorf("%w: %s", ErrContainerNotRunning, containerName(info))
	}
	dir, err := d.prepareDir(containerName(info), name)
	if err != nil {
		return nil, err
	}

	plan, err := planContainerDump(info, d.cp)
	if err != nil {
		return nil, err
	}
	plan.rootfs = plan.rootfs && !d.noRootfs
	if !d.volumes {
		plan.volumes = nil
	}

	start := time.Now()
	if err := plan.freeze(ctx); err != nil {
		return nil, err
	}
	freezeTime := time.Since(start)
	plan.meta.Checkpoint = name
	d.cp.cfg.logger.Debug("container checkpoint", "container", containerName(info),
		"checkpoint", name, "pid", plan.pid, "external mounts", len(plan.meta.Mounts))
	res, err := d.cp.checkpoint(ctx, plan.pid, dir, dumpHooks{
		request: plan.amend,
		beforeDump: func(staged string) error {
			return plan.capture(ctx, staged)
		},
		beforeCommit: plan.writeFiles,
	})
	if terr := plan.thaw(); terr != nil {
		err = errors.Join(err, terr)
	}
	if err != nil {
		return nil, containerExitedError(info, err)
	}
	return &ContainerCheckpoint{
		CheckpointResult: *res,
		ContainerID:      info.ID,
		ContainerName:    containerName(info),
		Name:             name,
		FreezeTime:       freezeTime,
		Frozen:           time.Since(start),
	}, nil
}

// lockContainer marks the container ref busy for this Docker's
// Checkpointer and inspects it under that mark, so that the state the
// caller checks is not one an operation running meanwhile is changing.
// A second operation on the container gets ErrBusy.
func (d *Docker) lockContainer(ctx context.Context, ref string) (container.InspectResponse, func(), error) {
	info, err := d.inspect(ctx, ref)
	if err != nil {
		return info, nil, err
	}
	release, err := d.cp.acquire("container:" + info.ID)
	if err != nil {
		return info, nil, err
	}
	if info, err = d.inspect(ctx, info.ID); err != nil {
		release()
		return info, nil, err
	}
	return info, release, nil
}

func (d *Docker) inspect(ctx context.Context, ref string) (container.InspectResponse, error) {
	info, err := d.cli.ContainerInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return info, fmt.Errorf("%w: %s", ErrContainerNotFound, ref)
	}
	if err != nil {
		return info, fmt.Errorf("inspect container %s: %w", ref, err)
	}
	return info, nil
}

// prepareDir makes BASE/CONTAINER safely and returns the checkpoint
// path below it, which must not exist yet.
func (d *Docker) prepareDir(containerName, name string) (string, error) {
	dir, err := d.Dir(containerName, name)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(d.base), 0o755); err != nil {
		return "", err
	}
	for _, p := range []string{d.base, filepath.Dir(dir)} {
		if err := ensureSafeDir(p); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func containerName(info container.InspectResponse) string {
	return strings.TrimPrefix(info.Name, "/")
}

// containerDump is what one container's dump needs beyond a plain one.
type containerDump struct {
	pid         int
	merged      string
	upper       string
	rootfs      bool
	volumes     []volumeMount
	mounts      []Mount
	descriptors []string
	freezer     *freezer
	wasFrozen   bool
	meta        *Metadata
	cgroups     CgroupMode
	compat      bool
}

// volumeMount is a named volume of a container and its host directory.
type volumeMount struct {
	name, dir string
}

func planContainerDump(info container.InspectResponse, cp *Checkpointer) (*containerDump, error) {
	pid := info.State.Pid
	merged := info.GraphDriver.Data["MergedDir"]
	if merged == "" {
		return nil, fmt.Errorf("container %s: storage driver %q reports no MergedDir",
			containerName(info), info.GraphDriver.Name)
	}
	mounts, err := DiscoverMounts(pid)
	if err != nil {
		return nil, err
	}
	descs, err := stdioTargets(pid)
	if err != nil {
		return nil, err
	}

	p := &containerDump{pid: pid, merged: merged, mounts: mounts, descriptors: descs,
		cgroups: cp.cfg.manageCgroups}
	// Only overlay's upper directory is a writable layer this package
	// knows how to capture and apply.
	if info.GraphDriver.Name == "overlay2" {
		p.upper = info.GraphDriver.Data["UpperDir"]
		p.rootfs = p.upper != ""
	}
	for _, m := range info.Mounts {
		if m.Type == "volume" && m.Name != "" {
			p.volumes = append(p.volumes, volumeMount{name: m.Name, dir: m.Source})
		}
	}
	if p.cgroups == "" {
		p.cgroups = CgroupsSoft
	}
	// Docker binds its init binary (--init) as a file; CRIU's default
	// mount engine then fails the restore through runc ("mnt-v2: Can't
	// remount ... with MS_PRIVATE"), its compat engine does not.
	p.compat = info.HostConfig != nil && info.HostConfig.Init != nil && *info.HostConfig.Init
	if p.freezer, err = findFreezer(pid); err != nil {
		return nil, fmt.Errorf("container %s: %w", containerName(info), err)
	}
	if p.wasFrozen, err = p.freezer.frozen(); err != nil {
		return nil, err
	}
	p.meta = newMetadata(info, p)
	return p, nil
}

// amend adds the container's needs to the resolved request.
func (p *containerDump) amend(req *Request) {
	req.Root = p.merged
	req.ManageCgroups = p.cgroups
	req.FreezeCgroup = p.freezer.dir
	for _, m := range p.mounts {
		if m.Kind == MountExternal {
			req.External = append(req.External, m.DumpExternal())
		}
	}
	p.meta.Options = optionsOf(req)
	// Only runc's restore takes the compat mount engine: CRIU 4.2.1
	// refuses --mntns-compat-mode on a dump ("only valid on restore").
	p.meta.Options.MntnsCompatMode = p.meta.Options.MntnsCompatMode || p.compat
}

// capture saves the writable layer and the volumes into the staged
// checkpoint. It runs while the container is frozen and before CRIU,
// so a failure (a full disk, say) leaves the container as it was.
func (p *containerDump) capture(ctx context.Context, staged string) error {
	if p.rootfs {
		if err := captureRootfs(ctx, p.upper, staged); err != nil {
			return err
		}
	}
	for _, v := range p.volumes {
		if err := captureVolume(ctx, v.name, v.dir, staged); err != nil {
			return err
		}
	}
	return nil
}

// writeFiles writes descriptors.json and checkpoint.json into the
// staged checkpoint, after CRIU succeeded and before it is committed.
func (p *containerDump) writeFiles(staged string, res *CheckpointResult) error {
	descs, err := json.Marshal(p.descriptors)
	if err != nil {
		return err
	}
	if err := writeNewFile(filepath.Join(staged, ImagesDirName, descriptorsName), descs); err != nil {
		return err
	}
	p.meta.Stats = res.Stats
	p.meta.Backend = res.Backend
	p.meta.CRIUVersion = res.CRIUVersion.String()
	p.meta.Created = time.Now().UTC()
	return writeMetadata(staged, p.meta)
}

// freeze freezes the container unless it was already frozen (paused).
// CRIU finds the cgroup frozen, dumps it as it is and leaves it frozen,
// so the filesystem capture that follows sees the same state.
func (p *containerDump) freeze(ctx context.Context) error {
	if p.wasFrozen {
		return nil
	}
	return p.freezer.freeze(ctx)
}

// thaw undoes freeze, also when the dump failed or criu was killed
// mid-dump. A container that was paused before stays paused.
func (p *containerDump) thaw() error {
	if p.wasFrozen {
		return nil
	}
	return p.freezer.thaw()
}

// stdioTargets reads where descriptors 0, 1 and 2 of pid point.
func stdioTargets(pid int) ([]string, error) {
	out := make([]string, 3)
	for fd := range out {
		t, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd))
		if errors.Is(err, os.ErrNotExist) {
			out[fd] = "/dev/null"
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read stdio of pid %d: %w", pid, err)
		}
		out[fd] = t
	}
	return out, nil
}

func optionsOf(req *Request) CheckpointOptions {
	return CheckpointOptions{
		LeaveRunning:    req.LeaveRunning,
		TCPEstablished:  req.TCPEstablished,
		TCPClose:        req.TCPClose,
		TCPSkipInFlight: req.TCPSkipInFlight,
		FileLocks:       req.FileLocks,
		ShellJob:        req.ShellJob,
		ExtUnixSockets:  req.ExtUnixSockets,
		LinkRemap:       req.LinkRemap,
		GhostLimit:      req.GhostLimit,
		ManageCgroups:   req.ManageCgroups,
		MntnsCompatMode: req.MntnsCompatMode,
		External:        append([]string(nil), req.External...),
	}
}

func newMetadata(info container.InspectResponse, p *containerDump) *Metadata {
	m := &Metadata{
		Format:        metadataFormat,
		ContainerID:   info.ID,
		ContainerName: containerName(info),
		ImageID:       info.Image,
		// Docker reports RFC 3339 with nanoseconds; a bad value only
		// leaves the field empty.
		ContainerCreated: parseDockerTime(info.Created),
		Kernel:           kernelRelease(),
		Mounts:           p.mounts,
		Descriptors:      p.descriptors,
	}
	if cfg := info.Config; cfg != nil {
		m.Image = cfg.Image
		m.Config = ContainerConfig{
			Cmd:        cfg.Cmd,
			Entrypoint: cfg.Entrypoint,
			Env:        cfg.Env,
			WorkingDir: cfg.WorkingDir,
			User:       cfg.User,
			Hostname:   cfg.Hostname,
			Labels:     cfg.Labels,
			StopSignal: cfg.StopSignal,
			Tty:        cfg.Tty,
			OpenStdin:  cfg.OpenStdin,
		}
	}
	if hc := info.HostConfig; hc != nil {
		c := &m.Config
		c.NetworkMode = string(hc.NetworkMode)
		c.IpcMode = string(hc.IpcMode)
		c.ShmSize = hc.ShmSize
		c.Init = hc.Init != nil && *hc.Init
		c.ReadonlyRootfs = hc.ReadonlyRootfs
		c.Tmpfs = hc.Tmpfs
		c.CapAdd = hc.CapAdd
		c.CapDrop = hc.CapDrop
		c.SecurityOpt = hc.SecurityOpt
	}
	for _, mp := range info.Mounts {
		cm := ContainerMount{Type: string(mp.Type), Source: mp.Source,
			Destination: mp.Destination, ReadOnly: !mp.RW}
		if mp.Type == "volume" {
			cm.Source = mp.Name
		}
		if cm.Type == "bind" || cm.Type == "volume" {
			m.Config.Mounts = append(m.Config.Mounts, cm)
		}
	}
	return m
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func parseDockerTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// containerExitedError adds ErrContainerNotRunning to a failed dump
// whose init was gone before CRIU ran or ended under it.
func containerExitedError(info container.InspectResponse, err error) error {
	if !errors.Is(err, ErrProcessNotFound) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrContainerNotRunning, containerName(info), err)
}
