package ckptar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// tCheckpointDir writes a checkpoint directory with one file of each kind the
// layout knows, the files 0644 as CRIU and tar leave them.
func tCheckpointDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cp")
	files := map[string][]byte{
		MetadataName:              []byte(`{"format":1}`),
		DumpLogName:               []byte("dump log\n"),
		StatsDumpName:             tRandom(t, 40),
		DeletedFilesName:          []byte(`["/etc/motd"]`),
		RootfsDiffName:            tRandom(t, 3000),
		"images/inventory.img":    tRandom(t, 50),
		"images/pstree.img":       tRandom(t, 60),
		"images/core-1.img":       tRandom(t, 70),
		"images/pages-1.img":      tRandom(t, 9000),
		"images/pages-2.img":      tRandom(t, 5000),
		"images/pagemap-1.img":    tRandom(t, 80),
		"images/descriptors.json": []byte(`["/dev/null"]`),
		"volumes/data.tar":        tRandom(t, 1024),
		"volumes/other-vol.1.tar": tRandom(t, 512),
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tNames lists the entry names of an uncompressed archive, as archive/tar
// reads them.
func tNames(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

func TestWriteOrder(t *testing.T) {
	dir := tCheckpointDir(t)
	var buf bytes.Buffer
	_, err := Write(context.Background(), dir, &buf, WriteOptions{Compression: None,
		ConfigDump: []byte("{}"), SpecDump: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		MetadataName, ConfigDumpName, SpecDumpName, DumpLogName, StatsDumpName,
		DeletedFilesName, "checkpoint/", "checkpoint/inventory.img",
		"checkpoint/core-1.img", "checkpoint/descriptors.json",
		"checkpoint/pagemap-1.img", "checkpoint/pstree.img",
		"checkpoint/pages-1.img", "checkpoint/pages-2.img", RootfsDiffName,
		"volumes/", "volumes/data.tar", "volumes/other-vol.1.tar", ManifestName,
	}
	if got := tNames(t, buf.Bytes()); !slices.Equal(got, want) {
		t.Errorf("order\n got %q\nwant %q", got, want)
	}
}

func TestWriteSkipRootfs(t *testing.T) {
	dir := tCheckpointDir(t)
	var buf bytes.Buffer
	if _, err := Write(context.Background(), dir, &buf,
		WriteOptions{Compression: None, SkipRootfs: true}); err != nil {
		t.Fatal(err)
	}
	names := tNames(t, buf.Bytes())
	for _, n := range []string{RootfsDiffName, DeletedFilesName} {
		if slices.Contains(names, n) {
			t.Errorf("%s written despite SkipRootfs", n)
		}
	}
	if !slices.Contains(names, "volumes/data.tar") {
		t.Errorf("volumes left out with the rootfs: %q", names)
	}
}

func TestWriteRefuses(t *testing.T) {
	tests := []struct {
		name string
		add  func(t *testing.T, dir string)
		want error
	}{
		{"symlink in images", func(t *testing.T, dir string) {
			tNoErr(t, os.Symlink("/etc/passwd", filepath.Join(dir, "images", "x.img")))
		}, ErrUnexpectedFile},
		{"symlinked images", func(t *testing.T, dir string) {
			img := filepath.Join(dir, "images")
			tNoErr(t, os.Rename(img, img+"-real"))
			tNoErr(t, os.Symlink(img+"-real", img))
		}, ErrUnexpectedFile},
		{"socket", func(t *testing.T, dir string) {
			l, err := net.Listen("unix", filepath.Join(dir, "images", "s.img"))
			tNoErr(t, err)
			t.Cleanup(func() { l.Close() })
		}, ErrUnexpectedFile},
		{"fifo", func(t *testing.T, dir string) {
			tNoErr(t, syscall.Mkfifo(filepath.Join(dir, DumpLogName+".fifo"), 0o600))
		}, ErrUnexpectedFile},
		{"unknown file", func(t *testing.T, dir string) {
			tNoErr(t, os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o600))
		}, ErrUnexpectedFile},
		{"generated name on disk", func(t *testing.T, dir string) {
			tNoErr(t, os.WriteFile(filepath.Join(dir, ConfigDumpName), nil, 0o600))
		}, ErrUnexpectedFile},
		{"subfolder in images", func(t *testing.T, dir string) {
			tNoErr(t, os.Mkdir(filepath.Join(dir, "images", "sub"), 0o700))
		}, ErrUnexpectedFile},
		{"volume of bad name", func(t *testing.T, dir string) {
			tNoErr(t, os.WriteFile(filepath.Join(dir, "volumes", "x.zip"), nil, 0o600))
		}, ErrUnexpectedFile},
		{"no inventory", func(t *testing.T, dir string) {
			tNoErr(t, os.Remove(filepath.Join(dir, "images", InventoryName)))
		}, fs.ErrNotExist},
		{"no metadata", func(t *testing.T, dir string) {
			tNoErr(t, os.Remove(filepath.Join(dir, MetadataName)))
		}, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tCheckpointDir(t)
			tt.add(t, dir)
			var buf bytes.Buffer
			_, err := Write(context.Background(), dir, &buf, WriteOptions{})
			if !errors.Is(err, tt.want) {
				t.Errorf("Write: %v, want %v", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("Write wrote %d bytes before refusing", buf.Len())
			}
		})
	}
}

func tNoErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestExtract(t *testing.T) {
	for _, c := range []Compression{Zstd, Gzip, None} {
		t.Run(string(c), func(t *testing.T) {
			src := tCheckpointDir(t)
			var buf bytes.Buffer
			ws, err := Write(context.Background(), src, &buf, WriteOptions{Compression: c,
				ConfigDump: []byte(`{"id":"x"}`), SpecDump: []byte("{}")})
			tNoErr(t, err)

			dest := t.TempDir()
			rs, err := Extract(context.Background(), &buf, dest, ReadOptions{})
			tNoErr(t, err)
			if rs.Files != ws.Files || rs.Bytes != ws.Bytes || rs.Compression != c {
				t.Errorf("read %+v, wrote %+v", rs, ws)
			}
			tSameTree(t, src, dest)
		})
	}
}

// tSameTree checks that got holds exactly the files of want, with the
// same content, files 0600 and folders 0700.
func tSameTree(t *testing.T, want, got string) {
	t.Helper()
	seen := 0
	err := filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == got {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if info.Mode().Perm() != 0o700 {
				t.Errorf("%s: mode %v, want 0700", rel, info.Mode().Perm())
			}
			return nil
		}
		seen++
		if !info.Mode().IsRegular() || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want a regular 0600 file", rel, info.Mode())
		}
		a, err := os.ReadFile(filepath.Join(want, rel))
		if err != nil {
			t.Errorf("%s: not in the source: %v", rel, err)
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: content differs", rel)
		}
		return nil
	})
	tNoErr(t, err)
	wantN := 0
	tNoErr(t, filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			wantN++
		}
		return err
	}))
	if seen != wantN {
		t.Errorf("%d files extracted, the source has %d", seen, wantN)
	}
}
