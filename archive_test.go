package dockercr

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/docker-cr/dockercr/internal/ckptar"
)

// tArRandom returns n random bytes.
func tArRandom(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// tArMetadata is the metadata of the synthetic checkpoints.
func tArMetadata() *Metadata {
	return &Metadata{
		Format:        metadataFormat,
		ContainerID:   "4f2a9c0e51b7d3a8c6e1f0b9a2d4c7e5f8a1b3c6d9e2f5a8b1c4d7e0f3a6b9c2",
		ContainerName: "web",
		Image:         "dockercr-busybox:dev",
		ImageID:       "sha256:0123456789abcdef",
		Checkpoint:    "cp1",
		Created:       time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		CRIUVersion:   "4.2.1",
		Config: ContainerConfig{Cmd: []string{"sleep", "1000"},
			Env: []string{"TOKEN=not-for-spec-dump"}, WorkingDir: "/srv"},
	}
}

// tArCheckpoint writes a container checkpoint in a new directory: the
// real CRIU images recorded in testdata/checkpoints/container (export
// and import validate them), an extra pages file of pagesSize random
// bytes that no pagemap refers to (validation leaves it alone; it gives
// the archive bulk), metadata, CRIU's log and statistics, a rootfs diff
// and a volume.
func tArCheckpoint(t testing.TB, pagesSize int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cp1")
	files := map[string][]byte{
		"dump.log":                []byte("(00.000001) Dumping finished successfully\n"),
		"stats-dump":              tArRandom(t, 32),
		"rootfs-diff.tar":         tArRandom(t, 4096),
		"deleted.files":           []byte(`["/etc/motd"]`),
		"images/pages-99.img":     tArRandom(t, pagesSize),
		"images/descriptors.json": []byte(`["/dev/null","pipe:[1]","pipe:[2]"]`),
		"volumes/data.tar":        tArRandom(t, 2048),
	}
	recorded := filepath.Join("testdata", "checkpoints", "container", "images")
	entries, err := os.ReadDir(recorded)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(recorded, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := files["images/"+e.Name()]; !ok {
			files["images/"+e.Name()] = b
		}
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeMetadata(dir, tArMetadata()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tArExport exports dir and returns the archive.
func tArExport(t testing.TB, dir string, opts ...ArchiveOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := ExportCheckpoint(context.Background(), dir, &buf, opts...); err != nil {
		t.Fatalf("ExportCheckpoint: %v", err)
	}
	return buf.Bytes()
}

// tArList returns the names in dir, sorted.
func tArList(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// tArFiles maps the relative path of every regular file under dir to
// its content, and fails on anything that is neither a 0600 file nor a
// 0700 directory when strict.
func tArFiles(t testing.TB, dir string, strict bool) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			if strict && mode.Perm() != 0o700 {
				t.Errorf("%s: mode %v, want 0700", p, mode.Perm())
			}
			return nil
		case !mode.IsRegular() || (strict && mode.Perm() != 0o600):
			t.Errorf("%s: mode %v, want a regular 0600 file", p, mode)
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// tArDecompress undoes the compression of an archive with the
// compression libraries directly.
func tArDecompress(t testing.TB, data []byte) ([]byte, error) {
	t.Helper()
	var r io.Reader
	switch {
	case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		d, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		r = d
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		d, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = d
	default:
		return data, nil
	}
	return io.ReadAll(r)
}

// tArEntries reads the entries of an archive with archive/tar, in order.
func tArEntries(t testing.TB, data []byte) ([]string, map[string][]byte, error) {
	t.Helper()
	plain, err := tArDecompress(t, data)
	if err != nil {
		return nil, nil, err
	}
	tr := tar.NewReader(bytes.NewReader(plain))
	var names []string
	bodies := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, bodies, nil
		}
		if err != nil {
			return nil, nil, err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, nil, err
		}
		names = append(names, hdr.Name)
		bodies[hdr.Name] = b
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	magics := map[Compression][]byte{
		CompressZstd: {0x28, 0xb5, 0x2f, 0xfd},
		CompressGzip: {0x1f, 0x8b},
		CompressNone: []byte("checkpoint.json"),
	}
	for _, c := range []Compression{CompressZstd, CompressGzip, CompressNone} {
		t.Run(string(c), func(t *testing.T) {
			src := tArCheckpoint(t, 1<<20)
			var buf bytes.Buffer
			exp, err := ExportCheckpoint(context.Background(), src, &buf, WithCompression(c))
			if err != nil {
				t.Fatalf("ExportCheckpoint: %v", err)
			}
			if !bytes.HasPrefix(buf.Bytes(), magics[c]) {
				t.Errorf("archive starts % x, want %s's % x", buf.Bytes()[:4], c, magics[c])
			}
			if exp.Compressed != int64(buf.Len()) || exp.Compression != c {
				t.Errorf("export summary %+v, archive of %d bytes", exp, buf.Len())
			}

			parent := t.TempDir()
			dst := filepath.Join(parent, "imported")
			imp, err := ImportCheckpoint(context.Background(), bytes.NewReader(buf.Bytes()), dst)
			if err != nil {
				t.Fatalf("ImportCheckpoint: %v", err)
			}
			if got := tArList(t, parent); !slices.Equal(got, []string{"imported"}) {
				t.Errorf("parent holds %q, want only the checkpoint", got)
			}
			if imp.Files != exp.Files || imp.Bytes != exp.Bytes || imp.Compression != c ||
				imp.Compressed != int64(buf.Len()) {
				t.Errorf("import summary %+v, export summary %+v", imp, exp)
			}
			if imp.Metadata == nil || imp.Metadata.ContainerName != "web" ||
				!imp.Metadata.Created.Equal(tArMetadata().Created) {
				t.Errorf("imported metadata %+v", imp.Metadata)
			}

			want, got := tArFiles(t, src, false), tArFiles(t, dst, true)
			if len(got) != len(want) {
				t.Errorf("imported %d files, exported %d", len(got), len(want))
			}
			for name, b := range want {
				if !bytes.Equal(got[name], b) {
					t.Errorf("%s: imported content differs (%d vs %d bytes)", name,
						len(got[name]), len(b))
				}
			}
		})
	}
}

// The archive follows the layout: metadata first, images with pages
// last among them, the manifest at the end, and config.dump and
// spec.dump as checkpointctl reads them.
func TestArchiveLayout(t *testing.T) {
	data := tArExport(t, tArCheckpoint(t, 8192))
	names, bodies, err := tArEntries(t, data)
	if err != nil {
		t.Fatal(err)
	}
	// The recorded images sit between inventory.img and the pages
	// files, in name order.
	var images []string
	recorded, err := os.ReadDir(filepath.Join("testdata", "checkpoints", "container", "images"))
	tArNoErr(t, err)
	for _, e := range recorded {
		if n := e.Name(); n != "inventory.img" && !strings.HasPrefix(n, "pages-") {
			images = append(images, "checkpoint/"+n)
		}
	}
	want := []string{
		"checkpoint.json", "config.dump", "spec.dump", "dump.log", "stats-dump",
		"deleted.files", "checkpoint/", "checkpoint/inventory.img",
	}
	want = append(want, images...)
	want = append(want, "checkpoint/pages-1.img", "checkpoint/pages-2.img", "checkpoint/pages-99.img",
		"rootfs-diff.tar", "volumes/", "volumes/data.tar", "dockercr.sums")
	if !slices.Equal(names, want) {
		t.Errorf("entries\n got %q\nwant %q", names, want)
	}

	var config struct {
		ID, Name, RootfsImageName, Runtime string
		CheckpointedTime                   time.Time
	}
	if err := json.Unmarshal(bodies["config.dump"], &config); err != nil {
		t.Fatal(err)
	}
	m := tArMetadata()
	if config.ID != m.ContainerID || config.Name != "web" || config.RootfsImageName != m.Image ||
		config.Runtime != "runc" || !config.CheckpointedTime.Equal(m.Created) {
		t.Errorf("config.dump %+v does not match the metadata", config)
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
		Process     struct {
			Args []string `json:"args"`
			Cwd  string   `json:"cwd"`
		} `json:"process"`
	}
	if err := json.Unmarshal(bodies["spec.dump"], &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Annotations["io.container.manager"] != "dockercr" ||
		!slices.Equal(spec.Process.Args, m.Config.Cmd) || spec.Process.Cwd != "/srv" {
		t.Errorf("spec.dump %+v", spec)
	}
	if bytes.Contains(bodies["spec.dump"], []byte("not-for-spec-dump")) {
		t.Error("spec.dump carries the container's environment")
	}
}

// Memory of zero pages is what compresses most; the default limits
// still take what ExportCheckpoint makes of it.
func TestImportZeroPages(t *testing.T) {
	src := tArCheckpoint(t, 0)
	// pages-99.img belongs to no pagemap, so validation takes any size.
	pages := filepath.Join(src, "images", "pages-99.img")
	tArNoErr(t, os.WriteFile(pages, make([]byte, 64<<20), 0o600))
	data := tArExport(t, src)
	if ratio := float64(64<<20) / float64(len(data)); ratio < 1000 {
		t.Fatalf("zero pages compressed only %.0f to 1; the case tests nothing", ratio)
	}
	_, err := ImportCheckpoint(context.Background(), bytes.NewReader(data),
		filepath.Join(t.TempDir(), "cp"))
	if err != nil {
		t.Errorf("ImportCheckpoint: %v", err)
	}
}

func TestExportWithoutRootfs(t *testing.T) {
	data := tArExport(t, tArCheckpoint(t, 4096), WithoutRootfs())
	names, _, err := tArEntries(t, data)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"rootfs-diff.tar", "deleted.files"} {
		if slices.Contains(names, n) {
			t.Errorf("%s exported despite WithoutRootfs", n)
		}
	}
	dst := filepath.Join(t.TempDir(), "cp")
	if _, err := ImportCheckpoint(context.Background(), bytes.NewReader(data), dst); err != nil {
		t.Fatalf("ImportCheckpoint: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "rootfs-diff.tar")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("imported rootfs-diff.tar: %v", err)
	}
}

func TestExportRefuses(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   error  // nil: any error
		text   string // in the message
	}{
		{"symlink in images", func(t *testing.T, dir string) {
			tArNoErr(t, os.Symlink("/etc/passwd", filepath.Join(dir, "images", "x.img")))
		}, nil, "symbolic link"},
		{"fifo", func(t *testing.T, dir string) {
			tArNoErr(t, syscall.Mkfifo(filepath.Join(dir, "images", "f.img"), 0o600))
		}, nil, "named pipe"},
		{"unknown file", func(t *testing.T, dir string) {
			tArNoErr(t, os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600))
		}, nil, "notes.txt"},
		{"no metadata", func(t *testing.T, dir string) {
			tArNoErr(t, os.Remove(filepath.Join(dir, MetadataName)))
		}, ErrCheckpointNotFound, MetadataName},
		{"no inventory", func(t *testing.T, dir string) {
			tArNoErr(t, os.Remove(filepath.Join(dir, "images", "inventory.img")))
		}, ErrCheckpointNotFound, "inventory.img"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tArCheckpoint(t, 4096)
			tt.change(t, dir)
			var buf bytes.Buffer
			_, err := ExportCheckpoint(context.Background(), dir, &buf)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) ||
				!strings.Contains(err.Error(), tt.text) {
				t.Errorf("ExportCheckpoint: %v, want %v naming %q", err, tt.want, tt.text)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written before the refusal", buf.Len())
			}
		})
	}
}

func tArNoErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tArEntry is one entry of a hand-built archive.
type tArEntry struct {
	hdr  tar.Header
	data []byte
}

func tArFile(name string, data []byte) tArEntry {
	return tArEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600,
		Size: int64(len(data))}, data: data}
}

