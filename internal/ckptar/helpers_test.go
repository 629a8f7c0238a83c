package ckptar

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// tEntry is one entry of a hand-built archive. hdr.Size is set from
// data unless the case sets it.
type tEntry struct {
	hdr  tar.Header
	data []byte
}

func tReg(name string, data []byte) tEntry {
	return tEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600,
		Size: int64(len(data))}, data: data}
}

func tDir(name string) tEntry {
	return tEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o700}}
}

func tRandom(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// tManifest returns the manifest entry that lists the regular files of
// es, written here from the format's description rather than with the
// package's own encoder.
func tManifest(t *testing.T, es []tEntry) tEntry {
	t.Helper()
	type file struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	m := struct {
		Format int    `json:"format"`
		Files  []file `json:"files"`
	}{Format: 1, Files: []file{}}
	for _, e := range es {
		if e.hdr.Typeflag == tar.TypeReg {
			sum := sha256.Sum256(e.data)
			m.Files = append(m.Files, file{e.hdr.Name, int64(len(e.data)),
				hex.EncodeToString(sum[:])})
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return tReg(ManifestName, b)
}

// tValidEntries is the smallest complete archive, without its manifest.
func tValidEntries(t *testing.T) []tEntry {
	t.Helper()
	return []tEntry{
		tReg(MetadataName, []byte(`{"format":1}`)),
		tDir(ImagesDir),
		tReg("checkpoint/inventory.img", tRandom(t, 100)),
		tReg("checkpoint/pstree.img", tRandom(t, 200)),
		tReg("checkpoint/pages-1.img", tRandom(t, 64<<10)),
	}
}

// tWithManifest appends the manifest of es to es.
func tWithManifest(t *testing.T, es []tEntry) []tEntry {
	t.Helper()
	return append(es, tManifest(t, es))
}

// tTar writes es as a tar stream, exactly as given.
func tTar(t *testing.T, es []tEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("header %q: %v", hdr.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatalf("write %q: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tCompress compresses b with c, through the compression library
// directly.
func tCompress(t *testing.T, c Compression, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch c {
	case Zstd:
		// The strongest level packs zeros as a zstd bomb would.
		w, err = zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	case Gzip:
		w, err = gzip.NewWriterLevel(&buf, gzip.BestCompression)
	default:
		return b
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tWalkAll walks data and returns the entries and bodies it saw.
func tWalkAll(data []byte, lim Limits) (map[string][]byte, []string, error) {
	bodies := map[string][]byte{}
	var names []string
	err := Walk(bytes.NewReader(data), lim, func(e Entry, body io.Reader) error {
		b, err := io.ReadAll(body)
		names = append(names, e.Name)
		bodies[e.Name] = b
		return err
	})
	return bodies, names, err
}
