package dockercr

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Checkpointer checkpoints and restores process trees with CRIU. It is
// configured once by [New] and is safe for concurrent use; calls on the
// same process or checkpoint directory are refused with [ErrBusy] while
// another is running.
type Checkpointer struct {
	cfg config

	probeMu        sync.Mutex
	env            *Environment
	featuresProbed bool

	busyMu sync.Mutex
	busy   map[string]bool
}

// ErrBusy means another operation of the same Checkpointer is already
// working on the same process or checkpoint directory.
var ErrBusy = errors.New("operation already in progress")

// New returns a Checkpointer with the given options applied in order.
// It runs nothing; CRIU is first probed by [Checkpointer.Check] or the
// first checkpoint or restore.
func New(opts ...Option) (*Checkpointer, error) {
	cfg := defaultConfig()
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Checkpointer{cfg: cfg, busy: make(map[string]bool)}, nil
}

// CheckpointResult describes a completed checkpoint.
type CheckpointResult struct {
	// Dir is the checkpoint directory; ImagesDir holds CRIU's images.
	Dir       string
	ImagesDir string
	// LogPath is CRIU's dump log.
	LogPath string
	// Backend is the backend that ran CRIU ("rpc" or "exec").
	Backend     string
	CRIUVersion Version
	Stats       DumpStats
	// Duration is the wall time of the CRIU run.
	Duration time.Duration
}

// Checkpoint dumps the process tree rooted at pid into dir, which must
// not exist yet (unless [WithReplaceExisting]). The images go to
// dir/images and CRIU's log to dir/dump.log (or the [WithWorkDir]).
//
// The dump is staged in a hidden sibling of dir and renamed into place
// only once CRIU succeeded. On failure dir is not created; the log of
// the failed attempt is kept as PARENT/.NAME.failed/dump.log and named
// in the returned [*CRIUError].
//
// Without [WithLeaveRunning] CRIU kills the tree once it is dumped.
//
// If ctx is cancelled or the [WithTimeout] expires, the dump stops and
// an error matching the context's is returned; the tree keeps running,
// neither frozen nor traced. While CRIU only reads the tree, criu is
// killed at once. Once it may have put TCP connections into repair mode
// or locked the tree's network namespace (with [WithTCPEstablished], or
// for a tree in a network namespace of its own, such as a container),
// killing it would break the workload's connections: the RPC backend
// then fails CRIU's next step that can roll back, and CRIU resumes the
// tree; the exec backend lets criu finish. Either is bounded by 30
// seconds, after which criu is killed anyway. A cancellation that
// arrives after CRIU passed the point of no return yields the completed
// checkpoint.
func (c *Checkpointer) Checkpoint(ctx context.Context, pid int, dir string) (*CheckpointResult, error) {
	return c.checkpoint(ctx, pid, dir, dumpHooks{})
}

// dumpHooks let the container layer adjust a plain dump.
type dumpHooks struct {
	// request amends the resolved request before CRIU runs.
	request func(*Request)
	// beforeDump writes files into the staged checkpoint before CRIU
	// runs; its failure leaves the tree untouched.
	beforeDump func(stagedDir string) error
	// beforeCommit writes extra files into the staged checkpoint once
	// CRIU succeeded; res describes the dump (its paths are final).
	beforeCommit func(stagedDir string, res *CheckpointResult) error
}

func (c *Checkpointer) checkpoint(ctx context.Context, pid int, dir string,
	hooks dumpHooks) (*CheckpointResult, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("%w: pid %d", ErrProcessNotFound, pid)
	}
	release, err := c.acquire(fmt.Sprintf("pid:%d", pid), "dir:"+cleanAbs(dir))
	if err != nil {
		return nil, err
	}
	defer release()

	// Of the options, only WithTrackMem needs a feature probe.
	env, err := c.preflight(ctx, c.cfg.trackMem)
	if err != nil {
		return nil, err
	}
	if err := processExists(pid); err != nil {
		return nil, err
	}

	staged, err := stageCheckpoint(dir, c.cfg.replaceExisting)
	if err != nil {
		return nil, err
	}
	req := c.request(ActionDump, staged.imagesDir(), staged.tmp)
	req.PID = pid
	if hooks.request != nil {
		hooks.request(req)
	}
	err = requireFeatures(env, req)
	if err == nil && hooks.beforeDump != nil {
		err = hooks.beforeDump(staged.tmp)
	}
	if err != nil {
		_, aerr := staged.abort()
		return nil, errors.Join(err, aerr)
	}

	res, dumped, err := c.runDump(ctx, req, staged, hooks)
	if err != nil {
		err = c.failDump(staged, err, dumped && !req.LeaveRunning)
		if !dumped {
			err = exitedError(pid, err)
		}
		return nil, err
	}
	return res, nil
}

// runDump runs CRIU and commits the staged directory. dumped reports
// whether CRIU succeeded, even when a later step failed.
func (c *Checkpointer) runDump(ctx context.Context, req *Request, staged *stagedDir,
	hooks dumpHooks) (_ *CheckpointResult, dumped bool, _ error) {
	start := time.Now()
	resp, err := c.runTimed(ctx, req)
	if err != nil {
		return nil, false, err
	}
	took := time.Since(start)

	// CRIU writes its statistics image to the work directory.
	st, err := readDumpStats(req.WorkDir)
	if err != nil {
		return nil, true, err
	}
	res := &CheckpointResult{
		Dir:       staged.final,
		ImagesDir: filepath.Join(staged.final, ImagesDirName),
		LogPath:   c.logPath(staged.final, DumpLogName),
		Backend:   resp.Backend,
		Stats:     st,
		Duration:  took,
	}
	if env := c.cachedEnv(); env != nil {
		res.CRIUVersion = env.CRIUVersion
	}
	if hooks.beforeCommit != nil {
		if err := hooks.beforeCommit(staged.tmp, res); err != nil {
			return nil, true, err
		}
	}
	if err := staged.commit(); err != nil {
		return nil, true, err
	}

	c.cfg.logger.Debug("checkpoint done", "pid", req.PID, "dir", res.Dir,
		"backend", res.Backend, "took", took, "frozen", st.FrozenTime)
	return res, true, nil
}