// tArValid returns the entries of a small complete archive, without its
// manifest.
func tArValid(t testing.TB) []tArEntry {
	t.Helper()
	meta, err := json.Marshal(tArMetadata())
	tArNoErr(t, err)
	return []tArEntry{
		tArFile("checkpoint.json", meta),
		{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "checkpoint/", Mode: 0o700}},
		tArFile("checkpoint/inventory.img", tArRandom(t, 48)),
		tArFile("checkpoint/pstree.img", tArRandom(t, 64)),
		tArFile("checkpoint/pages-1.img", tArRandom(t, 32<<10)),
	}
}

// tArManifest returns the dockercr.sums entry for the regular files of
// es, built from the format's description in COMMON.md.
func tArManifest(t testing.TB, es []tArEntry) tArEntry {
	t.Helper()
	type file struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	files := []file{}
	for _, e := range es {
		if e.hdr.Typeflag == tar.TypeReg {
			sum := sha256.Sum256(e.data)
			files = append(files, file{e.hdr.Name, int64(len(e.data)), hex.EncodeToString(sum[:])})
		}
	}
	b, err := json.Marshal(map[string]any{"format": 1, "files": files})
	tArNoErr(t, err)
	return tArFile("dockercr.sums", b)
}

// tArSealed appends the manifest of es.
func tArSealed(t testing.TB, es []tArEntry) []tArEntry {
	t.Helper()
	return append(es, tArManifest(t, es))
}

