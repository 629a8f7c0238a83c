package dockercr

import (
	"context"
	"errors"
	"fmt"
)

// Environment is what a [Checkpointer] learned about its CRIU and
// kernel. It is probed once and cached on the Checkpointer.
type Environment struct {
	// CRIUVersion is the version of the criu binary in use.
	CRIUVersion Version
	// Backend is the backend that answered the probe.
	Backend string
	// Features is what the kernel and CRIU support.
	Features Features
}

// Check probes the CRIU version and features, checks the caller's
// privileges, and caches the answer for later calls. It fails with
// [ErrNotPermitted], [ErrCRIUNotFound] or a [*VersionError] (matching
// [ErrCRIUTooOld]).
func (c *Checkpointer) Check(ctx context.Context) (*Environment, error) {
	return c.preflight(ctx, true)
}

// preflight is Check, probing the features only when withFeatures:
// a checkpoint or restore needs them only for options such as
// WithTrackMem, and each probe costs criu runs (about 0.1 s each with
// the exec backend).
func (c *Checkpointer) preflight(ctx context.Context, withFeatures bool) (*Environment, error) {
	c.probeMu.Lock()
	defer c.probeMu.Unlock()

	if c.env == nil {
		if err := checkPrivileges(); err != nil {
			return nil, err
		}
		ver, backend, err := c.probeVersion(ctx)
		if err != nil {
			return nil, err
		}
		c.env = &Environment{CRIUVersion: ver, Backend: backend}
	}
	if withFeatures && !c.featuresProbed {
		resp, err := c.run(ctx, &Request{Action: ActionFeatures, CriuPath: c.cfg.criuPath})
		if err != nil {
			return nil, fmt.Errorf("probe criu features: %w", err)
		}
		c.env.Features = resp.Features
		c.featuresProbed = true
	}
	env := *c.env
	return &env, nil
}

// cachedEnv returns what Check cached, or nil.
func (c *Checkpointer) cachedEnv() *Environment {
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	return c.env
}

func (c *Checkpointer) probeVersion(ctx context.Context) (Version, string, error) {
	resp, err := c.run(ctx, &Request{Action: ActionVersion, CriuPath: c.cfg.criuPath})
	if err != nil {
		if errors.Is(err, ErrCRIUNotFound) {
			return Version{}, "", fmt.Errorf("%w: %q: %w", ErrCRIUNotFound, c.cfg.criuPath, err)
		}
		return Version{}, "", fmt.Errorf("probe criu version: %w", err)
	}
	if !resp.Version.AtLeast(MinCRIUVersion) {
		return Version{}, "", &VersionError{Path: c.cfg.criuPath,
			Found: resp.Version, Min: MinCRIUVersion}
	}
	return resp.Version, resp.Backend, nil
}

// requireFeatures reports, in one error, every feature req needs that
// env lacks.
func requireFeatures(env *Environment, req *Request) error {
	var missing []MissingFeature
	if req.TrackMem && !env.Features.MemTrack {
		missing = append(missing, MissingFeature{
			Feature:  "mem_dirty_track",
			NeededBy: "WithTrackMem",
			Reason: "the kernel does not track dirty memory (soft-dirty); " +
				"it needs CONFIG_MEM_SOFT_DIRTY",
		})
	}
	if len(missing) > 0 {
		return &FeatureError{Missing: missing}
	}
	return nil
}
