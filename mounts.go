package dockercr

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
)

// MountKind says how CRIU must treat one mount of a checkpointed tree.
type MountKind int

const (
	// MountRoot is the target's root filesystem, the one CRIU is given
	// with --root.
	MountRoot MountKind = iota
	// MountInternal is a mount CRIU dumps and recreates by itself: a
	// kernel filesystem it mounts anew by type, a tmpfs whose files it
	// saves, or a bind whose source lies inside the target's tree.
	MountInternal
	// MountExternal is a mount CRIU cannot recreate from the image alone
	// and refuses to dump unless told about it with --external mnt[...].
	MountExternal
)

// String returns "root", "internal" or "external".
func (k MountKind) String() string {
	switch k {
	case MountRoot:
		return "root"
	case MountInternal:
		return "internal"
	case MountExternal:
		return "external"
	}
	return "MountKind(" + strconv.Itoa(int(k)) + ")"
}

// Mount is one entry of the target's mount table, classified for CRIU.
type Mount struct {
	// Destination is the mount point inside the target's mount
	// namespace, as /proc/PID/mountinfo shows it.
	Destination string
	// Source is, for an external mount, the host path that shows the
	// same files (a file or a directory); "" when no host mount shows
	// them, and for root and internal mounts.
	Source string
	// FSType is the filesystem type, such as "ext4" or "tmpfs".
	FSType string
	// ReadOnly reports whether the mount itself is read-only.
	ReadOnly bool
	// Kind says how CRIU must treat the mount.
	Kind MountKind
	// Reason says in a few words why the mount got its Kind, for logs
	// and inspect output.
	Reason string
}

// Key returns the CRIU external-mount key of m: its destination. runc
// uses the same convention on both sides (the key is the mount point
// inside the container), so a checkpoint taken with these keys restores
// through runc, which passes --external mnt[DEST]:HOSTSRC for every bind
// mount of the container's config.
func (m Mount) Key() string { return m.Destination }

// DumpExternal returns the value of the dump-side CRIU option
// --external that declares m external: "mnt[DEST]:KEY". It is only
// meaningful for a [MountExternal] mount.
func (m Mount) DumpExternal() string {
	return "mnt[" + m.Destination + "]:" + m.Key()
}

// DiscoverMounts reads /proc/PID/mountinfo of the target and the caller's
// own /proc/self/mountinfo (the host view) and classifies every mount of
// the target, in the order mountinfo lists them. An external mount's
// Source is resolved in the caller's mount namespace, so the caller
// should share the mount namespace of the Docker daemon. Reading another
// user's process needs ptrace access to it (root, in practice).
//
// It returns an error matching [ErrProcessNotFound] when the process does
// not exist or has already exited, and one matching [ErrNotPermitted]
// when the caller may not inspect its namespaces.
func DiscoverMounts(pid int) ([]Mount, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrProcessNotFound)
	}
	proc := "/proc/" + strconv.Itoa(pid)

	target, err := readMountTable(proc + "/mountinfo")
	if err != nil {
		return nil, procError(pid, err)
	}

	host, err := readMountTable("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("host mount table: %w", err)
	}

	own, err := hasOwnCgroupNS(proc)
	if err != nil {
		return nil, procError(pid, err)
	}
	if own {
		target = rootCgroupMounts(target)
	}

	return classifyMounts(target, host), nil
}

// readMountTable reads and parses one mountinfo file. The whole file is
// read first so that open and read errors reach the caller unwrapped by
// the parser.
func readMountTable(file string) ([]*mountinfo.Info, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}

	infos, err := mountinfo.GetMountsFromReader(bytes.NewReader(data), nil)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	return infos, nil
}

// procError maps a failure to read the target's /proc entries to the
// broad error kinds, keeping the original error in the chain.
func procError(pid int, err error) error {
	switch {
	// The kernel answers EINVAL for the mountinfo of a task that has
	// exited but not been reaped (a zombie has no mount namespace left),
	// and ESRCH when it goes away while being read.
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) ||
		errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("pid %d: %w: %w", pid, ErrProcessNotFound, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("pid %d: %w: %w", pid, ErrNotPermitted, err)
	}
	return fmt.Errorf("pid %d: %w", pid, err)
}

