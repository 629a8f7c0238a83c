package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-cr/dockercr"
	"golang.org/x/sys/unix"
)

// TestRestorePIDInUse restores a checkpoint while the dumped process,
// killed by the dump, is still a zombie its parent (this test) has not
// reaped: the restore is refused with ErrPIDInUse naming the zombie,
// before CRIU runs, and works once the zombie is reaped.
func TestRestorePIDInUse(t *testing.T) {
	tRequireEnv(t)
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(env.workload, "counter", "-interval", "20ms")
	cmd.Stdout = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL); _ = cmd.Wait() })
	time.Sleep(300 * time.Millisecond)

	c := tNew(t, dockercr.RPCBackend())
	dir := tCheckpointDir(t)
	ctx := tContext(t)
	if _, err := c.Checkpoint(ctx, pid, dir); err != nil {
		t.Fatal(err)
	}
	// CRIU killed the process; unreaped, it holds its PID as a zombie.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); strings.Contains(string(st), ") Z ") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	_, err = c.Restore(ctx, dir)
	if !errors.Is(err, dockercr.ErrPIDInUse) || !strings.Contains(err.Error(), "zombie") {
		t.Fatalf("restore with the zombie present: %v, want ErrPIDInUse naming a zombie", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, dockercr.RestoreLogName)); serr == nil {
		t.Error("CRIU ran (restore.log exists) although the PID was taken")
	}

	_ = cmd.Wait()
	res, err := c.Restore(ctx, dir)
	if err != nil {
		t.Fatalf("restore after reaping: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(res.PID, syscall.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(res.PID, &ws, 0, nil)
	})
	if res.PID != pid {
		t.Fatalf("restored as pid %d, dumped as %d", res.PID, pid)
	}
}
