package dockercr

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procStat is what the package reads from /proc/PID/stat.
type procStat struct {
	// State is the one-letter state: R, S, D, T (stopped), t (traced),
	// Z (zombie) and so on.
	State byte
	// PPID is the parent's PID, 0 if the field does not parse.
	PPID int
	// Flags are the kernel's task flags (PF_*), 0 if the field does
	// not parse.
	Flags uint64
}

// pfExiting is the kernel's PF_EXITING task flag: the task is inside
// do_exit, tearing down its memory on its way to being a zombie.
const pfExiting = 0x4

// readProcStat reads /proc/PID/stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces and parentheses; the fields
	// after its last ')' are state, ppid, ...
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) == 0 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	st := procStat{State: f[0][0]}
	if len(f) > 1 {
		st.PPID, _ = strconv.Atoi(string(f[1]))
	}
	// state ppid pgrp session tty_nr tpgid flags
	if len(f) > 6 {
		st.Flags, _ = strconv.ParseUint(string(f[6]), 10, 64)
	}
	return st, nil
}

// killPending reports whether /proc/PID/status text shows SIGKILL
// pending for the thread (SigPnd) or its whole process (ShdPnd).
func killPending(status []byte) bool {
	const sigkill = 1 << (9 - 1) // signal N is bit N-1 of the mask
	for _, line := range bytes.Split(status, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || (string(k) != "SigPnd" && string(k) != "ShdPnd") {
			continue
		}
		mask, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
		if err == nil && mask&sigkill != 0 {
			return true
		}
	}
	return false
}

// processEnding reports whether pid is gone, a zombie, exiting, or
// bound to exit with SIGKILL pending. A process killed during a dump
// shows one of these well before its 1 GiB of memory is freed, and
// while a frozen cgroup still holds it.
func processEnding(pid int) bool {
	st, err := readProcStat(pid)
	if err != nil || st.State == 'Z' || st.State == 'X' || st.Flags&pfExiting != 0 {
		return true
	}
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	return err != nil || killPending(status)
}

// procState returns the one-letter state of pid from /proc/PID/stat.
func procState(pid int) (byte, error) {
	st, err := readProcStat(pid)
	return st.State, err
}

// exitedError adds ErrProcessNotFound to a dump CRIU failed because
// the root process died under it (killed, or docker kill): CRIU 4.2.1
// only logs "si_code=2 si_pid=N si_status=9" and "N was killed by 9
// unexpectedly". A failure of the dump of a live process is returned
// as it is. The kill can land a moment before the process shows as
// ending, so when CRIU's log says a task was killed the check waits up
// to exitSettleTime for it.
func exitedError(pid int, err error) error {
	var ce *CRIUError
	if !errors.As(err, &ce) || !ended(pid, killedCause(ce)) {
		return err
	}
	return fmt.Errorf("%w: pid %d exited during the checkpoint: %w",
		ErrProcessNotFound, pid, err)
}

// exitSettleTime bounds the wait for a killed process to show as
// ending.
const exitSettleTime = time.Second

// ended reports whether pid is ending, waiting up to exitSettleTime
// for it when wait is set.
func ended(pid int, wait bool) bool {
	deadline := time.Now().Add(exitSettleTime)
	for {
		if processEnding(pid) {
			return true
		}
		if !wait || time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killedCause reports whether CRIU's log says a task of the tree was
// killed under it ("N was killed by 9 unexpectedly").
func killedCause(ce *CRIUError) bool {
	for _, c := range ce.Causes {
		if strings.Contains(c, "was killed by") {
			return true
		}
	}
	return false
}