// hasOwnCgroupNS reports whether the process at proc lives in a cgroup
// namespace other than the caller's.
func hasOwnCgroupNS(proc string) (bool, error) {
	self, err := os.Readlink("/proc/self/ns/cgroup")
	if errors.Is(err, fs.ErrNotExist) {
		// Kernels before 4.6 have no cgroup namespaces: all share one.
		return false, nil
	}
	if err != nil {
		return false, err
	}

	other, err := os.Readlink(proc + "/ns/cgroup")
	if err != nil {
		return false, err
	}
	return other != self, nil
}

// rootCgroupMounts returns target with the cgroup mounts shown as mounted
// from their root. The kernel prints a cgroup mount's root relative to
// the reader's cgroup namespace, so from the host the mounts of a target
// in its own namespace look like binds of a sub-directory. CRIU does the
// same rewrite for such targets (cgroup_parse in filesystems.c, through
// 4.2) and mounts those hierarchies anew on restore; runc (1.1.5, the
// one in Docker 20.10, as its main branch today) calls them real mounts
// and passes no mapping for them on dump or restore.
func rootCgroupMounts(target []*mountinfo.Info) []*mountinfo.Info {
	out := make([]*mountinfo.Info, len(target))
	for i, m := range target {
		out[i] = m
		if isCgroupFS(m.FSType) && m.Root != "/" {
			c := *m
			c.Root = "/"
			out[i] = &c
		}
	}
	return out
}

// classifyMounts classifies every mount of target, in order, against the
// caller's view host. It is pure: everything it knows comes from the two
// tables (see [DiscoverMounts] for the cgroup namespace case).
func classifyMounts(target, host []*mountinfo.Info) []Mount {
	root := rootIndex(target)
	out := make([]Mount, len(target))
	for i, m := range target {
		out[i] = Mount{
			Destination: m.Mountpoint,
			FSType:      m.FSType,
			ReadOnly:    hasOption(m.Options, "ro"),
		}
		if i == root {
			out[i].Kind = MountRoot
			out[i].Reason = "root filesystem of the target"
			continue
		}
		out[i].Kind, out[i].Source, out[i].Reason =
			classifyMount(m, target, root, host)
	}
	return out
}

// rootIndex returns the index of the target's root mount, -1 if none.
// Mounts stacked on "/" each show "/" as mount point; the topmost one,
// whose parent is the previous "/" mount, is the root the target sees.
func rootIndex(target []*mountinfo.Info) int {
	root := -1
	for i, m := range target {
		if m.Mountpoint != "/" {
			continue
		}
		if root == -1 || m.Parent == target[root].ID {
			root = i
		}
	}
	return root
}

// classifyMount applies the rules to one non-root mount, first match
// wins, and returns the kind, the host source and the reason.
func classifyMount(m *mountinfo.Info, target []*mountinfo.Info, root int,
	host []*mountinfo.Info,
) (MountKind, string, string) {
	// Kernel filesystems CRIU mounts anew by type (proc, sysfs, devpts,
	// mqueue, cgroup, ...) need no external entry when mounted from
	// their root, even when the superblock is the host's (sysfs with
	// --network host, proc with --pid host): runc mounts them by type,
	// not as binds, and passes no mapping for them on restore. That
	// includes the cgroup2 mount of a cgroup v2 host, which runc never
	// declares external (CRIU 3.14 and later mount cgroup2 themselves).
	if m.Root == "/" && criuMountsByType[m.FSType] {
		return MountInternal, "", m.FSType + " mounted from its root; " +
			"CRIU mounts it anew"
	}

	// A bind whose source CRIU can reach inside the tree: another mount
	// of the same superblock mounted from its root, or the root mount
	// when its root contains this one's (find_fsroot_mount_for in
	// CRIU's mount.c). Docker's /proc/bus and /proc/keys are such binds.
	if src := bindSourceInTree(m, target, root); src != nil {
		return MountInternal, "", "bind from " + src.Mountpoint +
			" inside the target"
	}

	// The superblock is mounted in the host view: a bind of a host path
	// (/etc/hosts, volumes, -v binds, a shareable /dev/shm, cgroup v1
	// directories). Only the caller knows that path on restore.
	if src, ok := hostSource(m, host); ok {
		return MountExternal, src, "bind of host path " + src
	}

	// CRIU refuses a bind without a reachable source ("doesn't have a
	// proper root mount") and a filesystem type it cannot dump ("FS mnt
	// ... unsupported"); only an external entry lets the dump through.
	if m.Root != "/" {
		return MountExternal, "", "bind with no source in the target " +
			"or the host view"
	}
	if !criuKnowsFS[m.FSType] {
		return MountExternal, "", "CRIU cannot dump " + m.FSType +
			" and no host mount shows it"
	}

	// A filesystem private to the target, such as a --tmpfs or the
	// container's /dev tmpfs: CRIU saves and restores its contents.
	return MountInternal, "", m.FSType + " private to the target; " +
		"CRIU dumps it"
}