// failDump removes what a failed dump staged and points the error at
// the log that was kept. If CRIU had dumped and killed the tree before
// a later step failed, the images are its only copy: they are kept too,
// and the error says where.
func (c *Checkpointer) failDump(staged *stagedDir, err error, keepImages bool) error {
	if keepImages {
		kept, kerr := staged.keep()
		if kerr != nil {
			return errors.Join(err, fmt.Errorf("keep images of a dumped tree: %w", kerr))
		}
		return fmt.Errorf("%w; CRIU had dumped and stopped the tree: its images are kept in %s", err, kept)
	}
	logPath, aerr := staged.abort()
	var ce *CRIUError
	if errors.As(err, &ce) && c.cfg.workDir == "" {
		ce.LogPath = logPath
	}
	if aerr != nil {
		return errors.Join(err, fmt.Errorf("clean up failed dump: %w", aerr))
	}
	return err
}

// request resolves the configuration into a request for action.
func (c *Checkpointer) request(action Action, imagesDir, defaultWorkDir string) *Request {
	cfg := &c.cfg
	workDir := cfg.workDir
	if workDir == "" {
		workDir = defaultWorkDir
	}
	logFile := DumpLogName
	var inherit []InheritFd
	if action == ActionRestore {
		logFile = RestoreLogName
		// Only a restore takes them: criu dump refuses --inherit-fd
		// ("restore-only option"), so one Checkpointer could not dump.
		inherit = append(inherit, cfg.inheritFds...)
	}
	return &Request{
		Action:          action,
		CriuPath:        cfg.criuPath,
		ImagesDir:       imagesDir,
		WorkDir:         workDir,
		LogFile:         logFile,
		LogLevel:        cfg.logLevel,
		LeaveRunning:    cfg.leaveRunning && action == ActionDump,
		TCPEstablished:  cfg.tcpEstablished,
		TCPClose:        cfg.tcpClose,
		TCPSkipInFlight: cfg.tcpSkipInFlight,
		FileLocks:       cfg.fileLocks,
		ShellJob:        cfg.shellJob,
		ExtUnixSockets:  cfg.extUnixSockets,
		LinkRemap:       cfg.linkRemap,
		AutoDedup:       cfg.autoDedup,
		TrackMem:        cfg.trackMem && action == ActionDump,
		GhostLimit:      cfg.ghostLimit,
		ManageCgroups:   cfg.manageCgroups,
		Root:            cfg.root,
		External:        append([]string(nil), cfg.external...),
		InheritFds:      inherit,
	}
}

func (c *Checkpointer) logPath(dir, name string) string {
	if c.cfg.workDir != "" {
		return filepath.Join(c.cfg.workDir, name)
	}
	return filepath.Join(dir, name)
}

// run hands req to the backend and logs it.
func (c *Checkpointer) run(ctx context.Context, req *Request) (*Response, error) {
	c.cfg.logger.Debug("criu", "action", req.Action, "backend", c.cfg.backend.Name(),
		"pid", req.PID, "images", req.ImagesDir)
	resp, err := c.cfg.backend.Run(ctx, req)
	if err != nil {
		c.cfg.logger.Debug("criu failed", "action", req.Action, "err", err)
		return nil, err
	}
	if resp.Backend == "" {
		resp.Backend = c.cfg.backend.Name()
	}
	return resp, nil
}

// runTimed is run under the WithTimeout deadline.
func (c *Checkpointer) runTimed(ctx context.Context, req *Request) (*Response, error) {
	if c.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.cfg.timeout,
			// Wrapped, so callers match it as they match a deadline
			// of their own context.
			fmt.Errorf("criu %s exceeded WithTimeout(%v): %w",
				req.Action, c.cfg.timeout, context.DeadlineExceeded))
		defer cancel()
	}
	return c.run(ctx, req)
}

// acquire marks keys busy until release is called, or fails with
// ErrBusy if one of them already is.
func (c *Checkpointer) acquire(keys ...string) (release func(), err error) {
	c.busyMu.Lock()
	defer c.busyMu.Unlock()
	for _, k := range keys {
		if c.busy[k] {
			return nil, fmt.Errorf("%w: %s", ErrBusy, k)
		}
	}
	for _, k := range keys {
		c.busy[k] = true
	}
	return func() {
		c.busyMu.Lock()
		defer c.busyMu.Unlock()
		for _, k := range keys {
			delete(c.busy, k)
		}
	}, nil
}

// processExists fails with ErrProcessNotFound unless pid is a live
// process (a zombie counts as gone: there is nothing left to dump).
func processExists(pid int) error {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%w: pid %d", ErrProcessNotFound, pid)
	}
	state, err := procState(pid)
	if err != nil {
		return fmt.Errorf("%w: pid %d: %w", ErrProcessNotFound, pid, err)
	}
	if state == 'Z' || state == 'X' {
		return fmt.Errorf("%w: pid %d has exited", ErrProcessNotFound, pid)
	}
	return nil
}

func cleanAbs(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}
