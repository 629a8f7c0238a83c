package dockercr

import (
	"os"
	"strconv"
	"time"
)

// cancelGrace is how long a cancelled criu may go on, at points where
// killing it would harm the workload, before it is killed anyway.
//
// Killing criu while it dumps a tree's memory is safe: CRIU's parasite
// code returns the task to where it was when its control socket closes,
// and the kernel detaches ptrace. Killing it once it has put TCP
// connections into repair mode, or locked a network namespace, is not:
// nothing takes the sockets out of repair mode (the workload's next read
// fails with EPERM) or removes the lock. So such runs are given time to
// finish or, through the RPC backend, to roll back at CRIU's next
// notification.
const cancelGrace = 30 * time.Second

// cancelGraceFor returns how long criu serving req may run on after the
// context is done: 0 (killed at once) unless the run touches TCP
// connections or the tree lives in a network namespace of its own.
func cancelGraceFor(req *Request) time.Duration {
	if req.TCPEstablished {
		return cancelGrace
	}
	if req.Action == ActionDump && ownNetNS(req.PID) {
		return cancelGrace
	}
	return 0
}

// ownNetNS reports whether pid is in another network namespace than the
// caller; CRIU then locks that namespace for the dump.
func ownNetNS(pid int) bool {
	theirs, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		return false
	}
	ours, err := os.Readlink("/proc/self/ns/net")
	return err == nil && theirs != ours
}

// rollbackSteps are the notifications at which CRIU can still undo a
// dump cleanly when told the step failed: before it freezes the tree,
// before it locks the network, and after writing the images but before
// it kills or resumes the tree.
var rollbackSteps = map[string]bool{
	"pre-dump":     true,
	"network-lock": true,
	"post-dump":    true,
}
