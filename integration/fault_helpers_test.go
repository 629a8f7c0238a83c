package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr"
)

// Helpers of the fault tests (fault_test.go, fault_docker_test.go).
// They inject a fault at a chosen point of a CRIU run: a watcher reads
// CRIU's log and sizes its pages images from outside, and once the run
// reaches the point, it stops criu with SIGSTOP, checks from the log
// that the run has not gone past the point, and hands the stopped criu
// to the test, which kills it or cancels the context and lets it go on.

// faultStress turns on the long variants: more fault points and
// repetitions (DOCKERCR_STRESS=1, for make stress).
var faultStress = os.Getenv("DOCKERCR_STRESS") == "1"

// faultRepeats is how often each fault point runs: once, or under
// faultStress stressRepeats times.
func faultRepeats() int {
	if faultStress {
		return stressRepeats
	}
	return 1
}

const stressRepeats = 5

// faultCase names the subtest of point name in repetition i.
func faultCase(name string, i int) string {
	if i == 0 {
		return name
	}
	return name + "#" + strconv.Itoa(i)
}

// faultMiB is the memory workload of the kill and cancel points: CRIU
// 4.2.1 dumps it in about 0.9 s here, 0.7 s of it writing pages, which
// leaves each point a window of tens of milliseconds or more.
const faultMiB = 1024

// faultPoll is how often the watcher looks at CRIU's progress.
const faultPoll = 200 * time.Microsecond

// faultReturn bounds the wait for a call to return once its criu was
// killed or its context cancelled (the graceful path takes longer).
const faultReturn = 45 * time.Second

// faultHeld is what the test process holds that a fault could leak.
type faultHeld struct {
	fds      []string
	mounts   []string
	children []int
}

func faultSnapshot() faultHeld {
	return faultHeld{fds: openFDs(), mounts: faultMounts(), children: childPIDs()}
}

// tFaultNoLeaks snapshots the test process's descriptors, mounts and
// children, and registers a cleanup that fails the test if it holds
// more once every cleanup registered after this call has run. Fault
// tests do not run in parallel, so the process is theirs alone.
func tFaultNoLeaks(t *testing.T) {
	t.Helper()
	before := faultSnapshot()
	t.Cleanup(func() {
		after := faultSnapshot()
		if fds := newFDs(before.fds, after.fds); len(fds) > 0 {
			t.Errorf("descriptors leaked (%d before, %d after): %s",
				len(before.fds), len(after.fds), strings.Join(fds, ", "))
		}
		if m := newFDs(before.mounts, after.mounts); len(m) > 0 {
			t.Errorf("mounts leaked (%d before, %d after): %s",
				len(before.mounts), len(after.mounts), strings.Join(m, "; "))
		}
		var left []string
		for _, pid := range after.children {
			if !slices.Contains(before.children, pid) {
				left = append(left, describePID(pid))
			}
		}
		if len(left) > 0 {
			t.Errorf("child processes left: %s", strings.Join(left, "; "))
		}
	})
}

// faultMounts lists the mounts of the test's mount namespace as "mount
// point, type, source", one per mount. The mount namespace is the
// host's, so mounts that other runs on the host make come and go in
// it: those in Docker's own directories (containers) and in the
// temporary directories of tests other than these (such as CRIU's
// cgroup yard in a work directory) are left out.
func faultMounts() []string {
	others := filepath.Join(os.TempDir(), "Test")
	mine := filepath.Join(os.TempDir(), "TestFault")
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return []string{"mountinfo: " + err.Error()}
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			out = append(out, line)
			continue
		}
		mp := f[4]
		if strings.HasPrefix(mp, "/var/lib/docker/") || strings.HasPrefix(mp, "/run/docker/") ||
			strings.HasPrefix(mp, others) && !strings.HasPrefix(mp, mine) {
			continue
		}
		out = append(out, mp+" "+f[sep+1]+" "+f[sep+2])
	}
	return out
}

// faultProgress is how far a CRIU run has got: the markers its log
// holds so far, its last line, and the bytes of pages it has written.
type faultProgress struct {
	seen  map[string]bool
	last  string
	pages int64
}

func (p faultProgress) has(marker string) bool { return p.seen[marker] }

// faultPoint is a point of a CRIU run to inject a fault at.
type faultPoint struct {
	name string
	// at reports whether the run has reached the point; past, whether
	// it has gone beyond it, into the next phase.
	at, past func(faultProgress) bool
}

