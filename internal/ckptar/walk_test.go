package ckptar

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestWalkValid(t *testing.T) {
	for _, c := range []Compression{Zstd, Gzip, None} {
		t.Run(string(c), func(t *testing.T) {
			es := tWithManifest(t, tValidEntries(t))
			bodies, names, err := tWalkAll(tCompress(t, c, tTar(t, es)), Limits{})
			if err != nil {
				t.Fatalf("Walk: %v", err)
			}
			want := []string{MetadataName, ImagesDir, "checkpoint/inventory.img",
				"checkpoint/pstree.img", "checkpoint/pages-1.img"}
			if !slices.Equal(names, want) {
				t.Errorf("entries %q, want %q (manifest not handed over)", names, want)
			}
			for _, e := range es[:len(es)-1] {
				if !bytes.Equal(bodies[strings.TrimSuffix(e.hdr.Name, "/")], e.data) {
					t.Errorf("%s: content differs", e.hdr.Name)
				}
			}
		})
	}
}

// An inspector reads the small files and leaves the pages unread; the
// walk still checks them against the manifest.
func TestWalkSkipsUnreadBodies(t *testing.T) {
	tests := []struct {
		name    string
		corrupt bool
	}{
		{"intact pages", false},
		{"corrupt pages", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := tValidEntries(t)
			man := tManifest(t, es)
			if tt.corrupt {
				es[4].data = bytes.Clone(es[4].data)
				es[4].data[100] ^= 1
			}
			data := tCompress(t, Zstd, tTar(t, append(es, man)))

			var read []string
			err := Walk(bytes.NewReader(data), Limits{}, func(e Entry, body io.Reader) error {
				if strings.HasPrefix(e.Name, ImagesDir+"/"+pagesPrefix) {
					return nil
				}
				if _, err := io.ReadAll(body); err != nil {
					return err
				}
				read = append(read, e.Name)
				return nil
			})
			if len(read) != 4 {
				t.Errorf("read %q, want the 4 entries before the pages", read)
			}
			if tt.corrupt != (err != nil) {
				t.Fatalf("Walk: %v, want an error: %v", err, tt.corrupt)
			}
			if tt.corrupt && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "pages-1.img")) {
				t.Errorf("Walk: %v, want ErrInvalid naming pages-1.img", err)
			}
		})
	}
}

