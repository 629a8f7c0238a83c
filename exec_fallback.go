package dockercr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker-cr/dockercr/internal/procgroup"
)

// restorePIDFile is where the exec backend asks CRIU to write the
// restored root PID, relative to the work directory.
const restorePIDFile = "restore.pid"

// maxStderr bounds how much of criu's standard error is kept.
const maxStderr = 64 << 10

type execBackend struct{}

// ExecBackend returns the backend that runs the criu command line, one
// process per action, with arguments passed as an argv (never through a
// shell). It needs nothing from CRIU's RPC service.
func ExecBackend() Backend { return execBackend{} }

func (execBackend) Name() string { return "exec" }

func (b execBackend) Run(ctx context.Context, req *Request) (*Response, error) {
	return runAction(ctx, "exec", b, req)
}

func (b execBackend) version(ctx context.Context, req *Request) (*Response, error) {
	out, err := b.run(ctx, req, []string{"--version"}, nil)
	if err != nil {
		return nil, err
	}
	v, err := parseVersionOutput(out)
	if err != nil {
		return nil, &CRIUError{Action: "version", Backend: "exec", Err: err}
	}
	return &Response{Backend: "exec", Version: v}, nil
}

// features asks `criu check --feature` for each feature; CRIU exits 0
// when it is supported. Lazy pages need both uffd features, as CRIU's
// own RPC feature check requires.
func (b execBackend) features(ctx context.Context, req *Request) (*Response, error) {
	has := func(name string) (bool, error) {
		_, err := b.run(ctx, req, []string{"check", "--feature", name}, nil)
		var ce *CRIUError
		if errors.As(err, &ce) && ce.ExitCode > 0 {
			return false, nil
		}
		return err == nil, err
	}
	var f Features
	var err error
	if f.MemTrack, err = has("mem_dirty_track"); err != nil {
		return nil, err
	}
	uffd, err := has("uffd")
	if err != nil {
		return nil, err
	}
	noncoop, err := has("uffd-noncoop")
	if err != nil {
		return nil, err
	}
	f.LazyPages = uffd && noncoop
	return &Response{Backend: "exec", Features: f}, nil
}

func (b execBackend) dumpOrRestore(ctx context.Context, req *Request) (*Response, error) {
	files := make([]*os.File, len(req.InheritFds))
	for i, in := range req.InheritFds {
		files[i] = in.File
	}
	pidFile := filepath.Join(req.WorkDir, restorePIDFile)
	if req.Action == ActionRestore {
		_ = os.Remove(pidFile)
	}

	if _, err := b.run(ctx, req, execArgs(req), files); err != nil {
		return nil, err
	}
	if req.Action != ActionRestore {
		return &Response{Backend: "exec"}, nil
	}

	pid, err := readPIDFile(pidFile)
	// The pid file is ours, not part of the checkpoint.
	_ = os.Remove(pidFile)
	if err != nil {
		return nil, &CRIUError{Action: "restore", Backend: "exec",
			LogPath: filepath.Join(req.WorkDir, req.LogFile), Err: err}
	}
	return &Response{Backend: "exec", PID: pid}, nil
}

// run executes criu with args and returns its standard output. Once
// ctx is done criu's process group is killed, at once or, where killing
// would harm the workload, after cancelGrace; a criu that finishes
// within the grace keeps its result, since the command line has no way
// to roll a dump back.
func (execBackend) run(ctx context.Context, req *Request, args []string, files []*os.File) (string, error) {
	cmd := exec.Command(req.CriuPath, args...)
	var stdout, stderr cappedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.ExtraFiles = files
	// Restored tasks must not keep criu's output pipes open forever.
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	grace := time.Duration(0)
	if req.Action == ActionDump || req.Action == ActionRestore {
		grace = cancelGraceFor(req)
	}
	err := ctx.Err()
	if err == nil {
		err = cmd.Start()
	}
	if err == nil {
		stop := procgroup.KillOnDone(ctx, cmd.Process, grace, nil)
		err = cmd.Wait()
		stop()
	}
	if err == nil {
		return stdout.String(), nil
	}
	logPath := ""
	if req.LogFile != "" {
		logPath = filepath.Join(req.WorkDir, req.LogFile)
	}
	var exitErr *exec.ExitError
	switch {
	case isNotFound(err):
		err = errors.Join(ErrCRIUNotFound, err)
	case ctx.Err() != nil:
		err = fmt.Errorf("stopped: %w", context.Cause(ctx))
	case errors.As(err, &exitErr) && exitErr.Exited():
		// ExitCode carries it; repeating "exit status 1" says nothing.
		// A signal ("signal: killed") is kept: ExitCode only says -1.
		err = nil
	}
	exit := 0
	if cmd.ProcessState != nil {
		exit = cmd.ProcessState.ExitCode()
	}
	return "", newCRIUError(req, "exec", logPath, 0, lastLine(stderr.String()), exit, err)
}

