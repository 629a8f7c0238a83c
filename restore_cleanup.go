package dockercr

import (
	"errors"
	"fmt"
	"syscall"
)

// forkedTasks finds the tasks a failed restore left behind. CRIU forks
// each process of the tree with its dumped PID (clone3 set_tid), and
// each leaves criu's process group as soon as it restores its session,
// before its memory is read. If criu then dies, or is killed because
// the context was cancelled, those tasks wait for it for good, holding
// their PIDs: a later restore of the same checkpoint fails with "Can't
// fork for PID: File exists" (CRIU 4.2.1).
type forkedTasks struct {
	pids []int
	// before are the tree's PIDs that were in use before the restore:
	// not CRIU's, never killed.
	before map[int]bool
}

// watchForked records which of the checkpoint's PIDs are in use before
// a restore from imagesDir.
func watchForked(imagesDir string) (*forkedTasks, error) {
	set, err := openDirImages(imagesDir)
	if err != nil {
		return nil, err
	}
	entries, err := decodePstree(set)
	if err != nil {
		return nil, err
	}
	f := &forkedTasks{before: make(map[int]bool)}
	for _, e := range entries {
		pid := int(e.GetPid())
		f.pids = append(f.pids, pid)
		if pidInUse(pid) {
			f.before[pid] = true
		}
	}
	return f, nil
}

// kill sends SIGKILL to every process of the tree that came up during
// the failed restore.
func (f *forkedTasks) kill() error {
	var errs []error
	for _, pid := range f.pids {
		if f.before[pid] || !pidInUse(pid) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill half-restored pid %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

func pidInUse(pid int) bool {
	state, err := procState(pid)
	return err == nil && state != 'Z' && state != 'X'
}

// ErrPIDInUse means a process of the checkpoint's tree cannot get its
// PID back because another process, or a zombie its parent has not
// reaped, holds it. CRIU restores a tree with the PIDs it had.
var ErrPIDInUse = errors.New("pid of the checkpoint in use")

// checkPIDsFree fails with ErrPIDInUse, naming the holder, when a PID of
// the tree is taken, instead of CRIU's "Can't fork for PID: File
// exists". A tree dumped in a PID namespace of its own (its root is
// PID 1) is restored into a new one and needs no host PID.
func (f *forkedTasks) checkPIDsFree() error {
	if len(f.pids) == 0 || f.pids[0] == 1 {
		return nil
	}
	for _, pid := range f.pids {
		st, err := readProcStat(pid)
		if err != nil {
			continue
		}
		if st.State == 'Z' {
			return fmt.Errorf("%w: pid %d is a zombie that its parent (pid %d) has not reaped",
				ErrPIDInUse, pid, st.PPID)
		}
		return fmt.Errorf("%w: pid %d is taken by a running process", ErrPIDInUse, pid)
	}
	return nil
}