// Markers of CRIU 4.2.1's log (at -v4) that mark the phases of a dump
// and a restore, read from the logs of normal runs.
const (
	// markStart is CRIU's first line: kerndat probing follows, for
	// tens of milliseconds, before any task is touched.
	markStart = "Version: "
	// markSeized is logged once the root task is frozen (ptrace
	// seized, or its freezer cgroup frozen).
	markSeized = "Seized task "
	// markPages starts the memory dump of a task.
	markPages = "Dumping pages "
	// markInventory is the last image written, after all pages.
	markInventory = "Writing image inventory"
	// markForked is logged by a restore once it forks the root task.
	markForked = "Forking task with "
	// markPreadv is logged by a restored task once it runs CRIU's
	// restorer blob and reads all its pages in one preadv (1.6 s for
	// 1 GiB here), markPreadDone when that returns.
	markPreadv    = ": Preadv "
	markPreadDone = "`- returned "
)

// faultRestorePoints are the points of a restore: before the tree is
// forked, right after the root task is forked (it enters the restorer
// within about 4 ms, so a stop there may land in the restorer, before
// its memory is read: the log line says where), and while the restored
// task reads its pages.
func faultRestorePoints() []faultPoint {
	return []faultPoint{
		{name: "before-fork",
			at:   func(p faultProgress) bool { return p.has(markStart) },
			past: func(p faultProgress) bool { return p.has(markForked) }},
		{name: "forked",
			at:   func(p faultProgress) bool { return p.has(markForked) },
			past: func(p faultProgress) bool { return p.has(markPreadDone) }},
		{name: "restoring-memory",
			at:   func(p faultProgress) bool { return p.has(markPreadv) },
			past: func(p faultProgress) bool { return p.has(markPreadDone) }},
	}
}

// faultMarkers are the markers the watcher looks for.
var faultMarkers = []string{markStart, markSeized, markPages, markInventory,
	markForked, markPreadv, markPreadDone, markRepair}

// faultDumpPoints are the points of a dump of a memory workload of mib
// MiB: before the freeze, early in the memory dump, and once half of
// the pages are written. The stress variant adds more.
func faultDumpPoints(mib int64) []faultPoint {
	half := mib << 19
	early := min(64<<20, mib<<18)
	pts := []faultPoint{
		{name: "before-freeze",
			at:   func(p faultProgress) bool { return p.has(markStart) },
			past: func(p faultProgress) bool { return p.has(markSeized) }},
		{name: "memory-dump",
			at: func(p faultProgress) bool { return p.has(markPages) },
			past: func(p faultProgress) bool {
				return p.pages >= early || p.has(markInventory)
			}},
		{name: "images-written",
			at:   func(p faultProgress) bool { return p.pages >= half },
			past: func(p faultProgress) bool { return p.has(markInventory) }},
	}
	if faultStress {
		pts = append(pts,
			faultPoint{name: "seized",
				at:   func(p faultProgress) bool { return p.has(markSeized) },
				past: func(p faultProgress) bool { return p.has(markPages) }},
			faultPoint{name: "pages-90pct",
				at:   func(p faultProgress) bool { return p.pages >= mib<<20*9/10 },
				past: func(p faultProgress) bool { return p.has(markInventory) }},
		)
	}
	return pts
}

// markRepair is logged when a dump with --tcp-established puts a
// connection in repair mode, before it locks it with iptables.
const markRepair = "Turning repair on for socket"

// faultTCPPoints are the points of a dump of the tcp workload, whose
// memory is small: before the freeze, once its connection is in repair
// mode (a window of about 15 ms), and during its memory dump, with the
// connection locked (about 20 ms).
func faultTCPPoints() []faultPoint {
	return []faultPoint{
		{name: "before-freeze",
			at:   func(p faultProgress) bool { return p.has(markStart) },
			past: func(p faultProgress) bool { return p.has(markSeized) }},
		{name: "repair-mode",
			at:   func(p faultProgress) bool { return p.has(markRepair) },
			past: func(p faultProgress) bool { return p.has(markPages) }},
		{name: "memory-dump",
			at:   func(p faultProgress) bool { return p.has(markPages) },
			past: func(p faultProgress) bool { return p.has(markInventory) }},
	}
}

// faultWatch follows one CRIU run from outside.
type faultWatch struct {
	// logGlob matches CRIU's log of the run, pagesGlob its pages
	// images; both may match nothing until the run stages them.
	logGlob, pagesGlob string
	logPath            string
	off                int64
	// seen holds the markers found so far; tail is the end of the log
	// read last time, in case a marker spans two reads.
	seen map[string]bool
	tail []byte
	last string
	pid  int
}

