package dockercr

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
)

func TestMountKindString(t *testing.T) {
	tests := []struct {
		kind MountKind
		want string
	}{
		{MountRoot, "root"},
		{MountInternal, "internal"},
		{MountExternal, "external"},
		{MountKind(7), "MountKind(7)"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.kind.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMountDumpExternal(t *testing.T) {
	tests := []struct {
		dest string
		want string
	}{
		{"/etc/hosts", "mnt[/etc/hosts]:/etc/hosts"},
		{"/sys/fs/cgroup/cpu", "mnt[/sys/fs/cgroup/cpu]:/sys/fs/cgroup/cpu"},
	}
	for _, tc := range tests {
		t.Run(tc.dest, func(t *testing.T) {
			m := Mount{Destination: tc.dest, Source: "/elsewhere"}
			if got := m.DumpExternal(); got != tc.want {
				t.Errorf("DumpExternal() = %q, want %q", got, tc.want)
			}
			if got := m.Key(); got != tc.dest {
				t.Errorf("Key() = %q, want %q", got, tc.dest)
			}
		})
	}
}

// wantMount is the expected classification of one destination.
type wantMount struct {
	kind     MountKind
	source   string
	readOnly bool
}

func internal() wantMount { return wantMount{kind: MountInternal} }

func external(src string) wantMount {
	return wantMount{kind: MountExternal, source: src}
}

// v1Controllers are the cgroup v1 hierarchies Docker mounts on the
// recording host.
var v1Controllers = []string{
	"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio",
	"pids", "systemd",
}

// dockerWant returns what every recorded container has: Docker's own
// mounts, with the three per-container files bound from the host.
func dockerWant(id string) map[string]wantMount {
	ctr := "/var/lib/docker/containers/" + id
	return map[string]wantMount{
		"/":                {kind: MountRoot},
		"/proc":            internal(),
		"/dev":             internal(),
		"/dev/pts":         internal(),
		"/dev/mqueue":      internal(),
		"/dev/shm":         internal(),
		"/sys":             {kind: MountInternal, readOnly: true},
		"/sys/fs/cgroup":   internal(),
		"/sys/firmware":    {kind: MountInternal, readOnly: true},
		"/proc/bus":        {kind: MountInternal, readOnly: true},
		"/proc/sys":        {kind: MountInternal, readOnly: true},
		"/proc/acpi":       {kind: MountInternal, readOnly: true},
		"/proc/keys":       internal(),
		"/proc/timer_list": internal(),
		"/etc/hosts":       external(ctr + "/hosts"),
		"/etc/hostname":    external(ctr + "/hostname"),
		"/etc/resolv.conf": external(ctr + "/resolv.conf"),
	}
}

// withV1Cgroups adds the cgroup v1 controllers as binds of the host's
// hierarchies, as Docker 20.10 mounts them without a cgroup namespace.
func withV1Cgroups(w map[string]wantMount, id string) map[string]wantMount {
	for _, c := range v1Controllers {
		w["/sys/fs/cgroup/"+c] = wantMount{
			kind:     MountExternal,
			source:   "/sys/fs/cgroup/" + c + "/docker/" + id,
			readOnly: true,
		}
	}
	return w
}

func TestClassifyMountsFixtures(t *testing.T) {
	const (
		plainID  = "f24d3a37b05aba5d8f669622d6c7480ec76b5dcb14e533dd33cb40ebb6a4529a"
		volumeID = "ea78eb6b5298400f0ee38585bf61ea5e35ce9d9b63f9b8f82a2a05fca725aad1"
		tmpfsID  = "22e6b54c55e6891853e47993cb3eaaac8c97f3b9b5fb887f9e3acd5854d37696"
		roID     = "a9febd95e27b514502cd92a571f09b92c71d225b7e2faa0b42e6379a5d5ad29c"
		initID   = "4a4c4df52473054ab12868b1264ab0eff5a6e99bd4b3636df2dca4705a931a04"
		shmID    = "e80fb7514ed45067b1eada2cc39c430e308346f8d7f6f2770fea497f2c58f114"
		cgnsID   = "d5bfbebce4f42ce23e423d7cd9d0a1fd5147ba888a8ac0dad5bd7b8ab9ccabdb"
	)
	tests := []struct {
		name     string
		cgroupNS bool // the target has its own cgroup namespace
		want     map[string]wantMount
	}{
		{
			name: "plain",
			want: withV1Cgroups(dockerWant(plainID), plainID),
		},
		{
			name: "volume",
			want: merge(withV1Cgroups(dockerWant(volumeID), volumeID),
				map[string]wantMount{
					"/data":    external("/var/lib/docker/volumes/mnt-fx-vol/_data"),
					"/hostdir": external("/tmp/mnt-bind-src"),
				}),
		},
		{
			name: "tmpfs",
			want: merge(withV1Cgroups(dockerWant(tmpfsID), tmpfsID),
				map[string]wantMount{"/run": internal()}),
		},
		{
			name: "readonly",
			want: merge(withV1Cgroups(dockerWant(roID), roID),
				readOnlyDockerFiles(roID)),
		},
		{
			name: "init",
			want: merge(withV1Cgroups(dockerWant(initID), initID),
				map[string]wantMount{"/sbin/docker-init": {
					kind:     MountExternal,
					source:   "/usr/bin/tini-static",
					readOnly: true,
				}}),
		},
		{
			name: "shm",
			want: merge(withV1Cgroups(dockerWant(shmID), shmID),
				map[string]wantMount{"/dev/shm": external(
					"/var/lib/docker/containers/" + shmID + "/mounts/shm")}),
		},
		{
			name:     "cgroupns",
			cgroupNS: true,
			want:     merge(dockerWant(cgnsID), v1CgroupsInternal()),
		},
		{
			name: "cgroupv2",
			want: merge(dockerWant(plainID), map[string]wantMount{
				"/sys/fs/cgroup": {kind: MountInternal, readOnly: true},
			}),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target, host := tLoadFixture(t, tc.name)
			if tc.cgroupNS {
				target = rootCgroupMounts(target)
			}

			got := classifyMounts(target, host)
			if len(got) != len(target) {
				t.Fatalf("got %d mounts, want %d", len(got), len(target))
			}
			byDest := tIndexByDestination(t, got)

			for dest, w := range tc.want {
				tCheckMount(t, byDest, dest, w)
			}
			tCheckExternalSet(t, got, tc.want)
		})
	}
}

func merge(a, b map[string]wantMount) map[string]wantMount {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func readOnlyDockerFiles(id string) map[string]wantMount {
	ctr := "/var/lib/docker/containers/" + id
	w := map[string]wantMount{"/": {kind: MountRoot, readOnly: true}}
	for _, f := range []string{"hosts", "hostname", "resolv.conf"} {
		w["/etc/"+f] = wantMount{
			kind: MountExternal, source: ctr + "/" + f, readOnly: true,
		}
	}
	return w
}

func v1CgroupsInternal() map[string]wantMount {
	w := map[string]wantMount{}
	for _, c := range v1Controllers {
		w["/sys/fs/cgroup/"+c] = wantMount{kind: MountInternal, readOnly: true}
	}
	return w
}

func tLoadFixture(t *testing.T, name string) (target, host []*mountinfo.Info) {
	t.Helper()
	return tParseFile(t, name+".target.txt"), tParseFile(t, name+".host.txt")
}

func tParseFile(t *testing.T, file string) []*mountinfo.Info {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "mountinfo", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	infos, err := mountinfo.GetMountsFromReader(f, nil)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	return infos
}

func tIndexByDestination(t *testing.T, mounts []Mount) map[string]Mount {
	t.Helper()
	byDest := make(map[string]Mount, len(mounts))
	for _, m := range mounts {
		if _, dup := byDest[m.Destination]; dup {
			t.Fatalf("destination %s listed twice", m.Destination)
		}
		byDest[m.Destination] = m
	}
	return byDest
}

func tCheckMount(t *testing.T, byDest map[string]Mount, dest string,
	w wantMount,
) {
	t.Helper()
	m, ok := byDest[dest]
	if !ok {
		t.Errorf("%s: not in the result", dest)
		return
	}
	if m.Kind != w.kind || m.Source != w.source || m.ReadOnly != w.readOnly {
		t.Errorf("%s: got kind %s source %q ro %v (%s), "+
			"want kind %s source %q ro %v",
			dest, m.Kind, m.Source, m.ReadOnly, m.Reason,
			w.kind, w.source, w.readOnly)
	}
	if m.Reason == "" {
		t.Errorf("%s: empty Reason", dest)
	}
}

// tCheckExternalSet fails unless the external mounts are exactly those
// want marks external.
func tCheckExternalSet(t *testing.T, got []Mount, want map[string]wantMount) {
	t.Helper()
	var gotExt, wantExt []string
	for _, m := range got {
		if m.Kind == MountExternal {
			gotExt = append(gotExt, m.Destination)
		}
	}
	for dest, w := range want {
		if w.kind == MountExternal {
			wantExt = append(wantExt, dest)
		}
	}
	sort.Strings(gotExt)
	sort.Strings(wantExt)
	if strings.Join(gotExt, " ") != strings.Join(wantExt, " ") {
		t.Errorf("external mounts:\n got  %v\n want %v", gotExt, wantExt)
	}
}

// TestClassifyMountsRules covers rules the recordings do not reach, on
// hand-made tables.
func TestClassifyMountsRules(t *testing.T) {
	const root = "1 0 0:40 / / rw - overlay overlay rw\n"
	const hostRoot = "10 1 254:0 / / rw - ext4 /dev/vda rw\n"
	tests := []struct {
		name   string
		target string
		host   string
		entry  int // index of the mount to check
		want   wantMount
	}{
		{
			name:   "host sysfs mounted by type stays internal",
			target: root + "2 1 0:22 / /sys rw - sysfs sysfs rw\n",
			host:   hostRoot + "11 10 0:22 / /sys rw - sysfs sysfs rw\n",
			entry:  1,
			want:   internal(),
		},
		{
			name: "bind of a bind is not sourced from it",
			target: root +
				"2 1 254:0 /srv/a /a rw - ext4 /dev/vda rw\n" +
				"3 1 254:0 /srv/a/b /b rw - ext4 /dev/vda rw\n",
			host:  hostRoot,
			entry: 2,
			want:  external("/srv/a/b"),
		},
		{
			name:   "bind of the root filesystem is internal",
			target: root + "2 1 0:40 /usr/lib /mnt rw - overlay overlay rw\n",
			host:   hostRoot,
			entry:  1,
			want:   internal(),
		},
		{
			name:   "longest host root gives the source",
			target: root + "2 1 254:0 /data/x/y /y rw - ext4 /dev/vda rw\n",
			host:   hostRoot + "11 10 254:0 /data/x /mnt/x rw - ext4 /dev/vda rw\n",
			entry:  1,
			want:   external("/mnt/x/y"),
		},
		{
			name:   "host root is a path prefix, not a string prefix",
			target: root + "2 1 254:0 /database /db rw - ext4 /dev/vda rw\n",
			host:   hostRoot + "11 10 254:0 /data /mnt/data rw - ext4 /dev/vda rw\n",
			entry:  1,
			want:   external("/database"),
		},
		{
			name:   "unsupported fs without host mount is external",
			target: root + "2 1 0:90 / /hp rw - hugetlbfs hugetlbfs rw\n",
			host:   hostRoot,
			entry:  1,
			want:   external(""),
		},
		{
			name:   "bind without any source is external",
			target: root + "2 1 0:91 /sub /s rw - tmpfs tmpfs rw\n",
			host:   hostRoot,
			entry:  1,
			want:   external(""),
		},
		{
			name:   "topmost of stacked root mounts is the root",
			target: root + "2 1 0:41 / / rw - tmpfs tmpfs rw\n",
			host:   hostRoot,
			entry:  1,
			want:   wantMount{kind: MountRoot},
		},
		{
			name:   "shadowed root mount is not the root",
			target: root + "2 1 0:41 / / rw - tmpfs tmpfs rw\n",
			host:   hostRoot,
			entry:  0,
			want:   internal(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := classifyMounts(tParse(t, tc.target), tParse(t, tc.host))
			m := got[tc.entry]
			tCheckMount(t, map[string]Mount{m.Destination: m},
				m.Destination, tc.want)
		})
	}
}

func tParse(t *testing.T, text string) []*mountinfo.Info {
	t.Helper()
	infos, err := mountinfo.GetMountsFromReader(strings.NewReader(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

func TestRootCgroupMounts(t *testing.T) {
	target := tParse(t,
		"1 0 0:40 / / rw - overlay overlay rw\n"+
			"2 1 0:29 /docker/x /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n"+
			"3 1 0:28 /docker/x /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"+
			"4 1 254:0 /docker/x /data rw - ext4 /dev/vda rw\n")

	got := rootCgroupMounts(target)
	wantRoots := []string{"/", "/", "/", "/docker/x"}
	for i, m := range got {
		if m.Root != wantRoots[i] {
			t.Errorf("%s: root %q, want %q", m.Mountpoint, m.Root, wantRoots[i])
		}
	}
	if target[1].Root != "/docker/x" {
		t.Errorf("input table changed: root %q", target[1].Root)
	}
}

func FuzzClassifyMounts(f *testing.F) {
	for _, name := range []string{"plain", "volume", "shm", "cgroupv2"} {
		target, err1 := os.ReadFile("testdata/mountinfo/" + name + ".target.txt")
		host, err2 := os.ReadFile("testdata/mountinfo/" + name + ".host.txt")
		if err := errors.Join(err1, err2); err != nil {
			f.Fatal(err)
		}
		f.Add(string(target), string(host))
	}
	f.Add("1 1 0:1 / / rw - x y z\n2 1 0:1 / / rw - x y z\n", "")

	f.Fuzz(func(t *testing.T, targetText, hostText string) {
		target, err := mountinfo.GetMountsFromReader(
			strings.NewReader(targetText), nil)
		if err != nil {
			return
		}
		host, err := mountinfo.GetMountsFromReader(
			strings.NewReader(hostText), nil)
		if err != nil {
			host = nil
		}

		for _, tab := range [][]*mountinfo.Info{target, rootCgroupMounts(target)} {
			got := classifyMounts(tab, host)
			if len(got) != len(tab) {
				t.Fatalf("got %d mounts for %d entries", len(got), len(tab))
			}
			roots := 0
			for i, m := range got {
				if m.Kind == MountRoot {
					roots++
				}
				if m.Kind < MountRoot || m.Kind > MountExternal {
					t.Fatalf("entry %d: kind %d", i, m.Kind)
				}
				if m.Destination != tab[i].Mountpoint {
					t.Fatalf("entry %d out of order", i)
				}
			}
			if roots > 1 {
				t.Fatalf("%d root mounts", roots)
			}
		}
	})
}

func TestDiscoverMountsNotFound(t *testing.T) {
	tests := []struct {
		name string
		pid  int
	}{
		{"beyond pid_max", tPidMax(t) + 1},
		{"zero", 0},
		{"negative", -1},
		{"exited but not reaped", tZombie(t)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DiscoverMounts(tc.pid)
			if !errors.Is(err, ErrProcessNotFound) {
				t.Fatalf("DiscoverMounts(%d) = %v, want ErrProcessNotFound",
					tc.pid, err)
			}
		})
	}
}

func tPidMax(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tZombie starts a child that exits at once and is reaped only at
// cleanup, and returns its pid once it is a zombie.
func tZombie(t *testing.T) int {
	t.Helper()
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true binary on PATH to make a zombie with")
	}
	cmd := exec.Command(bin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })

	pid := cmd.Process.Pid
	stat := "/proc/" + strconv.Itoa(pid) + "/stat"
	for deadline := time.Now().Add(5 * time.Second); ; {
		data, err := os.ReadFile(stat)
		if err == nil && strings.Contains(string(data), ") Z ") {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not become a zombie", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDiscoverMountsSelf(t *testing.T) {
	got, err := DiscoverMounts(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}

	own, err := mountinfo.GetMounts(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(own) {
		t.Errorf("got %d mounts, own table has %d", len(got), len(own))
	}

	var roots []Mount
	for _, m := range got {
		if m.Kind == MountRoot {
			roots = append(roots, m)
		}
	}
	if len(roots) != 1 || roots[0].Destination != "/" {
		t.Fatalf("root mounts: %+v, want one at /", roots)
	}
}
