package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/docker-cr/dockercr"
)

func TestPrune(t *testing.T) {
	tests := []struct {
		name        string
		keep        int
		wantRemoved []string
		wantLeft    []string
	}{
		{"keeps the newest two", 2,
			[]string{"auto-20260101T000000.000Z", "auto-20260101T000001.000Z"},
			[]string{"auto-20260101T000002.000Z", "auto-20260102T000000.000Z"}},
		{"nothing beyond keep", 4, nil, []string{"auto-20260101T000000.000Z",
			"auto-20260101T000001.000Z", "auto-20260101T000002.000Z", "auto-20260102T000000.000Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, outside := tLayout(t)

			removed, err := prune(tDocker(t, base), "c1", tt.keep)
			if err != nil {
				t.Fatalf("prune: %v", err)
			}
			if !slices.Equal(removed, tt.wantRemoved) {
				t.Errorf("removed %q, want %q", removed, tt.wantRemoved)
			}
			for _, n := range tt.wantLeft {
				tRequireExists(t, filepath.Join(base, "c1", n))
			}
			for _, n := range []string{"checkpoint1", ".auto-20250101T000000.000Z.failed",
				"auto-20250101T000000.000Z", "auto-20250102T000000.000Z", "auto-bad"} {
				tRequireExists(t, filepath.Join(base, "c1", n))
			}
			tRequireExists(t, filepath.Join(outside, "checkpoint.json"))
		})
	}
}

func TestPruneRefusesSymlinkedContainerDir(t *testing.T) {
	base, outside := tLayout(t)
	if err := os.Symlink(filepath.Join(base, "c1"), filepath.Join(base, "c2")); err != nil {
		t.Fatal(err)
	}

	if _, err := prune(tDocker(t, base), "c2", 1); err == nil {
		t.Fatal("prune through a symlinked container dir succeeded")
	}
	tRequireExists(t, filepath.Join(base, "c1", "auto-20260101T000000.000Z"))
	tRequireExists(t, filepath.Join(outside, "checkpoint.json"))
}

// tDocker is a Docker integration on base; listing and removing
// checkpoints talk to no daemon.
func tDocker(t *testing.T, base string) *dockercr.Docker {
	t.Helper()
	cp, err := dockercr.New()
	if err != nil {
		t.Fatal(err)
	}
	d, err := dockercr.NewDocker(cp, dockercr.WithCheckpointBase(base))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// tLayout makes base/c1 with four checkpoints of this program, one made
// by hand, a failed dump, one without metadata, a symlink to a
// checkpoint outside base, and a badly named one. It returns base and
// the outside directory.
func tLayout(t *testing.T) (base, outside string) {
	t.Helper()
	base, outside = t.TempDir(), t.TempDir()
	for i, n := range []string{"auto-20260101T000000.000Z", "auto-20260101T000001.000Z",
		"auto-20260101T000002.000Z", "auto-20260102T000000.000Z", "checkpoint1",
		".auto-20250101T000000.000Z.failed", "auto-bad"} {
		tCheckpoint(t, filepath.Join(base, "c1", n), n, i)
	}
	if err := os.MkdirAll(filepath.Join(base, "c1", "auto-20250101T000000.000Z"), 0o700); err != nil {
		t.Fatal(err)
	}
	tCheckpoint(t, outside, "auto-20250102T000000.000Z", 0)
	if err := os.Symlink(outside, filepath.Join(base, "c1", "auto-20250102T000000.000Z")); err != nil {
		t.Fatal(err)
	}
	return base, outside
}

// tCheckpoint writes the metadata of a checkpoint called name, the i-th
// made.
func tCheckpoint(t *testing.T, dir, name string, i int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	meta := dockercr.Metadata{Format: 1, ContainerName: "c1", Checkpoint: name,
		Created: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)}
	b, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, dockercr.MetadataName), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func tRequireExists(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("%s is gone: %v", path, err)
	}
}
