// Package procgroup stops a criu process and the helpers it forks.
//
// criu runs in a process group of its own (Setpgid). Killing criu alone
// is not enough: CRIU 4.2.1 forks helpers (kerndat probes that stop
// themselves for ptrace, `sh -c iptables ...`) that would outlive it,
// some stopped for good. So the whole group is killed.
package procgroup

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Kill sends SIGKILL to the process group led by p. p's PID names the
// group only until p is reaped, so a reaped p is left alone
// (os.Process tracks that through a pidfd).
func Kill(p *os.Process) error {
	if err := p.Signal(unix.Signal(0)); err != nil {
		return err
	}
	err := unix.Kill(-p.Pid, unix.SIGKILL)
	if errors.Is(err, unix.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// KillOnDone kills p's group once ctx is done: at once when grace is
// zero, otherwise after grace, so that a criu at a point where dying
// would harm the workload can finish or roll back first. onKill, if not
// nil, runs right after the kill. The returned stop must be called once
// p has been waited for; after it, nothing is killed.
func KillOnDone(ctx context.Context, p *os.Process, grace time.Duration, onKill func()) (stop func()) {
	var (
		mu      sync.Mutex
		stopped bool
		timer   *time.Timer
	)
	kill := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = Kill(p)
		if onKill != nil {
			onKill()
		}
	}
	stopAfter := context.AfterFunc(ctx, func() {
		if grace <= 0 {
			kill()
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			timer = time.AfterFunc(grace, kill)
		}
	})
	return func() {
		stopAfter()
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		if timer != nil {
			timer.Stop()
		}
	}
}