// tArTar writes es as a tar stream, compressed with c.
func tArTar(t testing.TB, c Compression, es []tArEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch c {
	case CompressZstd:
		// The strongest level packs zeros as a zstd bomb would.
		w, err = zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	case CompressGzip:
		w, err = gzip.NewWriterLevel(&buf, gzip.BestCompression)
	default:
		w = nopWriteCloser{&buf}
	}
	tArNoErr(t, err)
	tw := tar.NewWriter(w)
	for _, e := range es {
		hdr := e.hdr
		tArNoErr(t, tw.WriteHeader(&hdr))
		_, err := tw.Write(e.data)
		tArNoErr(t, err)
	}
	tArNoErr(t, tw.Close())
	tArNoErr(t, w.Close())
	return buf.Bytes()
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// tArWith is a plain tar archive: the valid entries, e, the manifest.
func tArWith(t testing.TB, e tArEntry) []byte {
	t.Helper()
	return tArTar(t, CompressNone, tArSealed(t, append(tArValid(t), e)))
}

func TestImportRejects(t *testing.T) {
	tests := []struct {
		name   string
		build  func(t *testing.T) []byte
		limits ArchiveLimits
		entry  string // quoted in the error; "" to check reason only
		reason string
	}{
		{"symlink to /etc/passwd", func(t *testing.T) []byte {
			return tArWith(t, tArEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink,
				Name: "checkpoint/x", Linkname: "/etc/passwd"}})
		}, ArchiveLimits{}, "checkpoint/x", "symbolic link"},
		{"hard link", func(t *testing.T) []byte {
			return tArWith(t, tArEntry{hdr: tar.Header{Typeflag: tar.TypeLink,
				Name: "checkpoint/core-1.img", Linkname: "checkpoint.json"}})
		}, ArchiveLimits{}, "checkpoint/core-1.img", "hard link"},
		{"char device", func(t *testing.T) []byte {
			return tArWith(t, tArEntry{hdr: tar.Header{Typeflag: tar.TypeChar,
				Name: "checkpoint/tty.img", Devmajor: 5, Devminor: 0}})
		}, ArchiveLimits{}, "checkpoint/tty.img", "character device"},
		{"block device", func(t *testing.T) []byte {
			return tArWith(t, tArEntry{hdr: tar.Header{Typeflag: tar.TypeBlock,
				Name: "checkpoint/sda.img", Devmajor: 8}})
		}, ArchiveLimits{}, "checkpoint/sda.img", "block device"},
		{"fifo", func(t *testing.T) []byte {
			return tArWith(t, tArEntry{hdr: tar.Header{Typeflag: tar.TypeFifo,
				Name: "restore.log"}})
		}, ArchiveLimits{}, "restore.log", "named pipe"},
		{"dot dot", func(t *testing.T) []byte {
			return tArWith(t, tArFile("../evil", []byte("#!/bin/sh\n")))
		}, ArchiveLimits{}, "../evil", `".."`},
		{"absolute", func(t *testing.T) []byte {
			return tArWith(t, tArFile("/abs", []byte("x")))
		}, ArchiveLimits{}, "/abs", "absolute"},
		{"escape from checkpoint/", func(t *testing.T) []byte {
			return tArWith(t, tArFile("checkpoint/../../x", []byte("x")))
		}, ArchiveLimits{}, "checkpoint/../../x", `".."`},
		{"name outside the layout", func(t *testing.T) []byte {
			return tArWith(t, tArFile("etc/cron.d/evil", []byte("x")))
		}, ArchiveLimits{}, "etc/cron.d/evil", "not part of the checkpoint layout"},
		{"duplicate", func(t *testing.T) []byte {
			return tArWith(t, tArFile("checkpoint/pstree.img", []byte("second")))
		}, ArchiveLimits{}, "checkpoint/pstree.img", "twice"},
		{"flipped byte", func(t *testing.T) []byte {
			es := tArValid(t)
			man := tArManifest(t, es)
			es[4].data = bytes.Clone(es[4].data)
			es[4].data[1234] ^= 0x01
			return tArTar(t, CompressZstd, append(es, man))
		}, ArchiveLimits{}, "checkpoint/pages-1.img", "checksum mismatch"},
		{"no manifest", func(t *testing.T) []byte {
			return tArTar(t, CompressNone, tArValid(t))
		}, ArchiveLimits{}, "dockercr.sums", "missing"},
		{"manifest not last", func(t *testing.T) []byte {
			es := tArSealed(t, tArValid(t))
			return tArTar(t, CompressNone, append(es, tArFile("dump.log", []byte("late"))))
		}, ArchiveLimits{}, "dump.log", "follows the manifest"},
		{"file missing from manifest", func(t *testing.T) []byte {
			es := tArValid(t)
			man := tArManifest(t, es)
			return tArTar(t, CompressNone, append(es, tArFile("dump.log", []byte("x")), man))
		}, ArchiveLimits{}, "dump.log", "not listed in the manifest"},
		{"manifest lists a missing file", func(t *testing.T) []byte {
			es := tArValid(t)
			man := tArManifest(t, append(slices.Clone(es), tArFile("dump.log", []byte("x"))))
			return tArTar(t, CompressNone, append(es, man))
		}, ArchiveLimits{}, "dump.log", "not in the archive"},
		{"no checkpoint.json", func(t *testing.T) []byte {
			return tArTar(t, CompressNone, tArSealed(t, tArValid(t)[1:]))
		}, ArchiveLimits{}, "checkpoint.json", "missing"},
		{"no inventory", func(t *testing.T) []byte {
			return tArTar(t, CompressNone, tArSealed(t, slices.Delete(tArValid(t), 2, 3)))
		}, ArchiveLimits{}, "checkpoint/inventory.img", "missing"},
		{"bad checkpoint.json", func(t *testing.T) []byte {
			es := tArValid(t)
			es[0] = tArFile("checkpoint.json", []byte(`{"format":`))
			return tArTar(t, CompressNone, tArSealed(t, es))
		}, ArchiveLimits{}, "checkpoint.json", "unexpected end of JSON"},
		{"zstd tar bomb", func(t *testing.T) []byte {
			es := tArValid(t)
			es[4] = tArFile("checkpoint/pages-1.img", make([]byte, 48<<20))
			return tArTar(t, CompressZstd, tArSealed(t, es))
		}, ArchiveLimits{}, "checkpoint/pages-1.img", "expands more than 10000 times"},
		{"gzip tar bomb", func(t *testing.T) []byte {
			es := tArValid(t)
			es[4] = tArFile("checkpoint/pages-1.img", make([]byte, 32<<20))
			return tArTar(t, CompressGzip, tArSealed(t, es))
		}, ArchiveLimits{MaxExpansionRatio: 20}, "checkpoint/pages-1.img", "expands more than 20 times"},
		{"file over the limit", func(t *testing.T) []byte {
			return tArTar(t, CompressNone, tArSealed(t, tArValid(t)))
		}, ArchiveLimits{MaxFileBytes: 16 << 10}, "checkpoint/pages-1.img", "per file"},
		{"total over the limit", func(t *testing.T) []byte {
			return tArTar(t, CompressNone, tArSealed(t, tArValid(t)))
		}, ArchiveLimits{MaxTotalBytes: 20 << 10}, "checkpoint/pages-1.img", "limit of 20480 bytes"},
		{"too many files", func(t *testing.T) []byte {
			return tArTar(t, CompressNone, tArSealed(t, tArValid(t)))
		}, ArchiveLimits{MaxFiles: 4}, "checkpoint/pages-1.img", "limit of 4 entries"},
		{"truncated tar", func(t *testing.T) []byte {
			// The filler pages file is most of the archive, so half
			// the bytes end inside it.
			b := tArExport(t, tArCheckpoint(t, 4<<20), WithCompression(CompressNone))
			return b[:len(b)/2]
		}, ArchiveLimits{}, "checkpoint/pages-99.img", "truncated"},
		{"truncated zstd", func(t *testing.T) []byte {
			b := tArExport(t, tArCheckpoint(t, 1<<20))
			return b[:len(b)*3/4]
		}, ArchiveLimits{}, "", "truncated"},
		{"truncated gzip", func(t *testing.T) []byte {
			b := tArExport(t, tArCheckpoint(t, 1<<20), WithCompression(CompressGzip))
			return b[:len(b)-1]
		}, ArchiveLimits{}, "", "truncated"},
		{"garbage", func(t *testing.T) []byte {
			return tArRandom(t, 4096)
		}, ArchiveLimits{}, "", "corrupt stream"},
		{"empty", func(t *testing.T) []byte { return nil }, ArchiveLimits{}, "", "empty archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.build(t)
			parent := t.TempDir()
			_, err := ImportCheckpoint(context.Background(), bytes.NewReader(data),
				filepath.Join(parent, "cp"), WithArchiveLimits(tt.limits))
			if !errors.Is(err, ErrBadArchive) {
				t.Fatalf("ImportCheckpoint: %v, want ErrBadArchive", err)
			}
			if !strings.Contains(err.Error(), tt.reason) ||
				(tt.entry != "" && !strings.Contains(err.Error(), strconv.Quote(tt.entry))) {
				t.Errorf("ImportCheckpoint: %v, want entry %q and %q", err, tt.entry, tt.reason)
			}
			if left := tArList(t, parent); len(left) != 0 {
				t.Errorf("left behind in the parent: %q", left)
			}
		})
	}
}