// bindSourceInTree returns the target mount CRIU would bind m from, or
// nil. Like CRIU, it wants a mount of the same superblock mounted from
// its root, or the tree's root mount when its root contains m's. A mount
// of a filesystem's root is no bind: CRIU checks its type instead.
func bindSourceInTree(m *mountinfo.Info, target []*mountinfo.Info,
	root int,
) *mountinfo.Info {
	if m.Root == "/" {
		return nil
	}
	for i, t := range target {
		if t == m || !sameDevice(t, m) {
			continue
		}
		if t.Root == "/" || (i == root && isSubpath(m.Root, t.Root)) {
			return t
		}
	}
	return nil
}

// hostSource returns the host path that shows m's root: the host mount
// of the same superblock with the longest root containing m's root, its
// mount point joined with the rest of m's root.
func hostSource(m *mountinfo.Info, host []*mountinfo.Info) (string, bool) {
	var best *mountinfo.Info
	for _, h := range host {
		if !sameDevice(h, m) || !isSubpath(m.Root, h.Root) {
			continue
		}
		if best == nil || len(h.Root) > len(best.Root) {
			best = h
		}
	}
	if best == nil {
		return "", false
	}

	rest := strings.TrimPrefix(m.Root, best.Root)
	return path.Join(best.Mountpoint, rest), true
}

// sameDevice reports whether a and b are mounts of one superblock.
func sameDevice(a, b *mountinfo.Info) bool {
	return a.Major == b.Major && a.Minor == b.Minor
}

// isSubpath reports whether p is dir or lies below it.
func isSubpath(p, dir string) bool {
	if dir == "/" || p == dir {
		return true
	}
	return strings.HasPrefix(p, dir+"/")
}

// hasOption reports whether the comma-separated list opts holds opt.
func hasOption(opts, opt string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

func isCgroupFS(fstype string) bool {
	return fstype == "cgroup" || fstype == "cgroup2"
}

// criuMountsByType lists the kernel filesystems CRIU 4.x recreates by
// mounting a new instance of the type, saving nothing but (for some) a
// check that they are empty. tmpfs and devtmpfs are left out: CRIU saves
// their files, so a host-visible one must be declared, not copied.
// bpf, configfs and hugetlbfs are left out too: CRIU has no handler for
// them and refuses them unless external.
var criuMountsByType = map[string]bool{
	"proc": true, "sysfs": true, "devpts": true, "mqueue": true,
	"securityfs": true, "debugfs": true, "tracefs": true,
	"pstore": true, "fusectl": true, "binfmt_misc": true,
	"cgroup": true, "cgroup2": true,
}

// criuKnowsFS lists every filesystem type CRIU 4.2 can dump when mounted
// from its root (the fstypes table of its filesystems.c, less fuse,
// which always fails, and btrfs, which it marks unsupported).
var criuKnowsFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "binfmt_misc": true,
	"tmpfs": true, "devpts": true, "simfs": true, "pstore": true,
	"mqueue": true, "securityfs": true, "fusectl": true,
	"debugfs": true, "tracefs": true, "cgroup": true, "cgroup2": true,
	"aufs": true, "overlay": true, "autofs": true,
}