// faultWatchDump watches the dump staged for checkpoint dir.
func faultWatchDump(dir string) *faultWatch {
	staged := filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".partial-*")
	return &faultWatch{
		logGlob:   filepath.Join(staged, dockercr.DumpLogName),
		pagesGlob: filepath.Join(staged, dockercr.ImagesDirName, "pages-*.img"),
	}
}

// tFaultBreakDump runs dump in the background and stops criu once the
// dump staged for checkpoint dir reaches pt. It returns the watch, to
// resume criu or inject a fault, and the channel of dump's result.
func tFaultBreakDump(t *testing.T, dir string, pt faultPoint,
	dump func() error) (*faultWatch, chan error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- dump() }()
	w := faultWatchDump(dir)
	w.tBreak(t, pt, done)
	return w, done
}

// faultWatchRestore watches a restore from checkpoint dir, whose
// restore.log must not exist yet.
func faultWatchRestore(dir string) *faultWatch {
	return &faultWatch{logGlob: filepath.Join(dir, dockercr.RestoreLogName)}
}

// progress reads what the run has added to its log since last time and
// sums the sizes of its pages images.
func (w *faultWatch) progress() faultProgress {
	if w.logPath == "" {
		if m, _ := filepath.Glob(w.logGlob); len(m) > 0 {
			w.logPath = m[0]
		}
	}
	if w.logPath != "" {
		w.readLog()
	}
	var pages int64
	if w.pagesGlob != "" {
		m, _ := filepath.Glob(w.pagesGlob)
		for _, p := range m {
			if st, err := os.Stat(p); err == nil {
				pages += st.Size()
			}
		}
	}
	return faultProgress{seen: w.seen, last: w.last, pages: pages}
}

// readLog scans what CRIU added to its log for the markers: a dump's
// log at -v4 reaches megabytes, too much to search whole every poll.
func (w *faultWatch) readLog() {
	f, err := os.Open(w.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	if w.seen == nil {
		w.seen = make(map[string]bool)
	}
	var buf bytes.Buffer
	n, _ := io.Copy(&buf, io.NewSectionReader(f, w.off, 1<<40))
	if n == 0 {
		return
	}
	w.off += n
	chunk := append(w.tail, buf.Bytes()...)
	for _, m := range faultMarkers {
		if !w.seen[m] && bytes.Contains(chunk, []byte(m)) {
			w.seen[m] = true
		}
	}
	w.tail = append([]byte(nil), chunk[max(0, len(chunk)-256):]...)
	if lines := bytes.Split(bytes.TrimSpace(chunk), []byte("\n")); len(lines) > 0 {
		w.last = string(lines[len(lines)-1])
	}
}

// tBreak waits until the run reaches pt, then stops criu with SIGSTOP
// and returns the progress it was stopped at. It fails if the run ends
// first (done delivers the call's result, which it puts back) or was
// already past pt when it stopped; criu is then let go.
func (w *faultWatch) tBreak(t *testing.T, pt faultPoint, done chan error) faultProgress {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		if w.pid != 0 && !faultAlive(w.pid) {
			// A short-lived criu, such as the library's probe. A live
			// one is kept by PID: swrk 4.2.1 retitles its command line
			// while it dumps.
			w.pid = 0
		}
		if w.pid == 0 {
			w.pid = tFaultFindCRIU(t)
		}
		if pr := w.progress(); pt.at(pr) {
			return w.tStop(t, pt)
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("the call ended (%v) before criu reached %s", err, pt.name)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("criu did not reach %s within %v; log so far ends %q",
				pt.name, lineTimeout, w.last)
		}
		time.Sleep(faultPoll)
	}
}

func (w *faultWatch) tStop(t *testing.T, pt faultPoint) faultProgress {
	t.Helper()
	pid := w.pid
	if pid == 0 {
		pid = tFaultCRIUPID(t)
	}
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatalf("stop criu %d: %v", pid, err)
	}
	w.pid = pid
	tFaultWaitState(t, pid, 'T')
	pr := w.progress()
	if pt.past(pr) {
		w.resume()
		t.Fatalf("criu was past %s when it stopped (pages %d MiB); log ends %q",
			pt.name, pr.pages>>20, pr.last)
	}
	t.Logf("criu %d stopped at %s: %d MiB of pages, log at %q", pid, pt.name,
		pr.pages>>20, pr.last)
	return pr
}

// resume lets a stopped criu go on.
func (w *faultWatch) resume() { _ = unix.Kill(w.pid, unix.SIGCONT) }

// kill sends SIGKILL to the stopped criu, and to it only.
func (w *faultWatch) kill() error { return unix.Kill(w.pid, unix.SIGKILL) }

