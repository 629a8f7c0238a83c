package dockercr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"google.golang.org/protobuf/proto"

	"github.com/docker-cr/dockercr/internal/swrk"
)

// This file is the only one in the package that uses go-criu's RPC
// types: a go-criu upgrade touches it and internal/swrk alone.

type rpcBackend struct{}

// RPCBackend returns the backend that drives CRIU through its RPC
// protocol: it starts `criu swrk` with one end of a socket pair and
// sends go-criu's protobuf requests. Directories are passed as open
// descriptors (images_dir_fd, work_dir_fd), which CRIU opens through
// /proc/PID/fd of the caller.
func RPCBackend() Backend { return rpcBackend{} }

func (rpcBackend) Name() string { return "rpc" }

func (b rpcBackend) Run(ctx context.Context, req *Request) (*Response, error) {
	return runAction(ctx, "rpc", b, req)
}

func (b rpcBackend) version(ctx context.Context, req *Request) (*Response, error) {
	resp, err := b.call(ctx, req, &rpc.CriuReq{Type: rpc.CriuReqType_VERSION.Enum()}, nil, 0, nil)
	if err != nil {
		return nil, err
	}
	v := resp.GetVersion()
	return &Response{Backend: "rpc", Version: Version{
		Major: int(v.GetMajorNumber()),
		Minor: int(v.GetMinorNumber()),
		Patch: int(v.GetSublevel()),
	}}, nil
}

func (b rpcBackend) features(ctx context.Context, req *Request) (*Response, error) {
	r := &rpc.CriuReq{
		Type: rpc.CriuReqType_FEATURE_CHECK.Enum(),
		Features: &rpc.CriuFeatures{
			MemTrack:  proto.Bool(true),
			LazyPages: proto.Bool(true),
		},
	}
	resp, err := b.call(ctx, req, r, nil, 0, nil)
	if err != nil {
		return nil, err
	}
	f := resp.GetFeatures()
	return &Response{Backend: "rpc", Features: Features{
		MemTrack:  f.GetMemTrack(),
		LazyPages: f.GetLazyPages(),
	}}, nil
}

func (b rpcBackend) dumpOrRestore(ctx context.Context, req *Request) (*Response, error) {
	images, err := openDir(req.ImagesDir)
	if err != nil {
		return nil, err
	}
	defer images.Close()
	work, err := openDir(req.WorkDir)
	if err != nil {
		return nil, err
	}
	defer work.Close()

	opts := rpcOpts(req, int32(images.Fd()), int32(work.Fd()))
	typ := rpc.CriuReqType_DUMP
	if req.Action == ActionRestore {
		typ = rpc.CriuReqType_RESTORE
	}
	extra := make([]*os.File, len(req.InheritFds))
	for i, in := range req.InheritFds {
		extra[i] = in.File
	}
	grace := cancelGraceFor(req)
	var notify func(*rpc.CriuNotify) bool
	if grace > 0 {
		// With notifications on, a cancelled dump is failed at CRIU's
		// next step that can roll back, instead of killing criu.
		opts.NotifyScripts = proto.Bool(true)
		notify = func(n *rpc.CriuNotify) bool {
			return ctx.Err() == nil || !rollbackSteps[n.GetScript()]
		}
	}
	resp, err := b.call(ctx, req, &rpc.CriuReq{Type: typ.Enum(), Opts: opts}, extra, grace, notify)
	if err != nil {
		return nil, err
	}
	return &Response{Backend: "rpc", PID: int(resp.GetRestore().GetPid())}, nil
}

// call runs one request on a fresh swrk child and turns every failure
// into the package's error types.
func (b rpcBackend) call(ctx context.Context, req *Request, r *rpc.CriuReq, extra []*os.File,
	grace time.Duration, notify func(*rpc.CriuNotify) bool) (_ *rpc.CriuResp, retErr error) {
	logPath := ""
	if req.LogFile != "" {
		logPath = filepath.Join(req.WorkDir, req.LogFile)
		// A stale log would make a channel failure look like a run
		// that CRIU began; see rpcFailure.
		_ = os.Remove(logPath)
	}

	cl, err := swrk.Start(ctx, req.CriuPath, extra, grace)
	if err != nil {
		return nil, rpcStartError(req, err)
	}
	defer func() {
		if cerr := cl.Close(); cerr != nil && retErr == nil {
			retErr = &CRIUError{Action: string(req.Action), Backend: "rpc",
				LogPath: logPath, Err: cerr, ExitCode: cl.ExitCode()}
		}
	}()

	resp, err := cl.Call(r, notify)
	if err != nil {
		// How criu ended ("signal: killed") says more than the broken
		// channel alone.
		if cerr := cl.Close(); cerr != nil {
			err = fmt.Errorf("%w (%v)", err, cerr)
		}
		return nil, rpcFailure(ctx, req, logPath, cl.ExitCode(), err)
	}
	if resp.GetType() != r.GetType() {
		return nil, &CRIUError{Action: string(req.Action), Backend: "rpc",
			LogPath: logPath, Err: fmt.Errorf("%w: reply type %v to request %v",
				ErrRPCUnavailable, resp.GetType(), r.GetType())}
	}
	if !resp.GetSuccess() {
		var cause error
		if ctx.Err() != nil {
			cause = fmt.Errorf("stopped: %w", context.Cause(ctx))
		}
		return nil, newCRIUError(req, "rpc", logPath,
			syscall.Errno(resp.GetCrErrno()), resp.GetCrErrmsg(), 0, cause)
	}
	return resp, nil
}

