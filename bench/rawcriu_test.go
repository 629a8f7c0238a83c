package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"

	"github.com/docker-cr/dockercr"
)

// rawDump is one `criu dump` of a container the way the library runs
// it, but by hand: the argv of the library's exec backend (execArgs),
// with the options Docker.Checkpoint adds for a container.
type rawDump struct {
	criu     string
	dir      string
	external []string
	args     []string
}

// planRawDump reads what the dump needs from Docker and /proc and
// creates dir with images/ inside. The external mounts come from
// dockercr.DiscoverMounts, as in the library.
func planRawDump(ctx context.Context, c *benchContainer, dir string) (*rawDump, error) {
	e := c.env
	info, err := e.cli.ContainerInspect(ctx, c.id)
	if err != nil {
		return nil, err
	}
	if info.State == nil || info.State.Pid <= 0 {
		return nil, fmt.Errorf("%s is not running", c.name)
	}
	pid := info.State.Pid
	mounts, err := dockercr.DiscoverMounts(pid)
	if err != nil {
		return nil, err
	}
	freezer, err := freezerDir(pid)
	if err != nil {
		return nil, err
	}
	images := filepath.Join(dir, dockercr.ImagesDirName)
	if err := os.MkdirAll(images, 0o700); err != nil {
		return nil, err
	}

	r := &rawDump{criu: e.criu, dir: dir}
	r.args = []string{"dump",
		"--images-dir", images,
		"--work-dir", dir,
		"-v" + strconv.Itoa(dockercr.DefaultLogLevel),
		"--log-file", dockercr.DumpLogName,
		"--tree", strconv.Itoa(pid),
		"--leave-running",
		"--ghost-limit", strconv.Itoa(dockercr.DefaultGhostLimit),
		"--manage-cgroups=" + string(dockercr.CgroupsSoft),
		"--root", info.GraphDriver.Data["MergedDir"],
		"--freeze-cgroup", freezer,
	}
	for _, m := range mounts {
		if m.Kind == dockercr.MountExternal {
			r.external = append(r.external, m.DumpExternal())
			r.args = append(r.args, "--external", m.DumpExternal())
		}
	}
	return r, nil
}

// run executes criu and, on failure, returns the first error lines of
// its log.
func (r *rawDump) run(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, r.criu, r.args...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	log, _ := os.ReadFile(filepath.Join(r.dir, dockercr.DumpLogName))
	return fmt.Errorf("criu dump: %w: %s%s", err, out, errorLines(string(log)))
}

// sameOptions checks that the library's dump, described by the metadata
// of one of its checkpoints, used the options this raw dump passes.
func (r *rawDump) sameOptions(meta *dockercr.Metadata) error {
	o := meta.Options
	switch {
	case !slices.Equal(o.External, r.external):
		return fmt.Errorf("external mounts differ:\n library %q\n raw     %q",
			o.External, r.external)
	case o.ManageCgroups != dockercr.CgroupsSoft:
		return fmt.Errorf("library used manage-cgroups %q", o.ManageCgroups)
	case o.GhostLimit != dockercr.DefaultGhostLimit:
		return fmt.Errorf("library used ghost limit %d", o.GhostLimit)
	case !o.LeaveRunning || o.MntnsCompatMode || o.TCPEstablished || o.FileLocks ||
		o.ExtUnixSockets || o.LinkRemap || o.ShellJob:
		return fmt.Errorf("library used options the raw dump does not: %+v", o)
	}
	return nil
}

// freezerDir finds the freezer cgroup of pid on the host, as CRIU's
// --freeze-cgroup wants it: the v1 freezer hierarchy if there is one,
// else the cgroup v2 directory.
func freezerDir(pid int) (string, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", err
	}
	defer f.Close()

	var v1, v2 string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		switch {
		case len(parts) != 3:
		case slices.Contains(strings.Split(parts[1], ","), "freezer"):
			v1 = parts[2]
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if v1 != "" {
		mnt, err := hostMount(func(m *mountinfo.Info) bool {
			return m.FSType == "cgroup" && slices.Contains(strings.Split(m.VFSOptions, ","), "freezer")
		})
		return filepath.Join(mnt, v1), err
	}
	if v2 != "" {
		mnt, err := hostMount(func(m *mountinfo.Info) bool { return m.FSType == "cgroup2" })
		return filepath.Join(mnt, v2), err
	}
	return "", fmt.Errorf("pid %d has no freezer cgroup", pid)
}

func hostMount(match func(*mountinfo.Info) bool) (string, error) {
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !match(m) || m.Root != "/", false
	})
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "", errors.New("cgroup hierarchy not mounted")
	}
	return ms[0].Mountpoint, nil
}

// errorLines returns the "Error (" lines of a CRIU log, each on its own
// line, so that a failed run names its cause.
func errorLines(log string) string {
	var b strings.Builder
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "Error (") {
			b.WriteString("\n  " + line)
		}
	}
	return b.String()
}