// tFaultCRIUPID returns the PID of the criu the library runs: the one
// child of the test process whose command line names criu. The wrapper
// on PATH execs the prefix's dynamic loader, so comm says
// ld-linux-x86-64.so.2 and only the command line holds criu's path.
func tFaultCRIUPID(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		if pid := tFaultFindCRIU(t); pid != 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no criu child within %v", lineTimeout)
		}
		time.Sleep(faultPoll)
	}
}

// tFaultFindCRIU returns the PID of the criu child, 0 if there is none
// yet.
func tFaultFindCRIU(t *testing.T) int {
	t.Helper()
	var found []int
	for _, pid := range childPIDs() {
		if faultIsCRIU(pid) {
			found = append(found, pid)
		}
	}
	if len(found) > 1 {
		t.Fatalf("several criu children: %v", found)
	}
	if len(found) == 1 {
		return found[0]
	}
	return 0
}

// faultAlive reports whether pid is a live child of the test process.
func faultAlive(pid int) bool {
	state, err := procState(pid)
	if err != nil || state == 'Z' {
		return false
	}
	ppid, err := parentPID(pid)
	return err == nil && ppid == os.Getpid()
}

func faultIsCRIU(pid int) bool {
	if state, err := procState(pid); err != nil || state == 'Z' {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	for _, arg := range strings.Split(string(b), "\x00") {
		if filepath.Base(arg) == "criu" {
			return true
		}
	}
	return false
}

// tFaultWaitState waits until pid is in state (a /proc/PID/stat
// letter), or gone.
func tFaultWaitState(t *testing.T, pid int, state byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := procState(pid)
		if err != nil || s == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d in state %q, not %q, after 5 s", pid, s, state)
		}
		time.Sleep(faultPoll)
	}
}

// tFaultResult waits for the result of a call whose criu was killed or
// whose context was cancelled at start.
func tFaultResult(t *testing.T, done <-chan error, start time.Time) (time.Duration, error) {
	t.Helper()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(faultReturn):
		t.Fatalf("the call did not return within %v of the fault", faultReturn)
		return 0, nil
	}
}

// tFaultNamesKill fails unless err is a CRIUError that says criu was
// killed by a signal.
func tFaultNamesKill(t *testing.T, err error) *dockercr.CRIUError {
	t.Helper()
	if err == nil {
		t.Fatal("the call succeeded although its criu was killed")
	}
	ce := tCRIUError(t, err)
	if ce.ExitCode != -1 {
		t.Errorf("ExitCode %d, want -1 (killed by a signal)", ce.ExitCode)
	}
	if !strings.Contains(err.Error(), "killed") {
		t.Errorf("error %q does not say criu was killed", err)
	}
	return ce
}

// tFaultCanceled fails unless err is the context's cancellation.
func tFaultCanceled(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call returned %v, want context.Canceled", err)
	}
}

