package procgroup

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	// The shell forks a second sleep into the same group, as criu
	// forks its helpers.
	cmd := exec.Command("sh", "-c", "sleep 60 & sleep 60; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// runningMembers counts the processes of group pgid that are not
// zombies (a killed helper stays a zombie until its adopter reaps it).
func runningMembers(t *testing.T, pgid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		// Fields after the name: state, ppid, pgrp, ...
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			n++
		}
	}
	return n
}

func TestKillOnDone(t *testing.T) {
	tests := []struct {
		name     string
		grace    time.Duration
		cancel   bool
		wantDead bool
		minWait  time.Duration
	}{
		{name: "cancel kills at once", cancel: true, wantDead: true},
		{name: "cancel kills after grace", grace: 300 * time.Millisecond, cancel: true,
			wantDead: true, minWait: 300 * time.Millisecond},
		{name: "no cancel no kill", cancel: false, wantDead: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := startSleeper(t)
			pgid := cmd.Process.Pid
			t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			killed := make(chan struct{}, 1)
			stop := KillOnDone(ctx, cmd.Process, tt.grace, func() { killed <- struct{}{} })
			start := time.Now()
			if tt.cancel {
				cancel()
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
				if !tt.wantDead {
					t.Fatal("process died without a cancel")
				}
				if took := time.Since(start); took < tt.minWait {
					t.Fatalf("killed after %v, before the %v grace", took, tt.minWait)
				}
				<-killed
			case <-time.After(tt.grace + 2*time.Second):
				if tt.wantDead {
					t.Fatal("process not killed")
				}
			}
			stop()
			if tt.wantDead {
				// The forked child shared the group and died too.
				deadline := time.Now().Add(2 * time.Second)
				for runningMembers(t, pgid) > 0 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if n := runningMembers(t, pgid); n > 0 {
					t.Fatalf("%d members of group %d still run", n, pgid)
				}
			}
		})
	}
}

func TestStopPreventsLateKill(t *testing.T) {
	cmd := startSleeper(t)
	pgid := cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(-pgid, syscall.SIGKILL); _ = cmd.Wait() })
	ctx, cancel := context.WithCancel(context.Background())
	stop := KillOnDone(ctx, cmd.Process, 200*time.Millisecond, nil)
	cancel()
	stop()
	time.Sleep(400 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("process was killed after stop: %v", err)
	}
}
