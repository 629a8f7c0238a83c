package dockercr

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/docker-cr/dockercr/internal/modes"
)

// tListDir returns the names in dir, sorted.
func tListDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// tWriteFile writes a file with loose permissions, as CRIU might.
func tWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	// Beat the umask: the test needs the loose mode on disk.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestValidateDirName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"web", true},
		{"web-1.ckpt", true},
		{"", false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"a/b", false},
		{"/", false},
		{"a\x00b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateDirName(tt.name)
			if tt.ok != (err == nil) {
				t.Fatalf("validateDirName(%q) = %v", tt.name, err)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Fatalf("%v does not match ErrInvalidName", err)
			}
		})
	}
}

// TestStageRejectsBadPaths checks that a checkpoint path whose last
// element is not a plain name is refused before anything is created,
// also when cleaning the path would turn it into another directory.
func TestStageRejectsBadPaths(t *testing.T) {
	parent := t.TempDir()
	t.Chdir(parent)
	tests := []string{
		"",
		".",
		"..",
		".hidden",
		filepath.Join(parent, ".hidden"),
		// Joined by hand: filepath.Join would clean them.
		parent + "/x/..",
		parent + "/x/.",
		parent + "/..",
	}
	for _, path := range tests {
		t.Run(path, func(t *testing.T) {
			s, err := stageCheckpoint(path, true)
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("stageCheckpoint(%q) = %+v, %v; want ErrInvalidName", path, s, err)
			}
			if names := tListDir(t, parent); len(names) != 0 {
				t.Fatalf("refused path left %q in %s", names, parent)
			}
		})
	}
}

func TestStageCheckpoint(t *testing.T) {
	t.Run("nested relative path", func(t *testing.T) {
		t.Chdir(t.TempDir())
		s, err := stageCheckpoint(filepath.Join("a", "b"), false)
		if err != nil {
			t.Fatal(err)
		}
		cwd, _ := os.Getwd()
		if want := filepath.Join(cwd, "a", "b"); s.final != want {
			t.Fatalf("final %q, want %q", s.final, want)
		}
		if filepath.Dir(s.tmp) != filepath.Dir(s.final) {
			t.Fatalf("staging dir %q is not a sibling of %q", s.tmp, s.final)
		}
		if st, err := os.Stat(s.imagesDir()); err != nil || st.Mode().Perm() != 0o700 {
			t.Fatalf("images dir: %v, %v", st, err)
		}
	})

	t.Run("existing checkpoint", func(t *testing.T) {
		parent := t.TempDir()
		final := filepath.Join(parent, "web")
		tWriteFile(t, filepath.Join(final, "old"), "old")
		_, err := stageCheckpoint(final, false)
		if !errors.Is(err, ErrCheckpointExists) {
			t.Fatalf("got %v, want ErrCheckpointExists", err)
		}
		if names := tListDir(t, parent); !slices.Equal(names, []string{"web"}) {
			t.Fatalf("parent holds %q, want only web", names)
		}
		if names := tListDir(t, final); !slices.Equal(names, []string{"old"}) {
			t.Fatalf("checkpoint holds %q, want only old", names)
		}
	})
}

func TestAbort(t *testing.T) {
	t.Run("keeps the log", func(t *testing.T) {
		parent := t.TempDir()
		final := filepath.Join(parent, "web")
		// An older failure is replaced by the new one.
		tWriteFile(t, filepath.Join(parent, ".web.failed", DumpLogName), "older")
		s, err := stageCheckpoint(final, false)
		if err != nil {
			t.Fatal(err)
		}
		tWriteFile(t, filepath.Join(s.tmp, DumpLogName), "Error (x): cause\n")
		tWriteFile(t, filepath.Join(s.imagesDir(), "pages-1.img"), "memory")

		logPath, err := s.abort()
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(parent, ".web.failed", DumpLogName); logPath != want {
			t.Fatalf("log kept at %q, want %q", logPath, want)
		}
		if b, err := os.ReadFile(logPath); err != nil || string(b) != "Error (x): cause\n" {
			t.Fatalf("kept log %q, %v", b, err)
		}
		if names := tListDir(t, parent); !slices.Equal(names, []string{".web.failed"}) {
			t.Fatalf("parent holds %q, want only .web.failed", names)
		}
		if names := tListDir(t, filepath.Dir(logPath)); !slices.Equal(names, []string{DumpLogName}) {
			t.Fatalf("failed dir holds %q: images must go", names)
		}
	})

	t.Run("no log removes everything", func(t *testing.T) {
		parent := t.TempDir()
		s, err := stageCheckpoint(filepath.Join(parent, "web"), false)
		if err != nil {
			t.Fatal(err)
		}
		tWriteFile(t, filepath.Join(s.imagesDir(), "pages-1.img"), "memory")
		logPath, err := s.abort()
		if err != nil || logPath != "" {
			t.Fatalf("abort = %q, %v; want no log", logPath, err)
		}
		if names := tListDir(t, parent); len(names) != 0 {
			t.Fatalf("parent holds %q", names)
		}
	})
}