// tFaultReapStrays is [tReapOrphans] that also kills and reaps what
// it finds still running, after failing the test for it, so that a
// process left by one fault cannot break the cases after it.
func tFaultReapStrays(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var alive []int
		for _, pid := range childPIDs() {
			if _, mine := ours.Load(pid); mine {
				continue
			}
			if state, err := procState(pid); err == nil && state != 'Z' {
				alive = append(alive, pid)
				continue
			}
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var what []string
			for _, pid := range alive {
				what = append(what, describePID(pid))
				_ = unix.Kill(pid, unix.SIGKILL)
				tReap(t, pid)
			}
			t.Errorf("processes left running by the failed call, now killed: %s",
				strings.Join(what, "; "))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tFaultNoProcess fails if pid names a live process: a restore that
// was killed must not leave a half-restored tree.
func tFaultNoProcess(t *testing.T, pid int) {
	t.Helper()
	if state, err := procState(pid); err == nil {
		t.Fatalf("pid %d exists (%s, state %q) after the failed restore",
			pid, describePID(pid), state)
	}
}

// tFaultChildrenOf fails if a process has parent ppid.
func tFaultChildrenOf(t *testing.T, ppid int) {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := parentPID(pid); err == nil && p == ppid {
			t.Errorf("pid %d (%s) is a child of the dead criu %d", pid, describePID(pid), ppid)
		}
	}
}

// tFaultTmpfs mounts a tmpfs of size (e.g. "32m") on a fresh directory
// and unmounts it when the test ends.
func tFaultTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV,
		"size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// faultUsed returns the bytes in use on the file system of path.
func faultUsed(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// tFaultNoSpace fails unless err carries the full disk: ENOSPC in its
// chain, or CRIU's "No space left on device" in its text.
func tFaultNoSpace(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("the dump succeeded on a full file system")
	}
	var ce *dockercr.CRIUError
	if errors.As(err, &ce) {
		t.Logf("criu error detail:\n%s", ce.Detail())
	}
	// CRIU's strerror capitalises what Go's Errno.Error does not.
	text := strings.ToLower(err.Error())
	if !errors.Is(err, unix.ENOSPC) && !strings.Contains(text, unix.ENOSPC.Error()) {
		t.Fatalf("error %q does not name the full disk (%v)", err, unix.ENOSPC)
	}
}

// tFaultLogErrors logs the "Error (" lines of CRIU's log at path.
func tFaultLogErrors(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("criu's log: %v", err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		// The rlimit line is in every log and harmless (FIELD-NOTES).
		if strings.Contains(line, "Error (") && !strings.Contains(line, "RLIMIT_NOFILE") {
			t.Logf("criu: %s", line)
		}
	}
}

// tFaultNoTCPLock fails if iptables still holds a rule with which CRIU
// locked a connection of the tcp workload p (its mark is 0xC114): such
// a rule drops the connection's packets for good.
func tFaultNoTCPLock(t *testing.T, p *proc) {
	t.Helper()
	lines := p.lines(t)
	var port string
	for _, f := range strings.Fields(lines[0]) {
		if v, ok := strings.CutPrefix(f, "local="); ok {
			_, port, _ = strings.Cut(v, ":")
		}
	}
	if port == "" {
		t.Fatalf("no local= address in the ready line %q", lines[0])
	}
	out, err := exec.Command("iptables", "-w", "-S").Output()
	if err != nil {
		t.Fatalf("iptables -S: %v", err)
	}
	for _, rule := range strings.Split(string(out), "\n") {
		f := strings.Fields(rule)
		if !strings.Contains(rule, "0xc114") {
			continue
		}
		for i := 0; i+1 < len(f); i++ {
			if (f[i] == "--sport" || f[i] == "--dport") && f[i+1] == port {
				t.Fatalf("CRIU's lock of the connection is still in place: %s", rule)
			}
		}
	}
}

// tFaultSmallUse fails if the file system of base holds more than a
// failed dump's kept log.
func tFaultSmallUse(t *testing.T, base string) {
	t.Helper()
	used := faultUsed(t, base)
	t.Logf("the tmpfs holds %d KiB after the failed dump", used>>10)
	if used > 4<<20 {
		t.Errorf("the tmpfs holds %d KiB after the failed dump: partial images left", used>>10)
	}
}

// tFaultImageError fails unless err is a refusal of a corrupt
// checkpoint that names the image file.
func tFaultImageError(t *testing.T, file string, err error) {
	t.Helper()
	var ie *dockercr.ImageError
	if !errors.Is(err, dockercr.ErrCorruptCheckpoint) || !errors.As(err, &ie) {
		t.Fatalf("restore of a damaged checkpoint: %v, want an ImageError (ErrCorruptCheckpoint)", err)
	}
	if filepath.Base(ie.File) != file {
		t.Fatalf("ImageError names %s, want %s: %v", ie.File, file, err)
	}
}

// tFaultFlip inverts the byte at off of path.
func tFaultFlip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] = ^b[0]
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// tFaultLargestPages returns the name and size of the largest pages
// image of the checkpoint in dir.
func tFaultLargestPages(t *testing.T, dir string) (string, int64) {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(dir, dockercr.ImagesDirName, "pages-*.img"))
	if err != nil {
		t.Fatal(err)
	}
	name, size := "", int64(0)
	for _, p := range pages {
		if st, err := os.Stat(p); err == nil && st.Size() > size {
			name, size = filepath.Base(p), st.Size()
		}
	}
	if size < 4096 {
		t.Fatalf("no pages image of a page or more in %s", dir)
	}
	return name, size
}

// tFaultRootCore names the core image of the checkpoint's root task:
// the core image with the lowest TID, which is the thread group leader.
func tFaultRootCore(t *testing.T, dir string) string {
	t.Helper()
	cores, err := filepath.Glob(filepath.Join(dir, dockercr.ImagesDirName, "core-*.img"))
	if err != nil || len(cores) == 0 {
		t.Fatalf("no core images in %s (%v)", dir, err)
	}
	best, bestTID := "", 0
	for _, c := range cores {
		name := filepath.Base(c)
		tid, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "core-"), ".img"))
		if err == nil && (best == "" || tid < bestTID) {
			best, bestTID = name, tid
		}
	}
	return best
}

// tFaultCopyTree copies the checkpoint src, files and folders, to dst.
func tFaultCopyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("unexpected %s in a checkpoint", path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