func TestImportRefusesTarget(t *testing.T) {
	data := tArTar(t, CompressNone, tArSealed(t, tArValid(t)))
	tests := []struct {
		name    string
		prepare func(t *testing.T, parent string) string // returns dir
		want    error
		keep    []string // what the parent must hold afterwards
	}{
		{"exists", func(t *testing.T, parent string) string {
			tArNoErr(t, os.Mkdir(filepath.Join(parent, "cp"), 0o700))
			return filepath.Join(parent, "cp")
		}, ErrCheckpointExists, []string{"cp"}},
		{"dangling symlink", func(t *testing.T, parent string) string {
			tArNoErr(t, os.Symlink("/nonexistent", filepath.Join(parent, "cp")))
			return filepath.Join(parent, "cp")
		}, ErrCheckpointExists, []string{"cp"}},
		{"hidden name", func(t *testing.T, parent string) string {
			return filepath.Join(parent, ".cp")
		}, ErrInvalidName, nil},
		{"dot dot", func(t *testing.T, parent string) string {
			return filepath.Join(parent, "x") + "/.."
		}, ErrInvalidName, nil},
		{"parent writable by others", func(t *testing.T, parent string) string {
			shared := filepath.Join(parent, "shared")
			tArNoErr(t, os.Mkdir(shared, 0o700))
			tArNoErr(t, os.Chmod(shared, 0o777))
			return filepath.Join(shared, "cp")
		}, ErrUnsafeDir, []string{"shared"}},
		{"parent is a symlink", func(t *testing.T, parent string) string {
			tArNoErr(t, os.Mkdir(filepath.Join(parent, "real"), 0o700))
			tArNoErr(t, os.Symlink("real", filepath.Join(parent, "link")))
			return filepath.Join(parent, "link", "cp")
		}, ErrUnsafeDir, []string{"link", "real"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := tt.prepare(t, parent)
			_, err := ImportCheckpoint(context.Background(), bytes.NewReader(data), dir)
			if !errors.Is(err, tt.want) {
				t.Errorf("ImportCheckpoint: %v, want %v", err, tt.want)
			}
			if got := tArList(t, parent); !slices.Equal(got, tt.keep) {
				t.Errorf("parent holds %q, want %q", got, tt.keep)
			}
		})
	}
}

