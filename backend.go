package dockercr

import (
	"context"
	"fmt"
)

// Backend runs one CRIU action. The built-in backends are
// [RPCBackend] (criu swrk), [ExecBackend] (the criu command line) and
// [AutoBackend] (RPC, falling back to exec). A caller may supply its own
// with [WithBackend], for example to run criu through a sandbox.
//
// Every option of a [Checkpointer] reaches the backend as a field of
// the one [Request]; a backend must honour every field it is given or
// fail.
type Backend interface {
	// Name identifies the backend in results, errors and logs.
	Name() string
	// Run performs req.Action. A failure CRIU reports must be returned
	// as a [*CRIUError].
	Run(ctx context.Context, req *Request) (*Response, error)
}

// Action is a CRIU action a [Backend] performs.
type Action string

// The actions a Checkpointer asks of its backend.
const (
	ActionVersion  Action = "version"
	ActionFeatures Action = "features"
	ActionDump     Action = "dump"
	ActionRestore  Action = "restore"
)

// Request is one fully resolved CRIU invocation. Paths are absolute.
// For dump and restore, CRIU writes its log to WorkDir/LogFile.
type Request struct {
	Action   Action
	CriuPath string

	// PID is the root of the tree to dump.
	PID       int
	ImagesDir string
	WorkDir   string
	LogFile   string
	LogLevel  int

	LeaveRunning    bool
	TCPEstablished  bool
	TCPClose        bool
	TCPSkipInFlight bool
	FileLocks       bool
	ShellJob        bool
	ExtUnixSockets  bool
	LinkRemap       bool
	AutoDedup       bool
	TrackMem        bool

	// GhostLimit is CRIU's ghost-file limit in bytes, 0 for CRIU's own.
	GhostLimit uint32
	// ManageCgroups is the cgroup mode, "" to leave CRIU's default.
	ManageCgroups CgroupMode
	// Root is the tree's root directory, "" for the caller's.
	Root string
	// External holds raw --external values.
	External []string
	// InheritFds are files handed to a restore.
	InheritFds []InheritFd
	// FreezeCgroup is a freezer cgroup CRIU freezes the tree with
	// instead of stopping each task with ptrace, "" for none.
	FreezeCgroup string
	// MntnsCompatMode selects CRIU's older mount-namespace engine.
	MntnsCompatMode bool
}

// Response is what a [Backend] learned from CRIU.
type Response struct {
	// Backend names the backend that actually ran CRIU; for
	// [AutoBackend] it is "rpc" or "exec".
	Backend string
	// PID is the restored root process (restore only).
	PID int
	// Version is CRIU's version (version only).
	Version Version
	// Features is what CRIU and the kernel support (features only).
	Features Features
}

// Features is what the kernel and CRIU support beyond a basic dump.
type Features struct {
	// MemTrack is dirty-memory tracking (soft-dirty), needed by
	// pre-dumps and [WithTrackMem].
	MemTrack bool
	// LazyPages is userfaultfd with non-cooperative events, needed by
	// lazy restores.
	LazyPages bool
}

// actions are the three kinds of work a built-in backend does.
type actions interface {
	version(ctx context.Context, req *Request) (*Response, error)
	features(ctx context.Context, req *Request) (*Response, error)
	dumpOrRestore(ctx context.Context, req *Request) (*Response, error)
}

// runAction sends req to the method of b for its action.
func runAction(ctx context.Context, name string, b actions, req *Request) (*Response, error) {
	switch req.Action {
	case ActionVersion:
		return b.version(ctx, req)
	case ActionFeatures:
		return b.features(ctx, req)
	case ActionDump, ActionRestore:
		return b.dumpOrRestore(ctx, req)
	}
	return nil, fmt.Errorf("%s backend: unknown action %q", name, req.Action)
}
