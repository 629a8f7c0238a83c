package dockercr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/docker-cr/dockercr/internal/criulog"
)

// Broad error kinds. Every error this package returns that fits one of
// them matches it with [errors.Is]; the concrete types below carry the
// detail and are read with [errors.As].
var (
	// ErrCRIUNotFound means the criu binary could not be found or run.
	ErrCRIUNotFound = errors.New("criu not found")

	// ErrCRIUTooOld means the criu binary is older than
	// [MinCRIUVersion]. A [*VersionError] carries the version found.
	ErrCRIUTooOld = errors.New("criu too old")

	// ErrNotSupported means the kernel or CRIU lacks a feature the
	// chosen options need. A [*FeatureError] names each missing one.
	ErrNotSupported = errors.New("not supported")

	// ErrNotPermitted means the caller lacks the privileges CRIU needs:
	// root, or CAP_SYS_ADMIN / CAP_CHECKPOINT_RESTORE.
	ErrNotPermitted = errors.New("not permitted")

	// ErrProcessNotFound means the process to checkpoint does not
	// exist, or ended while CRIU dumped it (the error then also carries
	// CRIU's own lines).
	ErrProcessNotFound = errors.New("process not found")

	// ErrCheckpointExists means the checkpoint directory already exists
	// and [WithReplaceExisting] was not given.
	ErrCheckpointExists = errors.New("checkpoint already exists")

	// ErrCheckpointNotFound means a restore was asked for a directory
	// that holds no complete checkpoint.
	ErrCheckpointNotFound = errors.New("checkpoint not found")

	// ErrInvalidName means a checkpoint or container name was refused,
	// for example because it would escape its base directory.
	ErrInvalidName = errors.New("invalid name")

	// ErrRPCUnavailable means the RPC channel to criu swrk failed before
	// CRIU received the request: swrk could not start or did not speak
	// the protocol. Only this kind of failure makes [AutoBackend] fall
	// back to the exec backend.
	ErrRPCUnavailable = errors.New("criu rpc unavailable")
)

// CRIUError is a failed CRIU run. It carries what CRIU said: the errno
// and message of an RPC reply or the exit status of the criu command,
// and the root-cause lines of CRIU's own log.
type CRIUError struct {
	// Action is the CRIU action that failed: "dump", "restore",
	// "pre-dump", "check" or "version".
	Action string
	// Backend is the name of the backend that ran CRIU.
	Backend string
	// Errno is CRIU's errno for the failure, 0 when CRIU did not say.
	Errno syscall.Errno
	// Message is CRIU's one-line reason: cr_errmsg of an RPC reply,
	// or the last line of the criu command's standard error.
	Message string
	// ExitCode is the exit status of the criu process, -1 if it was
	// killed by a signal, 0 if not known.
	ExitCode int
	// LogPath is the path of CRIU's log for this run, "" if none.
	LogPath string
	// Causes are the first "Error (...)" lines of CRIU's log, with
	// lines known to be harmless left out.
	Causes []string
	// Err is an underlying error (transport, context, exec), if any.
	Err error
}

// Error returns a one-line summary that leads with CRIU's first root
// cause. [CRIUError.Detail] returns every collected line.
func (e *CRIUError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "criu %s failed", e.Action)
	if e.Backend != "" {
		fmt.Fprintf(&b, " (%s)", e.Backend)
	}
	switch {
	case errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded):
		// A stopped run's log only says how CRIU wound down.
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	case len(e.Causes) > 0:
		// CRIU often follows the cause with its own hint on the next
		// line ("consider using GODEBUG=multipathtcp=0"): show both.
		shown := min(len(e.Causes), summaryCauses)
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Causes[:shown], "; "))
		if len(e.Causes) > shown {
			fmt.Fprintf(&b, " (+%d more)", len(e.Causes)-shown)
		}
	case e.Message != "":
		b.WriteString(": ")
		b.WriteString(e.Message)
	case e.Err != nil:
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.LogPath != "" {
		fmt.Fprintf(&b, "; log: %s", e.LogPath)
	}
	return b.String()
}

// Detail returns the summary followed by every root-cause line, CRIU's
// message and errno, and the underlying error, one per line.
func (e *CRIUError) Detail() string {
	var b strings.Builder
	b.WriteString(e.Error())
	for _, c := range e.Causes {
		b.WriteString("\n  ")
		b.WriteString(c)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, "\n  criu: %s", e.Message)
	}
	if e.Errno != 0 {
		fmt.Fprintf(&b, "\n  errno: %d (%s)", int(e.Errno), e.Errno)
	}
	if e.ExitCode != 0 {
		fmt.Fprintf(&b, "\n  exit status: %d", e.ExitCode)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, "\n  cause: %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *CRIUError) Unwrap() error { return e.Err }

// Is maps CRIU's errno to the broad kinds: EPERM and EACCES to
// [ErrNotPermitted], ESRCH to [ErrProcessNotFound].
func (e *CRIUError) Is(target error) bool {
	switch target {
	case ErrNotPermitted:
		return e.Errno == syscall.EPERM || e.Errno == syscall.EACCES
	case ErrProcessNotFound:
		return e.Errno == syscall.ESRCH
	}
	return false
}

// VersionError reports a criu binary older than the supported minimum.
type VersionError struct {
	Path  string
	Found Version
	Min   Version
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("criu %s at %s is older than the supported minimum %s",
		e.Found, e.Path, e.Min)
}

// Is reports whether target is [ErrCRIUTooOld].
func (e *VersionError) Is(target error) bool { return target == ErrCRIUTooOld }

// FeatureError lists every feature the chosen options need that the
// kernel or CRIU lacks. It is returned before any dump starts.
type FeatureError struct {
	Missing []MissingFeature
}

// MissingFeature is one unmet requirement of a [FeatureError].
type MissingFeature struct {
	// Feature is CRIU's name for it, such as "mem_dirty_track".
	Feature string
	// NeededBy names the option or call that needs it.
	NeededBy string
	// Reason says what is missing and what would lift it.
	Reason string
}

func (e *FeatureError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, m := range e.Missing {
		parts[i] = fmt.Sprintf("%s (needed by %s): %s",
			m.Feature, m.NeededBy, m.Reason)
	}
	return "not supported here: " + strings.Join(parts, "; ")
}

// Is reports whether target is [ErrNotSupported].
func (e *FeatureError) Is(target error) bool { return target == ErrNotSupported }

// maxCauses is how many root-cause lines a CRIUError keeps, and
// summaryCauses how many of them its one-line summary shows.
const (
	maxCauses     = 8
	summaryCauses = 2
)

// newCRIUError builds the error of a failed run, with the root causes
// read from CRIU's log at logPath.
func newCRIUError(req *Request, backend, logPath string, errno syscall.Errno,
	msg string, exit int, err error) *CRIUError {
	// Over RPC, CRIU's message is its last Error line, which may be
	// one it prints on every run.
	if criulog.Harmless(msg) {
		msg = ""
	}
	e := &CRIUError{
		Action:   string(req.Action),
		Backend:  backend,
		Errno:    errno,
		Message:  msg,
		ExitCode: exit,
		LogPath:  logPath,
		Err:      err,
	}
	if logPath != "" {
		e.Causes = criulog.RootCausesFile(logPath, maxCauses)
	}
	return e
}