// A directory that appears while the archive is read is not replaced:
// the import fails with ErrCheckpointExists and removes its staging.
func TestImportRaceForTarget(t *testing.T) {
	data := tArExport(t, tArCheckpoint(t, 1<<20))
	parent := t.TempDir()
	dir := filepath.Join(parent, "cp")
	made := false
	_, err := ImportCheckpoint(context.Background(), bytes.NewReader(data), dir,
		WithProgress(func(Progress) {
			if !made {
				made = true
				tArNoErr(t, os.Mkdir(dir, 0o700))
			}
		}))
	if !errors.Is(err, ErrCheckpointExists) {
		t.Errorf("ImportCheckpoint: %v, want ErrCheckpointExists", err)
	}
	if got := tArList(t, parent); !slices.Equal(got, []string{"cp"}) {
		t.Errorf("parent holds %q, want only the other party's cp", got)
	}
	if got := tArList(t, dir); len(got) != 0 {
		t.Errorf("the other party's cp was written into: %q", got)
	}
}

func TestArchiveProgress(t *testing.T) {
	src := tArCheckpoint(t, 4<<20)
	archive := filepath.Join(t.TempDir(), "cp.tar.zst")
	f, err := os.OpenFile(archive, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	tArNoErr(t, err)
	defer f.Close()

	var exp []Progress
	sum, err := ExportCheckpoint(context.Background(), src, f,
		WithProgress(func(p Progress) { exp = append(exp, p) }))
	tArNoErr(t, err)
	tArCheckProgress(t, "export", exp, sum.Bytes)

	_, err = f.Seek(0, io.SeekStart)
	tArNoErr(t, err)
	var imp []Progress
	_, err = ImportCheckpoint(context.Background(), f, filepath.Join(t.TempDir(), "cp"),
		WithProgress(func(p Progress) { imp = append(imp, p) }))
	tArNoErr(t, err)
	tArCheckProgress(t, "import", imp, sum.Compressed)
}

// tArCheckProgress checks that reports never go back, keep one total,
// and end at Done == Total == total.
func tArCheckProgress(t *testing.T, what string, ps []Progress, total int64) {
	t.Helper()
	if len(ps) == 0 {
		t.Fatalf("%s: no progress reported", what)
	}
	for i, p := range ps {
		if p.Total != total || p.Done > p.Total || (i > 0 && p.Done < ps[i-1].Done) {
			t.Errorf("%s: report %d %+v after %+v, total %d", what, i, p, ps[max(i-1, 0)], total)
		}
	}
	if last := ps[len(ps)-1]; last.Done != total {
		t.Errorf("%s: last report %+v, want Done = %d", what, last, total)
	}
}

// slowWriter takes delay per Write, like a slow network.
type slowWriter struct{ delay time.Duration }

func (w slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	return len(p), nil
}

// slowReader hands out at most 64 KiB per Read, after delay.
type slowReader struct {
	r     io.Reader
	delay time.Duration
}

func (r slowReader) Read(p []byte) (int, error) {
	time.Sleep(r.delay)
	return r.r.Read(p[:min(len(p), 64<<10)])
}

// A cancelled export or import returns soon after the cancel, although
// the whole transfer would take seconds, and an import leaves nothing.
func TestArchiveCancel(t *testing.T) {
	src := tArCheckpoint(t, 16<<20)
	data := tArExport(t, src, WithCompression(CompressNone))
	tests := []struct {
		name string
		run  func(ctx context.Context, parent string) error
	}{
		{"export", func(ctx context.Context, _ string) error {
			// 16 writes of 1 MiB at 200 ms: over 3 s uncancelled.
			_, err := ExportCheckpoint(ctx, src, slowWriter{200 * time.Millisecond},
				WithCompression(CompressNone))
			return err
		}},
		{"import", func(ctx context.Context, parent string) error {
			// 256 reads of 64 KiB at 20 ms: over 5 s uncancelled.
			r := slowReader{bytes.NewReader(data), 20 * time.Millisecond}
			_, err := ImportCheckpoint(ctx, r, filepath.Join(parent, "cp"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			err := tt.run(ctx, parent)
			took := time.Since(start)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v, want context.Canceled", tt.name, err)
			}
			if took > 1500*time.Millisecond {
				t.Errorf("%s returned %v after the start, 100 ms after it was cancelled", tt.name, took)
			}
			if left := tArList(t, parent); len(left) != 0 {
				t.Errorf("left behind: %q", left)
			}
		})
		t.Run(tt.name+" cancelled before", func(t *testing.T) {
			parent := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := tt.run(ctx, parent); !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v, want context.Canceled", tt.name, err)
			}
			if left := tArList(t, parent); len(left) != 0 {
				t.Errorf("left behind: %q", left)
			}
		})
	}
}

func TestArchiveOptionsRefused(t *testing.T) {
	tests := []struct {
		name string
		opt  ArchiveOption
	}{
		{"unknown compression", WithCompression("lz4")},
		{"nil progress", WithProgress(nil)},
		{"negative files", WithArchiveLimits(ArchiveLimits{MaxFiles: -1})},
		{"negative ratio", WithArchiveLimits(ArchiveLimits{MaxExpansionRatio: -2})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newArchiveConfig([]ArchiveOption{tt.opt}); err == nil {
				t.Error("option accepted")
			}
		})
	}
}

