package dockercr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mptcpLog is the tail of a real CRIU 4.2.1 dump log of a Go program
// with an MPTCP listener: the harmless rlimit line comes first, the
// cause and CRIU's hint next, the generic summaries last.
const mptcpLog = "" +
	"(00.038747) Error (criu/util.c:1534): " +
	"rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n" +
	"(00.048604) Error (criu/sk-inet.c:137): " +
	"inet: Unsupported proto 262 for socket 2563\n" +
	"(00.048606) Error (criu/sk-inet.c:139): " +
	"inet: For Go programs, consider using \"GODEBUG=multipathtcp=0\" to disable MPTCP\n" +
	"(00.048629) Error (criu/cr-dump.c:1545): " +
	"Dump files (pid: 3492) failed with -1\n" +
	"(00.049068) Error (criu/cr-dump.c:1975): " +
	"Dumping FAILED.\n"

// tLogFile writes text as a CRIU log in a temporary directory.
func tLogFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), DumpLogName)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCRIUErrorFromLog(t *testing.T) {
	logPath := tLogFile(t, mptcpLog)
	req := &Request{Action: ActionDump}
	err := newCRIUError(req, "rpc", logPath, syscall.EPERM, "dump failed", 1, nil)

	t.Run("summary leads with the root cause and the hint", func(t *testing.T) {
		want := "criu dump failed (rpc): inet: Unsupported proto 262 for socket 2563; " +
			`inet: For Go programs, consider using "GODEBUG=multipathtcp=0" to disable MPTCP` +
			"; log: " + logPath
		if got := err.Error(); got != want {
			t.Fatalf("Error()\n got %q\nwant %q", got, want)
		}
	})

	t.Run("harmless and generic lines are left out", func(t *testing.T) {
		for _, noise := range []string{"RLIMIT_NOFILE", "Dump files (pid:", "Dumping FAILED."} {
			if strings.Contains(err.Detail(), noise) {
				t.Errorf("Detail shows %q:\n%s", noise, err.Detail())
			}
		}
	})

	t.Run("detail has every line", func(t *testing.T) {
		d := err.Detail()
		for _, want := range []string{
			"\n  inet: Unsupported proto 262 for socket 2563",
			"\n  inet: For Go programs",
			"\n  criu: dump failed",
			"\n  errno: 1 (operation not permitted)",
			"\n  exit status: 1",
		} {
			if !strings.Contains(d, want) {
				t.Errorf("Detail lacks %q:\n%s", want, d)
			}
		}
		if !strings.HasPrefix(d, err.Error()) {
			t.Errorf("Detail does not start with the summary:\n%s", d)
		}
	})
}

func TestCRIUErrorSummaryFallbacks(t *testing.T) {
	tests := []struct {
		name string
		err  *CRIUError
		want string
	}{
		{"message without causes",
			&CRIUError{Action: "restore", Backend: "exec", Message: "Restoring FAILED", LogPath: "/c/restore.log"},
			"criu restore failed (exec): Restoring FAILED; log: /c/restore.log"},
		{"underlying error only",
			&CRIUError{Action: "version", Err: errors.New("swrk exited")},
			"criu version failed: swrk exited"},
		{"causes beat message and error",
			&CRIUError{Action: "dump", Causes: []string{"a"}, Message: "m", Err: errors.New("e")},
			"criu dump failed: a"},
		{"more causes than the summary shows",
			&CRIUError{Action: "dump", Causes: []string{"a", "b", "c", "d"}},
			"criu dump failed: a; b (+2 more)"},
		{"nothing known",
			&CRIUError{Action: "dump", Backend: "rpc"},
			"criu dump failed (rpc)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error()\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCRIUErrorIs(t *testing.T) {
	tests := []struct {
		errno           syscall.Errno
		permitted, srch bool
	}{
		{syscall.EPERM, true, false},
		{syscall.EACCES, true, false},
		{syscall.ESRCH, false, true},
		{syscall.ENOENT, false, false},
		{0, false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("errno %d", tt.errno), func(t *testing.T) {
			// Wrapped as the package wraps its errors.
			err := fmt.Errorf("checkpoint: %w", &CRIUError{Action: "dump", Errno: tt.errno})
			if got := errors.Is(err, ErrNotPermitted); got != tt.permitted {
				t.Errorf("Is(ErrNotPermitted) = %v", got)
			}
			if got := errors.Is(err, ErrProcessNotFound); got != tt.srch {
				t.Errorf("Is(ErrProcessNotFound) = %v", got)
			}
			if errors.Is(err, ErrCRIUTooOld) || errors.Is(err, ErrNotSupported) {
				t.Error("matches an unrelated kind")
			}
			var ce *CRIUError
			if !errors.As(err, &ce) || ce.Errno != tt.errno {
				t.Fatalf("As: %v, %+v", errors.As(err, &ce), ce)
			}
		})
	}

	t.Run("unwraps the underlying error", func(t *testing.T) {
		err := &CRIUError{Action: "dump", Err: fmt.Errorf("stopped: %w", context.Canceled)}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%v does not match context.Canceled", err)
		}
	})
}

func TestVersionAndFeatureErrors(t *testing.T) {
	old := Version{3, 17, 1}
	verr := error(&VersionError{Path: "/usr/sbin/criu", Found: old, Min: MinCRIUVersion})
	ferr := error(&FeatureError{Missing: []MissingFeature{
		{Feature: "mem_dirty_track", NeededBy: "WithTrackMem", Reason: "no soft-dirty"},
		{Feature: "uffd", NeededBy: "lazy restore", Reason: "no userfaultfd"},
	}})
	tests := []struct {
		name    string
		err     error
		is      error
		isNot   error
		message string
	}{
		{"version", verr, ErrCRIUTooOld, ErrNotSupported,
			"criu 3.17.1 at /usr/sbin/criu is older than the supported minimum " + MinCRIUVersion.String()},
		{"feature", ferr, ErrNotSupported, ErrCRIUTooOld,
			"not supported here: mem_dirty_track (needed by WithTrackMem): no soft-dirty; " +
				"uffd (needed by lazy restore): no userfaultfd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wrapped := fmt.Errorf("checkpoint 1: %w", tt.err)
			if !errors.Is(wrapped, tt.is) {
				t.Errorf("does not match %v", tt.is)
			}
			if errors.Is(wrapped, tt.isNot) {
				t.Errorf("matches %v", tt.isNot)
			}
			if got := tt.err.Error(); got != tt.message {
				t.Errorf("Error()\n got %q\nwant %q", got, tt.message)
			}
		})
	}

	t.Run("as version error", func(t *testing.T) {
		var ve *VersionError
		if !errors.As(fmt.Errorf("x: %w", verr), &ve) || ve.Found != old {
			t.Fatalf("As: %+v", ve)
		}
	})
}