// tModes walks root and fails unless dirs are 0700 and files 0600.
func tModes(t *testing.T, root string) {
	t.Helper()
	bad, err := modes.Violations(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bad {
		t.Error(line)
	}
}

func TestCommit(t *testing.T) {
	t.Run("renames and restricts", func(t *testing.T) {
		parent := t.TempDir()
		final := filepath.Join(parent, "web")
		s, err := stageCheckpoint(final, false)
		if err != nil {
			t.Fatal(err)
		}
		tWriteFile(t, filepath.Join(s.tmp, DumpLogName), "log")
		tWriteFile(t, filepath.Join(s.imagesDir(), "pages-1.img"), "memory")
		tWriteFile(t, filepath.Join(s.imagesDir(), "sub", "x.img"), "x")
		if err := os.Chmod(s.imagesDir(), 0o755); err != nil {
			t.Fatal(err)
		}

		if err := s.commit(); err != nil {
			t.Fatal(err)
		}
		if names := tListDir(t, parent); !slices.Equal(names, []string{"web"}) {
			t.Fatalf("parent holds %q, want only web", names)
		}
		b, err := os.ReadFile(filepath.Join(final, ImagesDirName, "pages-1.img"))
		if err != nil || string(b) != "memory" {
			t.Fatalf("committed image %q, %v", b, err)
		}
		tModes(t, final)
	})

	t.Run("refuses a checkpoint that appeared meanwhile", func(t *testing.T) {
		parent := t.TempDir()
		final := filepath.Join(parent, "web")
		s, err := stageCheckpoint(final, false)
		if err != nil {
			t.Fatal(err)
		}
		tWriteFile(t, filepath.Join(final, "other"), "theirs")
		if err := s.commit(); !errors.Is(err, ErrCheckpointExists) {
			t.Fatalf("commit over a new directory: %v, want ErrCheckpointExists", err)
		}
		if b, err := os.ReadFile(filepath.Join(final, "other")); err != nil || string(b) != "theirs" {
			t.Fatalf("the other checkpoint was touched: %q, %v", b, err)
		}
	})
}

// TestCommitReplace replaces a checkpoint many times while another
// goroutine watches its path: the path must never be missing, which a
// remove-then-rename would allow.
func TestCommitReplace(t *testing.T) {
	parent := t.TempDir()
	final := filepath.Join(parent, "web")
	tWriteFile(t, filepath.Join(final, "gen"), "0")

	var stop, missing atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if _, err := os.Lstat(final); err != nil {
				missing.Store(true)
			}
		}
	}()

	const rounds = 50
	for i := 1; i <= rounds; i++ {
		s, err := stageCheckpoint(final, true)
		if err != nil {
			t.Fatal(err)
		}
		tWriteFile(t, filepath.Join(s.tmp, "gen"), string(rune('0'+i%10)))
		if err := s.commit(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	<-done

	if missing.Load() {
		t.Error("the checkpoint path was missing during a replace")
	}
	if b, err := os.ReadFile(filepath.Join(final, "gen")); err != nil || string(b) != string(rune('0'+rounds%10)) {
		t.Fatalf("after replacing: gen %q, %v", b, err)
	}
	if names := tListDir(t, parent); !slices.Equal(names, []string{"web"}) {
		t.Fatalf("parent holds %q: the old checkpoint was not removed", names)
	}
	if names := tListDir(t, final); !slices.Equal(names, []string{"gen", ImagesDirName}) {
		t.Fatalf("checkpoint holds %q", names)
	}
}