// FuzzImportCheckpoint feeds arbitrary bytes to ImportCheckpoint: it
// must not panic, must leave nothing in the parent directory when it
// fails, and may succeed only if the archive's last entry is a manifest
// that matches every file it created.
func FuzzImportCheckpoint(f *testing.F) {
	src := tArCheckpoint(f, 2048)
	for _, c := range []Compression{CompressNone, CompressZstd, CompressGzip} {
		f.Add(tArExport(f, src, WithCompression(c)))
	}
	f.Add(tArWith(f, tArEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink,
		Name: "checkpoint/x", Linkname: "/etc/passwd"}}))
	f.Add([]byte{})

	limits := WithArchiveLimits(ArchiveLimits{MaxFiles: 64, MaxTotalBytes: 4 << 20,
		MaxFileBytes: 2 << 20})
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "cp")
		_, err := ImportCheckpoint(context.Background(), bytes.NewReader(data), dir, limits)
		left := tArList(t, parent)
		if err != nil {
			if len(left) != 0 {
				t.Fatalf("failed (%v) and left %q", err, left)
			}
			return
		}
		if !slices.Equal(left, []string{"cp"}) {
			t.Fatalf("succeeded and left %q", left)
		}
		if err := tArCheckImported(t, data, dir); err != nil {
			t.Fatalf("succeeded without a valid manifest: %v", err)
		}
	})
}

