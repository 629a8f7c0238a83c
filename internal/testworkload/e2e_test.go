package main

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lineTimeout bounds the wait for any one expected output line.
const lineTimeout = 10 * time.Second

// TestEndToEnd builds the binary the way the integration tests do and runs
// each subcommand that needs neither root nor a terminal.
func TestEndToEnd(t *testing.T) {
	bin := tBuild(t)

	t.Run("static", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Fatal("binary has an ELF interpreter: not static")
			}
		}
	})

	t.Run("counter", func(t *testing.T) {
		p := tStart(t, bin, "counter", "-interval", "10ms")
		for i := range 3 {
			if got, want := p.tLine(t), fmt.Sprintf("count %d", i); got != want {
				t.Fatalf("line %q, want %q", got, want)
			}
		}
		p.tVerify(t, "verify ok count count=")
		p.tTerm(t)
	})

	t.Run("mem", func(t *testing.T) {
		p := tStart(t, bin, "mem", "-mib", "8", "-interval", "10ms",
			"-verify-every", "20ms")
		p.tWait(t, "mem 3") // several periodic checks have passed
		p.tVerify(t, "verify ok mem count=")
		p.tTerm(t)
	})

	t.Run("tcp", func(t *testing.T) {
		p := tStart(t, bin, "tcp", "-interval", "10ms")
		for _, f := range []string{" local=127.0.0.1:", " remote=127.0.0.1:",
			" listener-proto=tcp ", " client-proto=tcp ", " server-proto=tcp"} {
			if !strings.Contains(p.ready, f) {
				t.Errorf("ready line %q lacks %q", p.ready, f)
			}
		}
		p.tWait(t, "tcp 2")
		detail := p.tVerify(t, "verify ok tcp count=")
		if !strings.Contains(detail, " last=") || strings.Contains(detail, "last=none") {
			t.Errorf("verify line %q names no confirmed sequence", detail)
		}
		p.tTerm(t)
	})

	t.Run("flock", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "lock")
		p := tStart(t, bin, "flock", "-file", file, "-interval", "10ms")
		tAssertLocked(t, file)
		p.tVerify(t, "verify ok flock count=")
		p.tTerm(t)
	})

	t.Run("deleted", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "gone")
		p := tStart(t, bin, "deleted", "-file", file, "-kib", "64")
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stat after ready: %v, want not exist", err)
		}
		p.tVerify(t, "verify ok deleted count=")
		p.tTerm(t)
	})

	t.Run("shm corrupted through the file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "shm")
		p := tStart(t, bin, "shm", "-file", file, "-kib", "64")
		p.tVerify(t, "verify ok shm count=")

		// The mapping is shared, so a byte changed in the file shows there.
		tFlipByte(t, file, 12345)
		l := p.tVerify(t, "verify FAIL shm count=")
		if !strings.Contains(l, "mapping: bad byte at offset 12345:") {
			t.Errorf("verify line %q does not name offset 12345 of the mapping", l)
		}
		p.tTerm(t)
	})

	t.Run("writefile changed", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "w")
		p := tStart(t, bin, "writefile", "-file", file, "-content", "abc\n")
		p.tVerify(t, "verify ok write count=")

		if err := os.WriteFile(file, []byte("abd\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p.tVerify(t, "verify FAIL write count=")
		p.tTerm(t)
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			line string
			code int
		}{
			{"tty on /dev/null", []string{"tty"}, "error not a tty", exitSetup},
			{"usage", []string{"mem"}, "error mem: -mib must be > 0, got 0", exitUsage},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				out, err := exec.CommandContext(t.Context(), bin, tc.args...).Output()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
					t.Fatalf("exit %v, want code %d", err, tc.code)
				}
				if got := strings.TrimSpace(string(out)); got != tc.line {
					t.Fatalf("output %q, want %q", got, tc.line)
				}
			})
		}
	})
}

// tBuild builds the workload with CGO_ENABLED=0 into a temporary dir.
func tBuild(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH to build the workload: %v", err)
	}

	bin := filepath.Join(t.TempDir(), "testworkload")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	return bin
}

// tProc is a running workload and its stdout lines.
type tProc struct {
	cmd   *exec.Cmd
	lines chan string
	ready string
}

// tStart runs the workload with GODEBUG=multipathtcp=0, as the integration
// tests do, and waits for its ready line.
func tStart(t *testing.T, bin string, args ...string) *tProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GODEBUG=multipathtcp=0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	p := &tProc{cmd: cmd, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			for range p.lines {
			}
			cmd.Wait()
		}
	})

	// The kind (second field) is checked by the callers' count and
	// verify lines; the pid must be the one we started.
	p.ready = p.tWait(t, "ready ")
	f := strings.Fields(p.ready)
	if want := fmt.Sprintf("pid=%d", cmd.Process.Pid); len(f) < 3 || f[2] != want {
		t.Fatalf("ready line %q, want %q as its third field", p.ready, want)
	}

	return p
}

// tLine returns the next line.
func (p *tProc) tLine(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatal("workload closed stdout")
		}
		return l
	case <-time.After(lineTimeout):
		t.Fatalf("no line within %v", lineTimeout)
	}

	return ""
}

// tWait skips lines until one starts with prefix and returns it; an error
// line on the way fails the test.
func (p *tProc) tWait(t *testing.T, prefix string) string {
	t.Helper()
	for {
		l := p.tLine(t)
		if strings.HasPrefix(l, prefix) {
			return l
		}
		if strings.HasPrefix(l, "error ") || strings.HasPrefix(l, "verify ") {
			t.Fatalf("line %q while waiting for %q", l, prefix)
		}
	}
}

// tVerify sends SIGUSR1 and returns the verify line, which must start
// with want.
func (p *tProc) tVerify(t *testing.T, want string) string {
	t.Helper()
	if err := p.cmd.Process.Signal(unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}

	for {
		l := p.tLine(t)
		if strings.HasPrefix(l, "verify ") {
			if !strings.HasPrefix(l, want) {
				t.Fatalf("verify line %q, want prefix %q", l, want)
			}
			return l
		}
	}
}

// tTerm sends SIGTERM and expects exit status 0.
func (p *tProc) tTerm(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range p.lines {
	}

	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v, want exit 0", err)
	}
}

// tAssertLocked fails unless another descriptor is refused LOCK_EX.
func tAssertLocked(t *testing.T, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("flock by the test: %v, want EWOULDBLOCK", err)
	}
}

// tFlipByte complements one byte of file in place.
func tFlipByte(t *testing.T, file string, off int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] = ^b[0]
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}