func TestWalkReturnsFnError(t *testing.T) {
	stop := errors.New("seen enough")
	data := tTar(t, tWithManifest(t, tValidEntries(t)))
	calls := 0
	err := Walk(bytes.NewReader(data), Limits{}, func(e Entry, body io.Reader) error {
		calls++
		if e.Name == "checkpoint/inventory.img" {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Errorf("Walk: %v, want fn's error as it is", err)
	}
	if calls != 3 {
		t.Errorf("fn called %d times, want 3 (stop at the inventory)", calls)
	}
}

func TestWalkRejects(t *testing.T) {
	tests := []struct {
		name   string
		build  func(t *testing.T) []byte
		lim    Limits
		entry  string // the name the error must quote
		reason string
	}{
		{"symlink", func(t *testing.T) []byte {
			return tTarWith(t, tEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink,
				Name: "checkpoint/x", Linkname: "/etc/passwd"}})
		}, Limits{}, "checkpoint/x", "symbolic link"},
		{"hard link", func(t *testing.T) []byte {
			return tTarWith(t, tEntry{hdr: tar.Header{Typeflag: tar.TypeLink,
				Name: "checkpoint/x", Linkname: MetadataName}})
		}, Limits{}, "checkpoint/x", "hard link"},
		{"char device", func(t *testing.T) []byte {
			return tTarWith(t, tEntry{hdr: tar.Header{Typeflag: tar.TypeChar,
				Name: "checkpoint/null", Devmajor: 1, Devminor: 3}})
		}, Limits{}, "checkpoint/null", "character device"},
		{"fifo", func(t *testing.T) []byte {
			return tTarWith(t, tEntry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "dump.log"}})
		}, Limits{}, "dump.log", "named pipe"},
		{"dot dot", func(t *testing.T) []byte {
			return tTarWith(t, tReg("../evil", []byte("x")))
		}, Limits{}, "../evil", `".."`},
		{"absolute", func(t *testing.T) []byte {
			return tTarWith(t, tReg("/abs", []byte("x")))
		}, Limits{}, "/abs", "absolute"},
		{"escape through images", func(t *testing.T) []byte {
			return tTarWith(t, tReg("checkpoint/../../x", []byte("x")))
		}, Limits{}, "checkpoint/../../x", `".."`},
		{"unknown name", func(t *testing.T) []byte {
			return tTarWith(t, tReg("evil.sh", []byte("x")))
		}, Limits{}, "evil.sh", "not part of the checkpoint layout"},
		{"duplicate", func(t *testing.T) []byte {
			return tTarWith(t, tReg("checkpoint/pstree.img", []byte("again")))
		}, Limits{}, "checkpoint/pstree.img", "twice"},
		{"flipped byte", func(t *testing.T) []byte {
			es := tValidEntries(t)
			man := tManifest(t, es)
			es[3].data = bytes.Clone(es[3].data)
			es[3].data[7] ^= 0x80
			return tTar(t, append(es, man))
		}, Limits{}, "checkpoint/pstree.img", "checksum mismatch"},
		{"no manifest", func(t *testing.T) []byte {
			return tTar(t, tValidEntries(t))
		}, Limits{}, ManifestName, "missing"},
		{"entry after manifest", func(t *testing.T) []byte {
			es := tWithManifest(t, tValidEntries(t))
			return tTar(t, append(es, tReg(DumpLogName, []byte("late"))))
		}, Limits{}, DumpLogName, "follows the manifest"},
		{"file not in manifest", func(t *testing.T) []byte {
			es := tValidEntries(t)
			man := tManifest(t, es)
			return tTar(t, append(es, tReg(DumpLogName, []byte("unlisted")), man))
		}, Limits{}, DumpLogName, "not listed"},
		{"manifest lists more", func(t *testing.T) []byte {
			es := tValidEntries(t)
			man := tManifest(t, append(slices.Clone(es), tReg(DumpLogName, []byte("gone"))))
			return tTar(t, append(es, man))
		}, Limits{}, DumpLogName, "not in the archive"},
		{"no inventory", func(t *testing.T) []byte {
			es := slices.Delete(tValidEntries(t), 2, 3)
			return tTar(t, tWithManifest(t, es))
		}, Limits{}, "checkpoint/inventory.img", "missing"},
		{"file too big", func(t *testing.T) []byte {
			return tTar(t, tWithManifest(t, tValidEntries(t)))
		}, Limits{MaxFileBytes: 1000}, "checkpoint/pages-1.img", "per file"},
		{"too many files", func(t *testing.T) []byte {
			return tTar(t, tWithManifest(t, tValidEntries(t)))
		}, Limits{MaxFiles: 3}, "checkpoint/pstree.img", "entries"},
		{"too many bytes", func(t *testing.T) []byte {
			return tTar(t, tWithManifest(t, tValidEntries(t)))
		}, Limits{MaxTotalBytes: 60 << 10}, "checkpoint/pages-1.img", "limit of"},
		{"zstd bomb", func(t *testing.T) []byte {
			return tCompress(t, Zstd, tTar(t, tBomb(t, 64<<20)))
		}, Limits{}, "checkpoint/pages-1.img", "expands more than"},
		{"gzip bomb", func(t *testing.T) []byte {
			return tCompress(t, Gzip, tTar(t, tBomb(t, 32<<20)))
		}, Limits{MaxExpansionRatio: 50}, "checkpoint/pages-1.img", "expands more than"},
		{"truncated body", func(t *testing.T) []byte {
			b := tTar(t, tWithManifest(t, tValidEntries(t)))
			return b[:4096]
		}, Limits{}, "checkpoint/pages-1.img", "truncated"},
		// zstd decodes blocks ahead of the tar reader, so which entry
		// the truncation surfaces at depends on the block size.
		{"truncated zstd", func(t *testing.T) []byte {
			b := tCompress(t, Zstd, tTar(t, tWithManifest(t, tValidEntries(t))))
			return b[:len(b)-3]
		}, Limits{}, anyEntry, "truncated"},
		{"truncated gzip", func(t *testing.T) []byte {
			b := tCompress(t, Gzip, tTar(t, tWithManifest(t, tValidEntries(t))))
			return b[:len(b)-3]
		}, Limits{}, "", "truncated"},
		{"zstd window over 32 MiB", func(t *testing.T) []byte {
			var buf bytes.Buffer
			w, err := zstd.NewWriter(&buf, zstd.WithWindowSize(64<<20))
			tNoErr(t, err)
			// Over one block, so the frame is streamed and its header
			// states the window rather than the content size.
			es := tValidEntries(t)
			es[4] = tReg("checkpoint/pages-1.img", tRandom(t, 1<<20))
			_, err = w.Write(tTar(t, tWithManifest(t, es)))
			tNoErr(t, err)
			tNoErr(t, w.Close())
			return buf.Bytes()
		}, Limits{}, anyEntry, "window size exceeded"},
		{"not a tar", func(t *testing.T) []byte {
			return bytes.Repeat([]byte("garbage!"), 200)
		}, Limits{}, "", "corrupt stream"},
		{"empty", func(t *testing.T) []byte { return nil }, Limits{}, "", "empty archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tWalkAll(tt.build(t), tt.lim)
			var ee *EntryError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &ee) {
				t.Fatalf("Walk: %v, want an *EntryError matching ErrInvalid", err)
			}
			if (tt.entry != anyEntry && ee.Name != tt.entry) ||
				!strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Walk: %v (entry %q), want entry %q and %q", err, ee.Name,
					tt.entry, tt.reason)
			}
		})
	}
}