// tArCheckImported checks, with archive/tar and not the package's
// reader, that the last entry of data is a manifest of format 1 whose
// files are exactly those in dir (config.dump and spec.dump are not
// stored), with their sizes and digests.
func tArCheckImported(t testing.TB, data []byte, dir string) error {
	names, bodies, err := tArEntries(t, data)
	if err != nil {
		return err
	}
	if len(names) == 0 || names[len(names)-1] != "dockercr.sums" {
		return fmt.Errorf("entries %q do not end with the manifest", names)
	}
	var m struct {
		Format int `json:"format"`
		Files  []struct {
			Name   string `json:"name"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if err := json.Unmarshal(bodies["dockercr.sums"], &m); err != nil || m.Format != 1 {
		return fmt.Errorf("manifest format %d: %v", m.Format, err)
	}
	onDisk := tArFiles(t, dir, true)
	for _, f := range m.Files {
		if f.Name == "config.dump" || f.Name == "spec.dump" {
			continue
		}
		rel := f.Name
		if r, ok := strings.CutPrefix(rel, "checkpoint/"); ok {
			rel = "images/" + r
		}
		b, ok := onDisk[rel]
		sum := sha256.Sum256(b)
		if !ok || int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			return fmt.Errorf("%s does not match the manifest", f.Name)
		}
		delete(onDisk, rel)
	}
	if len(onDisk) != 0 {
		return fmt.Errorf("files not in the manifest: %v", slices.Collect(maps.Keys(onDisk)))
	}
	return nil
}

// The root package's compression names are the ones ckptar knows.
func TestCompressionNames(t *testing.T) {
	for _, c := range []Compression{CompressZstd, CompressGzip, CompressNone} {
		if !ckptar.Compression(c).Valid() {
			t.Errorf("%q unknown to ckptar", c)
		}
	}
}

// tArBenchSize is the size of the benchmark checkpoint's images.
const tArBenchSize = 256 << 20

// tArPages fills b with pages that look like process memory: neither
// zero nor fully random. Four in ten hold pointer-like words (one high
// part per page, random low bytes), three text, two random bytes, and
// one is zero but for a few words.
func tArPages(b []byte, seed uint64) {
	r := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const alphabet = "abcdefghijklmnopqrstuvwxyz      ABCDEFGHIJ0123456789,.;:-_/\n"
	for off := 0; off < len(b); off += 4096 {
		page := b[off:min(off+4096, len(b))]
		switch k := r.IntN(10); {
		case k < 4:
			hi := r.Uint64() & 0x00007fffff000000
			for i := 0; i+8 <= len(page); i += 8 {
				binary.LittleEndian.PutUint64(page[i:], hi|uint64(r.Uint32()&0xffffff))
			}
		case k < 7:
			for i := range page {
				page[i] = alphabet[r.IntN(len(alphabet))]
			}
		case k < 9:
			for i := 0; i+8 <= len(page); i += 8 {
				binary.LittleEndian.PutUint64(page[i:], r.Uint64())
			}
		default:
			clear(page)
			for range 8 {
				i := r.IntN(len(page)/8) * 8
				binary.LittleEndian.PutUint64(page[i:], r.Uint64())
			}
		}
	}
}

// tArBenchCheckpoint writes a checkpoint whose two pages images hold
// tArBenchSize bytes in all, and returns it with its total file size.
func tArBenchCheckpoint(b *testing.B) (string, int64) {
	b.Helper()
	dir := tArCheckpoint(b, 4096)
	sizes := map[string]int{"pages-1.img": tArBenchSize * 3 / 4, "pages-2.img": tArBenchSize / 4}
	for name, n := range sizes {
		data := make([]byte, n)
		tArPages(data, uint64(n))
		p := filepath.Join(dir, "images", name)
		tArNoErr(b, os.RemoveAll(p))
		tArNoErr(b, os.WriteFile(p, data, 0o600))
	}
	var total int64
	for _, data := range tArFiles(b, dir, false) {
		total += int64(len(data))
	}
	return dir, total
}

// tArCount counts the bytes written to it and drops them.
type tArCount struct{ n int64 }

func (c *tArCount) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// tArTarCmd runs tar with args, feeding it stdin and sending its output
// to stdout.
func tArTarCmd(b *testing.B, stdin io.Reader, stdout io.Writer, args ...string) {
	b.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("tar", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("tar %q: %v: %s", args, err, stderr.Bytes())
	}
}

// tArRequireTar skips a plain-tar comparison where there is no tar.
func tArRequireTar(b *testing.B) {
	b.Helper()
	if _, err := exec.LookPath("tar"); err != nil {
		b.Skip("no tar binary on PATH for the comparison")
	}
}

func tArReport(b *testing.B, size, archive int64) {
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/(1<<20), "MiB/s")
	b.ReportMetric(float64(size)/float64(archive), "ratio")
}

// BenchmarkExport exports 256 MiB of page-patterned images with zstd
// and with no compression, beside plain tar of the same directory, all
// to a sink that drops the bytes.
func BenchmarkExport(b *testing.B) {
	dir, size := tArBenchCheckpoint(b)
	for _, method := range []string{"zstd", "none", "tar"} {
		b.Run(method, func(b *testing.B) {
			if method == "tar" {
				tArRequireTar(b)
			}
			var out tArCount
			b.ResetTimer()
			for range b.N {
				out = tArCount{}
				if method == "tar" {
					tArTarCmd(b, nil, &out, "-cf", "-", "-C", dir, ".")
					continue
				}
				_, err := ExportCheckpoint(context.Background(), dir, &out,
					WithCompression(Compression(method)))
				tArNoErr(b, err)
			}
			tArReport(b, size, out.n)
		})
	}
}

// BenchmarkImport imports the archives BenchmarkExport writes, from
// memory to disk, beside plain tar unpacking its own archive. The
// import syncs every file; tar does not.
func BenchmarkImport(b *testing.B) {
	dir, size := tArBenchCheckpoint(b)
	for _, method := range []string{"zstd", "none", "tar"} {
		b.Run(method, func(b *testing.B) {
			var archive []byte
			if method == "tar" {
				tArRequireTar(b)
				var buf bytes.Buffer
				tArTarCmd(b, nil, &buf, "-cf", "-", "-C", dir, ".")
				archive = buf.Bytes()
			} else {
				archive = tArExport(b, dir, WithCompression(Compression(method)))
			}
			tmp := b.TempDir()
			b.ResetTimer()
			for i := range b.N {
				dst := filepath.Join(tmp, strconv.Itoa(i))
				if method == "tar" {
					tArNoErr(b, os.Mkdir(dst, 0o700))
					tArTarCmd(b, bytes.NewReader(archive), nil, "-xf", "-", "-C", dst)
				} else {
					_, err := ImportCheckpoint(context.Background(), bytes.NewReader(archive), dst)
					tArNoErr(b, err)
				}
				b.StopTimer()
				tArNoErr(b, os.RemoveAll(dst))
				b.StartTimer()
			}
			tArReport(b, size, int64(len(archive)))
		})
	}
}