// fakeBackend answers with a fixed response and error and counts calls.
type fakeBackend struct {
	name  string
	resp  *Response
	err   error
	calls int
	// cancel, if set, is called during Run, as a caller's cancel would
	// race with a failing RPC.
	cancel context.CancelFunc
}

func (f *fakeBackend) Name() string { return f.name }

func (f *fakeBackend) Run(context.Context, *Request) (*Response, error) {
	f.calls++
	if f.cancel != nil {
		f.cancel()
	}
	return f.resp, f.err
}

// TestAutoBackendFallback checks the fallback policy alone: only a
// channel failure before CRIU began is retried with exec.
func TestAutoBackendFallback(t *testing.T) {
	unavailable := &CRIUError{Action: "dump", Backend: "rpc",
		Err: fmt.Errorf("%w: swrk exited", ErrRPCUnavailable)}
	criuFailed := &CRIUError{Action: "dump", Backend: "rpc",
		Causes: []string{"sk-inet: Connected TCP socket"}}
	tests := []struct {
		name         string
		primaryErr   error
		fallbackErr  error
		cancel       bool
		wantFallback bool
		wantBackend  string
		wantErr      error
	}{
		{name: "rpc works", wantBackend: "rpc"},
		{name: "rpc unavailable", primaryErr: unavailable, wantFallback: true, wantBackend: "exec"},
		{name: "criu reported a failure", primaryErr: criuFailed, wantErr: criuFailed},
		{name: "cancelled while rpc failed", primaryErr: unavailable, cancel: true, wantErr: ErrRPCUnavailable},
		{name: "exec fails too", primaryErr: unavailable, fallbackErr: criuFailed,
			wantFallback: true, wantErr: criuFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			primary := &fakeBackend{name: "rpc", err: tt.primaryErr}
			if tt.primaryErr == nil {
				primary.resp = &Response{Backend: "rpc"}
			}
			if tt.cancel {
				primary.cancel = cancel
			}
			fallback := &fakeBackend{name: "exec", err: tt.fallbackErr}
			if tt.fallbackErr == nil {
				fallback.resp = &Response{Backend: "exec"}
			}

			resp, err := autoBackend{primary: primary, fallback: fallback}.Run(ctx, &Request{Action: ActionDump})

			if got := fallback.calls == 1; got != tt.wantFallback || fallback.calls > 1 {
				t.Fatalf("fallback ran %d times, want fallback %v", fallback.calls, tt.wantFallback)
			}
			if primary.calls != 1 {
				t.Fatalf("rpc ran %d times", primary.calls)
			}
			if tt.wantErr == nil {
				if err != nil || resp.Backend != tt.wantBackend {
					t.Fatalf("got %+v, %v; want backend %s", resp, err, tt.wantBackend)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v does not match %v", err, tt.wantErr)
			}
			if tt.fallbackErr != nil && errors.Is(err, ErrRPCUnavailable) {
				t.Fatalf("after exec ran too, %v still matches ErrRPCUnavailable", err)
			}
		})
	}
}

// TestRPCFailureClassification checks when a broken swrk channel counts
// as ErrRPCUnavailable: only if CRIU never started writing its log.
func TestRPCFailureClassification(t *testing.T) {
	broken := errors.New("criu closed the channel without a reply")
	tests := []struct {
		name            string
		log             *string // nil: no log file
		logFile         string
		wantUnavailable bool
	}{
		{"no log file asked", nil, "", true},
		{"log never written", nil, DumpLogName, true},
		{"empty log", ptr(""), DumpLogName, true},
		{"criu began", ptr("(00.000001) Dumping processes\n"), DumpLogName, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			logPath := filepath.Join(dir, DumpLogName)
			if tt.log != nil {
				if err := os.WriteFile(logPath, []byte(*tt.log), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			req := &Request{Action: ActionDump, WorkDir: dir, LogFile: tt.logFile}
			err := rpcFailure(context.Background(), req, logPath, 1, broken)
			if got := errors.Is(err, ErrRPCUnavailable); got != tt.wantUnavailable {
				t.Fatalf("Is(ErrRPCUnavailable) = %v for %v", got, err)
			}
			if !errors.Is(err, broken) {
				t.Fatalf("%v lost the channel error", err)
			}
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := rpcFailure(ctx, &Request{Action: ActionDump}, "", -1, broken)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrRPCUnavailable) {
			t.Fatalf("cancelled failure %v: want context.Canceled and no fallback", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }
