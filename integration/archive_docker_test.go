package integration

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr"
)

// archiveArgs is the workload of the archive tests: it holds /tmp/gone
// open and unlinked, so the images describe a regular file too.
var archiveArgs = []string{"deleted", "-file", "/tmp/gone", "-kib", "64", "-interval", "50ms"}

// TestArchiveInspect inspects a real container checkpoint, as a
// directory and as the archive exported from it, and holds both
// against what Docker, the kernel and criu said: the container, the
// dump's CRIU and kernel, its options, the workload's process and open
// file, memory and statistics. Directory and archive must agree.
func TestArchiveInspect(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	c := f.tMigrateRun(t, "inspect", migrateSpec{dockerSpec: dockerSpec{Args: archiveArgs}})
	c.tWaitCount(t, 3)
	ctr, err := f.cli.ContainerInspect(f.ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}

	d := f.tMigrateDocker(t, f.base)
	before := time.Now()
	res, _ := tMigrateCheckpoint(t, d, c)
	after := time.Now()
	path, _ := tMigrateExport(t, d, c)

	start := time.Now()
	fromDir, err := dockercr.InspectCheckpoint(res.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("InspectCheckpoint took %v", time.Since(start).Round(time.Millisecond))
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	start = time.Now()
	fromArchive, err := dockercr.InspectArchive(in)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("InspectArchive took %v", time.Since(start).Round(time.Millisecond))

	want := archiveWant{id: c.ID, name: c.Name, image: ctr.Config.Image, imageID: ctr.Image,
		before: before, after: after, pages: res.Stats.PagesWritten}
	for _, tc := range []struct {
		name string
		info *dockercr.CheckpointInfo
		dir  string
	}{{"dir", fromDir, res.Dir}, {"archive", fromArchive, ""}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.info.Dir != tc.dir {
				t.Errorf("Dir %q, want %q", tc.info.Dir, tc.dir)
			}
			tArchiveCheckInfo(t, tc.info, want)
		})
	}
	t.Run("agree", func(t *testing.T) { tArchiveAgree(t, fromDir, fromArchive) })
}

// archiveWant is what an inspection of the test's checkpoint must say.
type archiveWant struct {
	id, name, image, imageID string
	// before and after bracket the checkpoint call.
	before, after time.Time
	// pages is what the checkpoint call reported written.
	pages uint64
}

func tArchiveCheckInfo(t *testing.T, info *dockercr.CheckpointInfo, want archiveWant) {
	t.Helper()
	m := info.Metadata
	if m == nil {
		t.Fatal("no metadata for a container checkpoint")
	}
	if m.ContainerID != want.id || m.ContainerName != want.name || m.Image != want.image ||
		m.ImageID != want.imageID || m.Checkpoint != migrateCP {
		t.Errorf("container %s %s image %s (%s) checkpoint %q, want %s %s image %s (%s) %q",
			m.ContainerID, m.ContainerName, m.Image, m.ImageID, m.Checkpoint,
			want.id, want.name, want.image, want.imageID, migrateCP)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	if kernel := unix.ByteSliceToString(uts.Release[:]); info.Kernel != kernel ||
		info.CRIUVersion != env.version.String() {
		t.Errorf("criu %q kernel %q, want criu %s on %s", info.CRIUVersion, info.Kernel,
			env.version, kernel)
	}
	if info.Created.Before(want.before) || info.Created.After(want.after) {
		t.Errorf("created %v, the checkpoint ran from %v to %v", info.Created, want.before, want.after)
	}
	tArchiveCheckOptions(t, m.Options)
	tArchiveCheckProcess(t, info)

	if info.MemoryBytes <= 0 || info.ImagesBytes <= info.MemoryBytes {
		t.Errorf("memory %d bytes, images %d bytes", info.MemoryBytes, info.ImagesBytes)
	}
	if info.Stats == nil || info.Stats.PagesWritten == 0 || info.Stats.PagesWritten != want.pages ||
		info.MemoryBytes != int64(want.pages)*int64(os.Getpagesize()) {
		t.Errorf("stats %+v, memory %d bytes; the checkpoint wrote %d pages",
			info.Stats, info.MemoryBytes, want.pages)
	}
}

// tArchiveCheckOptions checks the options a default container dump
// records: soft cgroups, stopped after the dump, and Docker's own
// binds (/etc/hostname and friends) as external mounts.
func tArchiveCheckOptions(t *testing.T, o dockercr.CheckpointOptions) {
	t.Helper()
	if o.ManageCgroups != dockercr.CgroupsSoft || o.LeaveRunning || o.TCPEstablished {
		t.Errorf("options %+v, want soft cgroups, not left running, no TCP", o)
	}
	for _, dest := range []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"} {
		if !slices.ContainsFunc(o.External, func(e string) bool {
			return strings.HasPrefix(e, "mnt["+dest+"]:")
		}) {
			t.Errorf("external mounts %q lack Docker's bind of %s", o.External, dest)
		}
	}
}

