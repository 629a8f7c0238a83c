package dockercr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
)

// freezer is the cgroup CRIU freezes a container with. runc freezes
// through it too: a container's tasks stop at once, so none can fork
// past a dump that stops them one by one with ptrace.
type freezer struct {
	// dir is the cgroup directory on the host.
	dir string
	// v2 is true for a cgroup v2 directory (cgroup.freeze), false for
	// a v1 freezer hierarchy (freezer.state).
	v2 bool
}

// findFreezer returns the freezer cgroup of pid.
func findFreezer(pid int) (*freezer, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()

	var v1Path, v2Path string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2Path = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "freezer" {
				v1Path = parts[2]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}

	if v1Path != "" {
		mnt, err := cgroupMountpoint(func(m *mountinfo.Info) bool {
			return m.FSType == "cgroup" && hasOption(m.VFSOptions, "freezer")
		})
		if err != nil {
			return nil, err
		}
		return &freezer{dir: filepath.Join(mnt, v1Path)}, nil
	}
	if v2Path != "" {
		mnt, err := cgroupMountpoint(func(m *mountinfo.Info) bool { return m.FSType == "cgroup2" })
		if err != nil {
			return nil, err
		}
		return &freezer{dir: filepath.Join(mnt, v2Path), v2: true}, nil
	}
	return nil, errors.New("no freezer cgroup found")
}

func cgroupMountpoint(match func(*mountinfo.Info) bool) (string, error) {
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !match(m) || m.Root != "/", false
	})
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "", errors.New("freezer hierarchy is not mounted")
	}
	return ms[0].Mountpoint, nil
}

// frozen reports whether the cgroup is frozen (or freezing).
func (f *freezer) frozen() (bool, error) {
	if f.v2 {
		b, err := os.ReadFile(filepath.Join(f.dir, "cgroup.freeze"))
		return strings.TrimSpace(string(b)) == "1", err
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "freezer.state"))
	return strings.TrimSpace(string(b)) != "THAWED", err
}

// thaw lets the cgroup's tasks run again.
func (f *freezer) thaw() error {
	var err error
	if f.v2 {
		err = os.WriteFile(filepath.Join(f.dir, "cgroup.freeze"), []byte("0"), 0)
	} else {
		err = os.WriteFile(filepath.Join(f.dir, "freezer.state"), []byte("THAWED"), 0)
	}
	// The cgroup is gone when the container's tasks all exited (a dump
	// without leave-running kills them): nothing is left to thaw.
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("thaw %s: %w", f.dir, err)
	}
	return nil
}

// freezePoll is how often freeze checks whether the cgroup is frozen.
// CRIU polls every 100 ms; a container of a few tasks freezes within a
// millisecond or two, so polling faster shortens the freeze a dump
// waits for.
const freezePoll = time.Millisecond

// freeze freezes the cgroup and waits until every task is frozen, or
// until ctx is done (then it thaws again).
func (f *freezer) freeze(ctx context.Context) error {
	write := func() error {
		if f.v2 {
			return os.WriteFile(filepath.Join(f.dir, "cgroup.freeze"), []byte("1"), 0)
		}
		return os.WriteFile(filepath.Join(f.dir, "freezer.state"), []byte("FROZEN"), 0)
	}
	if err := write(); err != nil {
		return fmt.Errorf("freeze %s: %w", f.dir, err)
	}
	t := time.NewTicker(freezePoll)
	defer t.Stop()
	for i := 1; ; i++ {
		done, err := f.settled()
		if err != nil || done {
			return err
		}
		// A cgroup v1 freeze can stall in FREEZING; asking again
		// helps, as CRIU's own freezer loop does.
		if !f.v2 && i%50 == 0 {
			_ = write()
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("freeze %s: %w", f.dir, context.Cause(ctx)), f.thaw())
		case <-t.C:
		}
	}
}

// settled reports whether every task of the cgroup is frozen.
func (f *freezer) settled() (bool, error) {
	if f.v2 {
		b, err := os.ReadFile(filepath.Join(f.dir, "cgroup.events"))
		return strings.Contains(string(b), "frozen 1"), err
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "freezer.state"))
	return strings.TrimSpace(string(b)) == "FROZEN", err
}
