package integration

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker-cr/dockercr"
)

// procFacts is what /proc says of a process before it is dumped.
type procFacts struct {
	comm    string
	cmdline []string
	tids    []int
	fds     map[int]string
}

func tProcFacts(t *testing.T, pid int) procFacts {
	t.Helper()
	dir := "/proc/" + strconv.Itoa(pid)
	comm, err := os.ReadFile(dir + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	f := procFacts{
		comm:    strings.TrimSpace(string(comm)),
		cmdline: strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00"),
		fds:     map[int]string{},
	}
	for _, name := range tEntries(t, dir+"/task") {
		tid, _ := strconv.Atoi(name)
		f.tids = append(f.tids, tid)
	}
	for _, name := range tEntries(t, dir+"/fd") {
		fd, _ := strconv.Atoi(name)
		if target, err := os.Readlink(dir + "/fd/" + name); err == nil {
			f.fds[fd] = target
		}
	}
	return f
}

// TestInspectFreshDump dumps workloads with CRIU and checks that
// inspection reports what /proc said of them just before.
func TestInspectFreshDump(t *testing.T) {
	tRequireEnv(t)
	workloads := []struct {
		name string
		args []string
		opts []dockercr.Option
	}{
		{"counter", []string{"counter", "-interval", "20ms"}, nil},
		{"tcp", []string{"tcp", "-interval", "20ms"}, []dockercr.Option{dockercr.WithTCPEstablished()}},
	}
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) {
			p := tStartWorkload(t, nil, w.args...)
			p.tNextCount(t)
			want := tProcFacts(t, p.PID)
			ready := p.lines(t)[0]

			dir := tCheckpointDir(t)
			res, err := tNew(t, nil, w.opts...).Checkpoint(tContext(t), p.PID, dir)
			if err != nil {
				t.Fatal(err)
			}
			p.tWaitGone(t)

			if err := dockercr.ValidateImages(res.ImagesDir); err != nil {
				t.Fatal(err)
			}
			info, err := dockercr.InspectCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			tCheckFreshInfo(t, info, p.PID, want)
			if w.name == "tcp" {
				tCheckTCPSockets(t, info, ready)
			}
		})
	}
}

func tCheckFreshInfo(t *testing.T, info *dockercr.CheckpointInfo, pid int, want procFacts) {
	t.Helper()
	if len(info.Processes) != 1 {
		t.Fatalf("processes %+v, want the workload alone", info.Processes)
	}
	got := info.Processes[0]
	if got.PID != pid || got.PPID != 0 || got.SID != pid || got.Comm != want.comm ||
		!slices.Equal(got.Cmdline, want.cmdline) || got.Exe != env.workload {
		t.Errorf("process %+v, want pid %d comm %q cmdline %q exe %q",
			got, pid, want.comm, want.cmdline, env.workload)
	}
	// Go's runtime starts threads but never ends them: every thread
	// seen before the dump is in it.
	for _, tid := range want.tids {
		if !slices.Contains(got.Threads, tid) {
			t.Errorf("thread %d missing from %v", tid, got.Threads)
		}
	}

	fds := map[int]string{}
	for _, f := range info.Files {
		fds[f.FD] = f.Path
	}
	for fd, target := range want.fds {
		if fds[fd] != target {
			t.Errorf("fd %d: %q, /proc said %q", fd, fds[fd], target)
		}
	}
	if info.CRIUVersion != env.version.String() || info.Stats == nil || info.MemoryBytes == 0 {
		t.Errorf("criu %q stats %v memory %d", info.CRIUVersion, info.Stats, info.MemoryBytes)
	}
}

// tCheckTCPSockets finds the connection the tcp workload names in its
// ready line ("local=A remote=B"): both ends and the listener.
func tCheckTCPSockets(t *testing.T, info *dockercr.CheckpointInfo, ready string) {
	t.Helper()
	var local, remote string
	for _, f := range strings.Fields(ready) {
		if v, ok := strings.CutPrefix(f, "local="); ok {
			local = v
		}
		if v, ok := strings.CutPrefix(f, "remote="); ok {
			remote = v
		}
	}
	want := []string{
		"tcp ESTABLISHED " + local + " " + remote,
		"tcp ESTABLISHED " + remote + " " + local,
		"tcp LISTEN " + remote + " ",
	}
	var got []string
	for _, s := range info.Sockets {
		got = append(got, s.Protocol+" "+s.State+" "+s.Local+" "+s.Remote)
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("no socket %q among %q (ready line %q)", w, got, ready)
		}
	}
}

// TestValidateLargeDump measures validation of a real 1 GiB dump,
// which must stay well under a second because it reads no page, and
// checks that the same dump with its pages image one page short is
// refused.
func TestValidateLargeDump(t *testing.T) {
	tRequireEnv(t)
	if testing.Short() {
		t.Skip("dumps 1 GiB; skipped with -short")
	}
	p := tStartWorkload(t, nil, "mem", "-mib", "1024", "-interval", "100ms")
	p.tNextCount(t)
	dir := tCheckpointDir(t)
	res, err := tNew(t, nil).Checkpoint(tContext(t), p.PID, dir)
	if err != nil {
		t.Fatal(err)
	}
	p.tWaitGone(t)
	pages := tLargestPages(t, res.ImagesDir)

	validate := tTime(t, "ValidateImages", 20, func() error { return dockercr.ValidateImages(res.ImagesDir) })
	inspect := tTime(t, "InspectCheckpoint", 20, func() error {
		_, err := dockercr.InspectCheckpoint(dir)
		return err
	})
	if validate > 500*time.Millisecond || inspect > 500*time.Millisecond {
		t.Errorf("median validate %v, inspect %v: want well under a second", validate, inspect)
	}

	fi, err := os.Stat(pages)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(pages, fi.Size()-int64(os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = dockercr.ValidateImages(res.ImagesDir)
	t.Logf("damaged: refused in %v: %v", time.Since(start), err)
	var ie *dockercr.ImageError
	if !errors.As(err, &ie) || ie.File != pages || !errors.Is(err, dockercr.ErrCorruptCheckpoint) {
		t.Fatalf("got %v, want an ImageError naming %s", err, pages)
	}
}

// tLargestPages returns the biggest pages image of dir.
func tLargestPages(t *testing.T, dir string) string {
	t.Helper()
	var best string
	var size int64
	for _, name := range tEntries(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err == nil && strings.HasPrefix(name, "pages-") && fi.Size() > size {
			best, size = filepath.Join(dir, name), fi.Size()
		}
	}
	if size < 1<<30 {
		t.Fatalf("largest pages image %s has %d bytes, want 1 GiB or more", best, size)
	}
	t.Logf("pages image %s: %d MiB", best, size>>20)
	return best
}

// tTime runs f n times and logs the fastest, median and slowest run;
// it returns the median.
func tTime(t *testing.T, what string, n int, f func() error) time.Duration {
	t.Helper()
	runs := make([]time.Duration, n)
	for i := range runs {
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		runs[i] = time.Since(start)
	}
	slices.Sort(runs)
	t.Logf("%s over %d runs: min %v, median %v, max %v", what, n, runs[0], runs[n/2], runs[n-1])
	return runs[n/2]
}
