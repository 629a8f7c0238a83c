package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-cr/dockercr"
)

// checkpointctlEnv names the checkpointctl to use; without it the tests
// look in DOCKERCR_PREFIX/bin (where scripts/setup.sh installs it),
// then on PATH.
const checkpointctlEnv = "DOCKERCR_CHECKPOINTCTL"

// tCheckpointctl finds checkpointctl. It skips when there is none,
// unless DOCKERCR_REQUIRE_INTEGRATION=1, which makes that a failure:
// setup installs it.
func tCheckpointctl(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(checkpointctlEnv); p != "" {
		return p
	}
	prefix := os.Getenv("DOCKERCR_PREFIX")
	if prefix == "" {
		prefix = "/opt/dockercr"
	}
	p := filepath.Join(prefix, "bin", "checkpointctl")
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
		return p
	}
	p, err := exec.LookPath("checkpointctl")
	if err == nil {
		return p
	}
	msg := "checkpointctl not in " + filepath.Join(prefix, "bin") + " nor on PATH " +
		"(scripts/setup.sh installs it)"
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s=1: %s", requireEnv, msg)
	}
	t.Skip(msg)
	return ""
}

// tCheckpointctlRun runs checkpointctl with args and fails unless it
// exits 0; it returns stdout and logs everything it printed.
func tCheckpointctlRun(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// containers/storage (v1.59.1 in checkpointctl v1.6.0) decompresses
	// through a `zstd -d` or `pigz -d` it finds on PATH, run from a
	// goroutine that checkpointctl exits without waiting for. The
	// orphan would be adopted by this process, a subreaper, and left a
	// zombie. With an empty PATH it decompresses in process.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(e string) bool {
		return strings.HasPrefix(e, "PATH=")
	}), "PATH="+t.TempDir())
	err := cmd.Run()
	t.Logf("checkpointctl %s:\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("checkpointctl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// checkpointctlInfo is the part of `checkpointctl inspect --format
// json` (v1.6.0) the test reads.
type checkpointctlInfo struct {
	Name    string `json:"container_name"`
	Image   string `json:"image"`
	ID      string `json:"id"`
	Runtime string `json:"runtime"`
	Size    struct {
		Total      int64 `json:"total_size"`
		Memory     int64 `json:"memory_pages_size"`
		RootfsDiff int64 `json:"root_fs_diff_size"`
	} `json:"checkpoint_size"`
	Stats *struct {
		PagesWritten uint64 `json:"pages_written"`
	} `json:"statistics"`
	Tree *struct {
		PID     int    `json:"pid"`
		Command string `json:"command"`
	} `json:"process_tree"`
}

// TestCheckpointctl reads archives of a real container checkpoint,
// zstd, gzip and uncompressed, with checkpointctl: `show` must name the
// container, its image and ID; `inspect --all` must agree with the
// library on memory, statistics and the process tree.
func TestCheckpointctl(t *testing.T) {
	tDockerRequire(t)
	bin := tCheckpointctl(t)
	t.Parallel()
	f := tDockerFixture(t)
	c := f.tMigrateRun(t, "ctl", migrateSpec{dockerSpec: dockerSpec{
		Args: []string{"counter", "-interval", "50ms"}}})
	c.tWaitCount(t, 3)
	ctr, err := f.cli.ContainerInspect(f.ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	d := f.tMigrateDocker(t, f.base)
	res, _ := tMigrateCheckpoint(t, d, c)
	info, err := dockercr.InspectCheckpoint(res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	diff, err := os.Stat(filepath.Join(res.Dir, dockercr.RootfsDiffName))
	if err != nil {
		t.Fatal(err)
	}

	for _, comp := range []dockercr.Compression{dockercr.CompressZstd,
		dockercr.CompressGzip, dockercr.CompressNone} {
		t.Run(string(comp), func(t *testing.T) {
			path, _ := tMigrateExport(t, d, c, dockercr.WithCompression(comp))
			show := tCheckpointctlRun(t, bin, "show", path)
			for _, want := range []string{c.Name, ctr.Config.Image, c.ID[:12]} {
				if !strings.Contains(show, want) {
					t.Errorf("checkpointctl show does not mention %q", want)
				}
			}
			tCheckpointctlRun(t, bin, "inspect", path)

			out := tCheckpointctlRun(t, bin, "inspect", "--all", "--format", "json", path)
			tCheckpointctlCheckJSON(t, out, c, ctr.Config.Image, info, diff.Size())
		})
	}
}

// tCheckpointctlCheckJSON holds `checkpointctl inspect --all --format
// json` against the container and the library's inspection of the
// checkpoint it was exported from.
func tCheckpointctlCheckJSON(t *testing.T, out string, c *dockerCtr, image string,
	info *dockercr.CheckpointInfo, diffSize int64) {
	t.Helper()
	var got []checkpointctlInfo
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect --format json: %v, %d entries", err, len(got))
	}
	g := got[0]
	if g.Name != c.Name || g.Image != image || g.ID != c.ID || g.Runtime != "runc" {
		t.Errorf("checkpointctl sees %s image %s id %s runtime %s", g.Name, g.Image, g.ID, g.Runtime)
	}
	if g.Size.Memory != info.MemoryBytes || g.Size.RootfsDiff != diffSize {
		t.Errorf("checkpointctl sizes %+v; memory %d, rootfs diff %d bytes",
			g.Size, info.MemoryBytes, diffSize)
	}
	if g.Stats == nil || g.Stats.PagesWritten != info.Stats.PagesWritten {
		t.Errorf("checkpointctl stats %+v, the dump wrote %d pages",
			g.Stats, info.Stats.PagesWritten)
	}
	if g.Tree == nil || g.Tree.PID != 1 || g.Tree.Command != "testworkload" {
		t.Errorf("checkpointctl process tree %+v, want pid 1 testworkload", g.Tree)
	}
}
