package dockercr

import (
	"context"
	"errors"
	"path/filepath"
	"time"
)

// RestoreResult describes a completed restore.
type RestoreResult struct {
	// PID is the restored root process. It runs detached: its parent
	// is the nearest child subreaper of the caller, or init.
	PID int
	// Dir is the checkpoint directory restored from.
	Dir string
	// LogPath is CRIU's restore log.
	LogPath     string
	Backend     string
	CRIUVersion Version
	Stats       RestoreStats
	Duration    time.Duration
}

// Restore recreates the process tree checkpointed in dir by
// [Checkpointer.Checkpoint] and returns once it runs, detached from the
// caller. CRIU writes restore.log and its statistics to dir (or the
// [WithWorkDir]).
//
// Options that describe the tree's resources (TCP, file locks, shell
// job, external mounts, inherited descriptors, root, cgroups) must match
// what the dump used. If the restore fails or ctx is cancelled, criu is
// killed, and so is every process of the checkpoint's tree that came up
// during the restore (they leave criu's process group early, and would
// otherwise wait for the dead criu for good, holding their PIDs).
func (c *Checkpointer) Restore(ctx context.Context, dir string) (*RestoreResult, error) {
	dir = cleanAbs(dir)
	release, err := c.acquire("dir:" + dir)
	if err != nil {
		return nil, err
	}
	defer release()

	env, err := c.preflight(ctx, false)
	if err != nil {
		return nil, err
	}
	images := filepath.Join(dir, ImagesDirName)
	// A damaged checkpoint is refused here, naming the image, rather
	// than half-restored by CRIU.
	if err := ValidateImages(images); err != nil {
		return nil, err
	}

	forked, err := watchForked(images)
	if err != nil {
		return nil, err
	}
	if err := forked.checkPIDsFree(); err != nil {
		return nil, err
	}
	req := c.request(ActionRestore, images, dir)
	start := time.Now()
	resp, err := c.runTimed(ctx, req)
	if err != nil {
		return nil, errors.Join(err, forked.kill())
	}
	took := time.Since(start)

	res := &RestoreResult{
		PID:         resp.PID,
		Dir:         dir,
		LogPath:     filepath.Join(req.WorkDir, req.LogFile),
		Backend:     resp.Backend,
		CRIUVersion: env.CRIUVersion,
		Duration:    took,
	}
	// The tree runs; missing statistics do not undo that.
	if st, err := readRestoreStats(req.WorkDir); err == nil {
		res.Stats = st
	} else {
		c.cfg.logger.Debug("no restore statistics", "err", err)
	}
	c.cfg.logger.Debug("restore done", "pid", res.PID, "dir", dir,
		"backend", res.Backend, "took", took)
	return res, nil
}