func rpcStartError(req *Request, err error) error {
	// The exec backend's test, which also covers a bare name that is
	// not on PATH (exec.ErrNotFound, not an fs.ErrNotExist).
	if isNotFound(err) {
		err = errors.Join(ErrCRIUNotFound, err)
	}
	return &CRIUError{Action: string(req.Action), Backend: "rpc",
		Err: fmt.Errorf("%w: %w", ErrRPCUnavailable, err)}
}

// rpcFailure classifies a broken channel. If CRIU never wrote its log,
// it never began the action, and the failure is [ErrRPCUnavailable]
// (safe to retry with another backend). Otherwise CRIU was at work on
// the tree when the channel broke, and retrying could freeze it twice.
func rpcFailure(ctx context.Context, req *Request, logPath string, exit int, err error) error {
	if ctx.Err() != nil {
		return newCRIUError(req, "rpc", logPath, 0, "", exit,
			fmt.Errorf("stopped: %w", context.Cause(ctx)))
	}
	began := true
	if req.LogFile == "" {
		began = false
	} else if st, serr := os.Stat(logPath); serr != nil || st.Size() == 0 {
		began = false
	}
	if !began {
		err = fmt.Errorf("%w: %w", ErrRPCUnavailable, err)
	}
	return newCRIUError(req, "rpc", logPath, 0, "", exit, err)
}

// rpcOpts renders a request as CRIU's RPC options. Every field of
// Request that changes CRIU's behaviour is rendered here and in
// execArgs; TestBackendsRenderEveryField checks that both do.
func rpcOpts(req *Request, imagesFd, workFd int32) *rpc.CriuOpts {
	o := &rpc.CriuOpts{
		ImagesDirFd: proto.Int32(imagesFd),
		WorkDirFd:   proto.Int32(workFd),
		LogLevel:    proto.Int32(int32(req.LogLevel)),
	}
	if req.LogFile != "" {
		o.LogFile = proto.String(req.LogFile)
	}
	if req.Action == ActionDump {
		o.Pid = proto.Int32(int32(req.PID))
	}
	setBool(&o.LeaveRunning, req.LeaveRunning)
	setBool(&o.TcpEstablished, req.TCPEstablished)
	setBool(&o.TcpClose, req.TCPClose)
	setBool(&o.TcpSkipInFlight, req.TCPSkipInFlight)
	setBool(&o.FileLocks, req.FileLocks)
	setBool(&o.ShellJob, req.ShellJob)
	setBool(&o.ExtUnixSk, req.ExtUnixSockets)
	setBool(&o.LinkRemap, req.LinkRemap)
	setBool(&o.AutoDedup, req.AutoDedup)
	setBool(&o.TrackMem, req.TrackMem)
	setBool(&o.MntnsCompatMode, req.MntnsCompatMode)
	if req.GhostLimit != 0 {
		o.GhostLimit = proto.Uint32(req.GhostLimit)
	}
	if req.ManageCgroups != "" {
		o.ManageCgroups = proto.Bool(true)
		o.ManageCgroupsMode = rpcCgroupMode(req.ManageCgroups).Enum()
	}
	if req.Root != "" {
		o.Root = proto.String(req.Root)
	}
	if req.FreezeCgroup != "" {
		o.FreezeCgroup = proto.String(req.FreezeCgroup)
	}
	o.External = append(o.External, req.External...)
	for i, in := range req.InheritFds {
		o.InheritFd = append(o.InheritFd, &rpc.InheritFd{
			Key: proto.String(in.Key),
			Fd:  proto.Int32(swrk.FD(i)),
		})
	}
	return o
}

func setBool(dst **bool, v bool) {
	if v {
		*dst = proto.Bool(true)
	}
}

func rpcCgroupMode(m CgroupMode) rpc.CriuCgMode {
	switch m {
	case CgroupsSoft:
		return rpc.CriuCgMode_SOFT
	case CgroupsFull:
		return rpc.CriuCgMode_FULL
	case CgroupsStrict:
		return rpc.CriuCgMode_STRICT
	case CgroupsIgnore:
		return rpc.CriuCgMode_IGNORE
	}
	return rpc.CriuCgMode_DEFAULT
}

func openDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("open directory for criu: %w", err)
	}
	return f, nil
}
