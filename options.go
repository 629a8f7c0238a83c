package dockercr

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Option configures a [Checkpointer]. Options are applied in order by
// [New]; the first one that fails stops New with its error.
type Option func(*config) error

// CgroupMode is CRIU's --manage-cgroups mode.
type CgroupMode string

// The modes CRIU accepts for --manage-cgroups.
const (
	// CgroupsSoft restores cgroup properties only where the cgroup was
	// created by the restore.
	CgroupsSoft CgroupMode = "soft"
	// CgroupsFull restores every property of every cgroup.
	CgroupsFull CgroupMode = "full"
	// CgroupsStrict fails the restore if a cgroup property cannot be
	// restored exactly.
	CgroupsStrict CgroupMode = "strict"
	// CgroupsIgnore neither dumps nor restores cgroups.
	CgroupsIgnore CgroupMode = "ignore"
)

// Default values of the options that have one.
const (
	// DefaultLogLevel is CRIU's most verbose level, as runc uses: a
	// failed run's log then names the resource that blocked it.
	DefaultLogLevel = 4
	// DefaultGhostLimit is CRIU's own default ghost-file limit, 1 MiB.
	DefaultGhostLimit = 1 << 20
)

// config is the resolved configuration of a Checkpointer.
type config struct {
	leaveRunning    bool
	tcpEstablished  bool
	tcpClose        bool
	tcpSkipInFlight bool
	fileLocks       bool
	shellJob        bool
	extUnixSockets  bool
	linkRemap       bool
	autoDedup       bool
	trackMem        bool
	replaceExisting bool

	ghostLimit    uint32
	manageCgroups CgroupMode
	logLevel      int
	workDir       string
	root          string
	external      []string
	inheritFds    []InheritFd
	timeout       time.Duration
	criuPath      string
	backend       Backend
	logger        *slog.Logger
}

