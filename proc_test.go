package dockercr

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestReadProcStat(t *testing.T) {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The reading thread runs; another may sleep.
	if st.State != 'R' && st.State != 'S' {
		t.Errorf("state of this process = %q, want R or S", st.State)
	}
	if st.PPID != os.Getppid() {
		t.Errorf("ppid = %d, want %d", st.PPID, os.Getppid())
	}
	if _, err := readProcStat(-1); err == nil {
		t.Error("readProcStat(-1): no error")
	}
}

func TestKillPending(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status string
		want   bool
	}{
		{"none", "State:\tS (sleeping)\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n", false},
		{"thread", "SigPnd:\t0000000000000100\nShdPnd:\t0000000000000000\n", true},
		{"process", "SigPnd:\t0000000000000000\nShdPnd:\t0000000000004100\n", true},
		{"sigterm only", "SigPnd:\t0000000000004000\nShdPnd:\t0000000000004000\n", false},
		{"blocked is not pending", "SigPnd:\t0000000000000000\nSigBlk:\t0000000000000100\n", false},
		{"malformed", "SigPnd:\tzz\nShdPnd\n", false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := killPending([]byte(tc.status)); got != tc.want {
				t.Errorf("killPending = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProcessEnding(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	if processEnding(pid) {
		t.Errorf("running pid %d reported as ending", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not reaped yet: a zombie, or still exiting; either is ending.
	deadline := time.Now().Add(5 * time.Second)
	for !processEnding(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("killed pid %d not reported as ending", pid)
		}
		time.Sleep(time.Millisecond)
	}
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.Flags&pfExiting != 0 {
		t.Errorf("this process has PF_EXITING in flags %#x", st.Flags)
	}
}