// anyEntry marks a rejection whose entry name the case does not check.
const anyEntry = "\x00any"

// tTarWith is a valid archive with e inserted before the manifest.
func tTarWith(t *testing.T, e tEntry) []byte {
	t.Helper()
	return tTar(t, tWithManifest(t, append(tValidEntries(t), e)))
}

// tBomb is a valid archive whose pages are n zero bytes.
func tBomb(t *testing.T, n int) []tEntry {
	t.Helper()
	es := tValidEntries(t)
	es[4] = tReg("checkpoint/pages-1.img", make([]byte, n))
	return tWithManifest(t, es)
}

// FuzzWalk feeds arbitrary bytes to Walk: it must not panic, every
// failure that is not fn's must match ErrInvalid, and a success must
// be backed by a manifest that a plain tar reader finds last and that
// matches every body Walk handed over.
func FuzzWalk(f *testing.F) {
	t := &testing.T{}
	valid := tTar(t, tWithManifest(t, tValidEntries(t)))
	f.Add(valid)
	f.Add(tCompress(t, Zstd, valid))
	f.Add(tCompress(t, Gzip, valid))
	f.Add(tTarWith(t, tEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink,
		Name: "checkpoint/x", Linkname: "/etc/passwd"}}))
	f.Add([]byte{})

	lim := Limits{MaxFiles: 64, MaxTotalBytes: 4 << 20, MaxFileBytes: 2 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		bodies, _, err := tWalkAll(data, lim)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Walk: %v does not match ErrInvalid", err)
			}
			return
		}
		if err := tCheckManifest(data, bodies); err != nil {
			t.Fatalf("Walk accepted an archive without a valid manifest: %v", err)
		}
	})
}

// tManifestJSON is the manifest as the format describes it.
type tManifestJSON struct {
	Format int `json:"format"`
	Files  []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
}

// tCheckManifest reads data with the compression libraries and
// archive/tar directly, and checks that its last entry is a manifest
// of format 1 listing exactly the files in bodies.
func tCheckManifest(data []byte, bodies map[string][]byte) error {
	name, body, err := tLastEntry(data)
	if err != nil {
		return err
	}
	if name != ManifestName {
		return fmt.Errorf("last entry is %q, not the manifest", name)
	}
	var m tManifestJSON
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	if m.Format != 1 {
		return fmt.Errorf("manifest format %d", m.Format)
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		b, ok := bodies[f.Name]
		sum := sha256.Sum256(b)
		if !ok || int64(len(b)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			return fmt.Errorf("manifest does not match %q", f.Name)
		}
		listed[f.Name] = true
	}
	for name := range bodies {
		if !listed[name] && name != ImagesDir && name != VolumesDir {
			return fmt.Errorf("%q is not in the manifest", name)
		}
	}
	return nil
}

// tLastEntry returns the name and content of the last entry of data.
func tLastEntry(data []byte) (string, []byte, error) {
	var r io.Reader = bytes.NewReader(data)
	switch {
	case bytes.HasPrefix(data, zstdMagic):
		d, err := zstd.NewReader(r)
		if err != nil {
			return "", nil, err
		}
		defer d.Close()
		r = d
	case bytes.HasPrefix(data, gzipMagic):
		d, err := gzip.NewReader(r)
		if err != nil {
			return "", nil, err
		}
		r = d
	}
	tr := tar.NewReader(r)
	var name string
	var body []byte
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return name, body, nil
		}
		if err != nil {
			return "", nil, err
		}
		if body, err = io.ReadAll(tr); err != nil {
			return "", nil, err
		}
		name = hdr.Name
	}
}