func defaultConfig() config {
	return config{
		logLevel:   DefaultLogLevel,
		ghostLimit: DefaultGhostLimit,
		criuPath:   "criu",
		backend:    AutoBackend(),
		logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// validate checks the whole configuration once all options are applied.
func (c *config) validate() error {
	if c.tcpEstablished && c.tcpClose {
		return errors.New("WithTCPEstablished and WithTCPClose exclude each other")
	}
	return nil
}

// WithLeaveRunning keeps the process tree running after a dump (CRIU's
// --leave-running). Default: off, CRIU kills the tree once it is dumped.
func WithLeaveRunning() Option {
	return func(c *config) error { c.leaveRunning = true; return nil }
}

// WithTCPEstablished checkpoints and restores established TCP
// connections (--tcp-established). Default: off, and CRIU refuses to
// dump a tree with an established connection. Give it on restore too.
func WithTCPEstablished() Option {
	return func(c *config) error { c.tcpEstablished = true; return nil }
}

// WithTCPClose restores established TCP connections in the closed state
// instead of repairing them (--tcp-close). Default: off.
func WithTCPClose() Option {
	return func(c *config) error { c.tcpClose = true; return nil }
}

// WithTCPSkipInFlight skips TCP connections still in the handshake
// (--skip-in-flight). Default: off, CRIU fails on them.
func WithTCPSkipInFlight() Option {
	return func(c *config) error { c.tcpSkipInFlight = true; return nil }
}

// WithFileLocks checkpoints and restores held file locks
// (--file-locks). Default: off, CRIU refuses a tree holding locks.
func WithFileLocks() Option {
	return func(c *config) error { c.fileLocks = true; return nil }
}

// WithShellJob allows a tree that is attached to a terminal or whose
// session leader is outside the tree (--shell-job). Default: off.
func WithShellJob() Option {
	return func(c *config) error { c.shellJob = true; return nil }
}

// WithExtUnixSockets allows connected unix sockets whose peer is outside
// the dumped tree (--ext-unix-sk). Default: off.
func WithExtUnixSockets() Option {
	return func(c *config) error { c.extUnixSockets = true; return nil }
}

// WithGhostLimit sets the largest deleted-but-open file CRIU copies into
// the images (--ghost-limit). Default: [DefaultGhostLimit] (1 MiB).
func WithGhostLimit(bytes uint32) Option {
	return func(c *config) error {
		if bytes == 0 {
			return errors.New("WithGhostLimit: limit must be positive")
		}
		c.ghostLimit = bytes
		return nil
	}
}

// WithLinkRemap lets CRIU dump an open file that is unlinked or not
// reachable by its path by linking it back temporarily (--link-remap).
// Default: off.
func WithLinkRemap() Option {
	return func(c *config) error { c.linkRemap = true; return nil }
}

// WithManageCgroups makes CRIU dump and restore cgroups in the given
// mode (--manage-cgroups=MODE). Default: not passed, and CRIU then
// neither dumps cgroup properties nor moves tasks into cgroups.
func WithManageCgroups(mode CgroupMode) Option {
	return func(c *config) error {
		switch mode {
		case CgroupsSoft, CgroupsFull, CgroupsStrict, CgroupsIgnore:
			c.manageCgroups = mode
			return nil
		}
		return fmt.Errorf("WithManageCgroups: unknown mode %q", mode)
	}
}

// WithLogLevel sets CRIU's log verbosity, 0 (none) to 4 (debug)
// (-v0 … -v4). Default: [DefaultLogLevel].
func WithLogLevel(level int) Option {
	return func(c *config) error {
		if level < 0 || level > 4 {
			return fmt.Errorf("WithLogLevel: %d is not in 0..4", level)
		}
		c.logLevel = level
		return nil
	}
}

// WithWorkDir sets the directory for CRIU's logs and work files
// (--work-dir). Default: the checkpoint directory itself, so that the
// logs travel with the images. The directory must exist.
func WithWorkDir(dir string) Option {
	return func(c *config) error {
		abs, err := absDir("WithWorkDir", dir)
		c.workDir = abs
		return err
	}
}

// WithRoot sets the root of the tree's mount namespace as seen from the
// caller (--root), such as a container's merged rootfs. Default: none.
func WithRoot(dir string) Option {
	return func(c *config) error {
		abs, err := absDir("WithRoot", dir)
		c.root = abs
		return err
	}
}

// WithExternal passes raw CRIU --external values such as
// "mnt[/data]:data" or "veth[eth0]:host0". Each call appends.
// Default: none.
func WithExternal(specs ...string) Option {
	return func(c *config) error {
		for _, s := range specs {
			if s == "" || strings.ContainsRune(s, 0) {
				return fmt.Errorf("WithExternal: bad value %q", s)
			}
		}
		c.external = append(c.external, specs...)
		return nil
	}
}

// WithExternalMount declares, for a dump, that the mount at mountpoint
// (inside the tree's mount namespace) is external and names it key
// (--external mnt[MOUNTPOINT]:KEY). Appends like [WithExternal].
func WithExternalMount(mountpoint, key string) Option {
	return externalPair("WithExternalMount", mountpoint, key)
}

// WithExternalMountSource binds, for a restore, the host path source
// where the checkpoint has the external mount key
// (--external mnt[KEY]:SOURCE). Appends like [WithExternal].
func WithExternalMountSource(key, source string) Option {
	return externalPair("WithExternalMountSource", key, source)
}

func externalPair(name, inner, outer string) Option {
	return func(c *config) error {
		if inner == "" || outer == "" || strings.ContainsAny(inner, "[]\x00") ||
			strings.ContainsRune(outer, 0) {
			return fmt.Errorf("%s: bad pair %q, %q", name, inner, outer)
		}
		c.external = append(c.external, "mnt["+inner+"]:"+outer)
		return nil
	}
}

// InheritFd hands an open file of the caller to a restore in place of
// the resource CRIU's images call Key (--inherit-fd fd[N]:KEY), such as
// "pipe:[12345]" or "tty[8800:3]".
type InheritFd struct {
	Key  string
	File *os.File
}

// WithInheritFd gives a restore the file f in place of the resource key.
// Each call appends. The file must stay open until Restore returns.
func WithInheritFd(key string, f *os.File) Option {
	return func(c *config) error {
		if key == "" || f == nil {
			return errors.New("WithInheritFd: key and file are required")
		}
		c.inheritFds = append(c.inheritFds, InheritFd{Key: key, File: f})
		return nil
	}
}

// WithAutoDedup punches holes in parent images as pages are written
// anew (--auto-dedup). Default: off.
func WithAutoDedup() Option {
	return func(c *config) error { c.autoDedup = true; return nil }
}

// WithTrackMem turns on the kernel's dirty-memory tracking at dump
// (--track-mem), so that a later dump can be incremental. It needs
// soft-dirty support in the kernel; [Checkpointer.Checkpoint] reports a
// [*FeatureError] before dumping when that is missing. Default: off.
func WithTrackMem() Option {
	return func(c *config) error { c.trackMem = true; return nil }
}

// WithReplaceExisting lets a checkpoint replace an existing checkpoint
// directory of the same path. The old one is swapped out only after the
// new dump succeeded. Default: off, [ErrCheckpointExists].
func WithReplaceExisting() Option {
	return func(c *config) error { c.replaceExisting = true; return nil }
}

// WithTimeout bounds every CRIU run; when it expires criu is stopped as
// if the context were cancelled. Default: none, only the context.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithTimeout: %v is not positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithCriuPath sets the criu binary the built-in backends run, a path or
// a name looked up in PATH. Default: "criu".
func WithCriuPath(path string) Option {
	return func(c *config) error {
		if path == "" {
			return errors.New("WithCriuPath: empty path")
		}
		c.criuPath = path
		return nil
	}
}

// WithBackend sets how CRIU is driven: [RPCBackend], [ExecBackend],
// [AutoBackend] or one of the caller's own. Default: [AutoBackend].
func WithBackend(b Backend) Option {
	return func(c *config) error {
		if b == nil {
			return errors.New("WithBackend: nil backend")
		}
		c.backend = b
		return nil
	}
}

// WithLogger sets where the Checkpointer logs what it runs, at debug
// level. Default: a logger that discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

func absDir(name, dir string) (string, error) {
	if dir == "" {
		return "", fmt.Errorf("%s: empty path", name)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return abs, nil
}