// tArchiveCheckProcess checks the workload as the container's init:
// PID 1 in its namespace, its command line, and /tmp/gone open.
func tArchiveCheckProcess(t *testing.T, info *dockercr.CheckpointInfo) {
	t.Helper()
	if len(info.Processes) != 1 {
		t.Fatalf("processes %+v, want the workload alone", info.Processes)
	}
	p := info.Processes[0]
	cmdline := append([]string{"/testworkload"}, archiveArgs...)
	if p.PID != 1 || p.PPID != 0 || p.Comm != "testworkload" || p.Exe != "/testworkload" ||
		p.Cwd != "/" || !slices.Equal(p.Cmdline, cmdline) || len(p.Threads) < 2 {
		t.Errorf("process %+v, want pid 1, testworkload, cmdline %q, Go's threads", p, cmdline)
	}
	if !slices.ContainsFunc(info.Files, func(fi dockercr.FileInfo) bool {
		return fi.PID == 1 && fi.Type == "reg" && fi.Path == "/tmp/gone"
	}) {
		t.Errorf("files %+v lack the deleted /tmp/gone the workload holds", info.Files)
	}
}

// tArchiveAgree fails unless an archive tells what its directory does.
func tArchiveAgree(t *testing.T, dir, archive *dockercr.CheckpointInfo) {
	t.Helper()
	if dir.MemoryBytes != archive.MemoryBytes || dir.ImagesBytes != archive.ImagesBytes {
		t.Errorf("memory %d/%d, images %d/%d bytes (dir/archive)", dir.MemoryBytes,
			archive.MemoryBytes, dir.ImagesBytes, archive.ImagesBytes)
	}
	pairs := []struct {
		what       string
		dir, archv any
	}{
		{"metadata", dir.Metadata, archive.Metadata},
		{"processes", dir.Processes, archive.Processes},
		{"files", dir.Files, archive.Files},
		{"sockets", dir.Sockets, archive.Sockets},
		{"stats", dir.Stats, archive.Stats},
	}
	for _, p := range pairs {
		if !reflect.DeepEqual(p.dir, p.archv) {
			t.Errorf("%s differ:\ndir     %+v\narchive %+v", p.what, p.dir, p.archv)
		}
	}
}

// TestArchiveDamaged imports archives with one byte flipped in the
// middle, once per compression: each is refused with ErrBadArchive,
// and the import base holds no checkpoint after. The intact archive
// imports, so the refusals are the damage's doing, and a second import
// of it does not replace the first.
func TestArchiveDamaged(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	c := f.tMigrateRun(t, "damaged", migrateSpec{dockerSpec: dockerSpec{Args: archiveArgs}})
	c.tWaitCount(t, 3)
	src := f.tMigrateDocker(t, f.base)
	tMigrateCheckpoint(t, src, c)

	for _, comp := range []dockercr.Compression{dockercr.CompressZstd,
		dockercr.CompressGzip, dockercr.CompressNone} {
		t.Run(string(comp), func(t *testing.T) {
			path, _ := tMigrateExport(t, src, c, dockercr.WithCompression(comp))
			damaged := tArchiveFlipMiddle(t, path)

			base := filepath.Join(t.TempDir(), "import")
			dst := f.tMigrateDocker(t, base)
			in, err := os.Open(damaged)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			_, err = dst.Import(f.ctx, in)
			if !errors.Is(err, dockercr.ErrBadArchive) {
				t.Fatalf("import of a damaged %s archive: %v, want ErrBadArchive", comp, err)
			}
			t.Logf("refused: %v", err)
			tArchiveNothingImported(t, base)

			good := filepath.Join(t.TempDir(), "good")
			gd := f.tMigrateDocker(t, good)
			tMigrateImport(t, gd, good, path, c)
			tArchiveImportAgain(t, gd, good, path)
		})
	}
}

// tArchiveImportAgain imports an archive a second time into the base
// that holds it: refused with ErrCheckpointExists, and its staging copy
// removed.
func tArchiveImportAgain(t *testing.T, d *dockercr.Docker, base, path string) {
	t.Helper()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := d.Import(t.Context(), in); !errors.Is(err, dockercr.ErrCheckpointExists) {
		t.Fatalf("second import of one archive: %v, want ErrCheckpointExists", err)
	}
	if left := tEntries(t, filepath.Join(base, ".imports")); len(left) > 0 {
		t.Fatalf("refused second import left %q in %s/.imports", left, base)
	}
}

// tArchiveFlipMiddle writes a copy of the archive at path with the bits
// of its middle byte inverted, and returns the copy's path.
func tArchiveFlipMiddle(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	out := path + ".damaged"
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// tArchiveNothingImported walks a checkpoint base after a refused
// import: at most the empty staging folder may be there.
func tArchiveNothingImported(t *testing.T, base string) {
	t.Helper()
	var found []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == base {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if rel != ".imports" || !d.IsDir() {
			found = append(found, rel)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if len(found) > 0 {
		t.Fatalf("refused import left %q in %s", found, base)
	}
}