// execArgs renders a dump or restore request as criu's argv (without
// the program name). It mirrors rpcOpts field by field.
func execArgs(req *Request) []string {
	args := []string{string(req.Action),
		"--images-dir", req.ImagesDir,
		"--work-dir", req.WorkDir,
		"-v" + strconv.Itoa(req.LogLevel),
	}
	if req.LogFile != "" {
		args = append(args, "--log-file", req.LogFile)
	}
	if req.Action == ActionDump {
		args = append(args, "--tree", strconv.Itoa(req.PID))
	} else {
		args = append(args, "--restore-detached", "--pidfile", restorePIDFile)
	}
	flags := []struct {
		on   bool
		name string
	}{
		{req.LeaveRunning, "--leave-running"},
		{req.TCPEstablished, "--tcp-established"},
		{req.TCPClose, "--tcp-close"},
		{req.TCPSkipInFlight, "--skip-in-flight"},
		{req.FileLocks, "--file-locks"},
		{req.ShellJob, "--shell-job"},
		{req.ExtUnixSockets, "--ext-unix-sk"},
		{req.LinkRemap, "--link-remap"},
		{req.AutoDedup, "--auto-dedup"},
		{req.TrackMem, "--track-mem"},
		{req.MntnsCompatMode, "--mntns-compat-mode"},
	}
	for _, f := range flags {
		if f.on {
			args = append(args, f.name)
		}
	}
	if req.GhostLimit != 0 {
		args = append(args, "--ghost-limit", strconv.FormatUint(uint64(req.GhostLimit), 10))
	}
	if req.ManageCgroups != "" {
		args = append(args, "--manage-cgroups="+string(req.ManageCgroups))
	}
	if req.Root != "" {
		args = append(args, "--root", req.Root)
	}
	if req.FreezeCgroup != "" {
		args = append(args, "--freeze-cgroup", req.FreezeCgroup)
	}
	for _, e := range req.External {
		args = append(args, "--external", e)
	}
	for i, in := range req.InheritFds {
		// ExtraFiles[i] is descriptor 3+i in the child.
		args = append(args, "--inherit-fd", fmt.Sprintf("fd[%d]:%s", 3+i, in.Key))
	}
	return args
}

func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read restored pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad restored pid %q in %s", b, path)
	}
	return pid, nil
}

func isNotFound(err error) bool {
	return errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) ||
		errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENOEXEC)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

// cappedBuffer keeps the first maxStderr bytes written to it and
// discards the rest, so a runaway criu cannot fill our memory.
type cappedBuffer struct{ bytes.Buffer }

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxStderr - c.Len(); room > 0 {
		if len(p) > room {
			c.Buffer.Write(p[:room])
		} else {
			c.Buffer.Write(p)
		}
	}
	return len(p), nil
}

type autoBackend struct {
	primary, fallback Backend
}

// AutoBackend returns the default backend: [RPCBackend] first, and
// [ExecBackend] when the RPC channel itself fails before CRIU received
// the request ([ErrRPCUnavailable]: swrk cannot start, or it exits or
// answers garbage without having begun the action).
//
// A failure CRIU reports is never retried, and neither is a channel that
// breaks after CRIU began: the dump may already have frozen, or even
// killed, the tree, and a second attempt would freeze it again or dump
// a tree that is half gone. The error is returned as it is.
func AutoBackend() Backend {
	return autoBackend{primary: RPCBackend(), fallback: ExecBackend()}
}

func (autoBackend) Name() string { return "auto" }

func (a autoBackend) Run(ctx context.Context, req *Request) (*Response, error) {
	resp, err := a.primary.Run(ctx, req)
	if err == nil || !errors.Is(err, ErrRPCUnavailable) || ctx.Err() != nil {
		return resp, err
	}
	resp, ferr := a.fallback.Run(ctx, req)
	if ferr != nil {
		// The RPC failure is kept as text only: the result must not
		// match ErrRPCUnavailable once the fallback has run too.
		return nil, fmt.Errorf("%w (after rpc failed: %v)", ferr, err)
	}
	return resp, nil
}
