// Package integration checks the dockercr library against real CRIU,
// as root, with the static workloads of internal/testworkload.
//
// TestMain probes the environment once: root, a criu (DOCKERCR_CRIU,
// else "criu" on PATH) of at least [minTestCRIU], and a Go toolchain to
// build the workload with. When something is missing, every test skips
// with the exact reason, unless DOCKERCR_REQUIRE_INTEGRATION=1 (set by
// `make test`), which makes the whole package fail instead.
//
// The test process is a child subreaper: a restored tree is re-parented
// to it, not to PID 1, which on these machines never reaps (a zombie
// left there holds its PID and breaks the next restore of that PID).
// Helpers reap only the PIDs they started or adopted, with Wait4(pid).
package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr"
)

// minTestCRIU is the CRIU the integration tests need: 4.2 is the first
// release that dumps TCP sockets on kernel 6.18, and the first with the
// MPTCP hint the tests look for. The library itself accepts older ones.
var minTestCRIU = dockercr.Version{Major: 4, Minor: 2}

// requireEnv makes a missing environment fail the package, not skip it.
const requireEnv = "DOCKERCR_REQUIRE_INTEGRATION"

// testEnv is what TestMain found.
type testEnv struct {
	// skip is why the tests cannot run here, "" when they can.
	skip string
	// criu is the absolute path of the criu under test.
	criu string
	// version is what `criu --version` printed, parsed by the test.
	version dockercr.Version
	// workload is the built internal/testworkload binary.
	workload string
}

var env testEnv

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// A test binary re-executed by tRunAs runs its mode, no tests.
	if mode := os.Getenv(childModeEnv); mode != "" {
		return runChildMode(mode)
	}

	tmp, err := os.MkdirTemp("", "dockercr-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	env = probe(tmp)
	if env.skip != "" && os.Getenv(requireEnv) == "1" {
		fmt.Fprintf(os.Stderr, "integration: %s=1 but the environment is missing: %s\n",
			requireEnv, env.skip)
		return 1
	}
	if env.skip == "" {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "integration: PR_SET_CHILD_SUBREAPER:", err)
			return 1
		}
	}

	before := openFDs()
	code := m.Run()
	after := openFDs()
	if leaked := newFDs(before, after); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "integration: descriptors leaked by the tests: %s\n",
			strings.Join(leaked, ", "))
		code = 1
	}
	if left := reapLeftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "integration: processes left behind and killed: %s\n",
			strings.Join(left, "; "))
		code = 1
	}
	return code
}

// probe checks what the tests need and builds the workload into dir.
func probe(dir string) testEnv {
	if uid := os.Geteuid(); uid != 0 {
		return testEnv{skip: fmt.Sprintf("needs root, running as uid %d", uid)}
	}

	criu := os.Getenv("DOCKERCR_CRIU")
	if criu == "" {
		criu = "criu"
	}
	path, err := exec.LookPath(criu)
	if err != nil {
		return testEnv{skip: fmt.Sprintf("criu %q not found: %v", criu, err)}
	}
	path, err = filepath.Abs(path)
	if err != nil {
		return testEnv{skip: err.Error()}
	}

	ver, err := criuVersion(path)
	if err != nil {
		return testEnv{skip: err.Error()}
	}
	if !ver.AtLeast(minTestCRIU) {
		return testEnv{skip: fmt.Sprintf("criu %s at %s is older than %s", ver, path, minTestCRIU)}
	}

	bin, err := buildWorkload(dir)
	if err != nil {
		return testEnv{skip: err.Error()}
	}
	return testEnv{criu: path, version: ver, workload: bin}
}

// criuVersion reads `criu --version` without the library, so that the
// tests can hold the library's own probe against it.
func criuVersion(path string) (dockercr.Version, error) {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return dockercr.Version{}, fmt.Errorf("%s --version: %w", path, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:")
		if !ok {
			continue
		}
		var v dockercr.Version
		parts := strings.Split(strings.TrimSpace(rest), ".")
		for i, dst := range []*int{&v.Major, &v.Minor, &v.Patch} {
			if i < len(parts) {
				if *dst, err = strconv.Atoi(parts[i]); err != nil {
					return v, fmt.Errorf("criu version %q: %w", rest, err)
				}
			}
		}
		return v, nil
	}
	return dockercr.Version{}, fmt.Errorf("no Version line in %s --version: %q", path, out)
}

// buildWorkload builds internal/testworkload statically: go test puts
// its own toolchain first on PATH.
func buildWorkload(dir string) (string, error) {
	bin := filepath.Join(dir, "testworkload")
	cmd := exec.Command("go", "build", "-o", bin,
		"github.com/docker-cr/dockercr/internal/testworkload")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build testworkload: %w: %s", err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// openFDs lists this process's descriptors as "N -> target".
func openFDs() []string {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var fds []string
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			// The descriptor ReadDir itself used is gone by now.
			continue
		}
		fds = append(fds, e.Name()+" -> "+target)
	}
	return fds
}

func newFDs(before, after []string) []string {
	var leaked []string
	for _, fd := range after {
		if !slices.Contains(before, fd) {
			leaked = append(leaked, fd)
		}
	}
	return leaked
}

// reapLeftovers kills and reaps every child still around once all tests
// are done; a test that forgot one would otherwise leave a zombie to
// PID 1. Waiting on any child is safe only here, after m.Run.
func reapLeftovers() []string {
	var left []string
	for _, pid := range childPIDs() {
		what := describePID(pid)
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err == nil {
			left = append(left, what)
		}
	}
	return left
}

// describePID names a process by PID and /proc/PID/stat's command
// and state, which a zombie still has.
func describePID(pid int) string {
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	fields := strings.Fields(string(stat))
	return strings.Join(fields[:min(3, len(fields))], " ")
}

// childPIDs lists the processes whose parent is this one.
func childPIDs() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, err := parentPID(pid); err == nil && ppid == self {
			pids = append(pids, pid)
		}
	}
	return pids
}
