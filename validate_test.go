package dockercr

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"google.golang.org/protobuf/proto"
)

func TestValidateImagesRecordings(t *testing.T) {
	for _, rec := range recordings {
		t.Run(rec.name, func(t *testing.T) {
			dir := filepath.Join(recordingDir(rec.name), rec.imagesDir)
			start := time.Now()
			if err := ValidateImages(dir); err != nil {
				t.Fatal(err)
			}
			t.Logf("validated in %v", time.Since(start))
		})
	}
}

// damage is a way to break a copy of a recording's images.
type damage struct {
	name string
	// apply breaks the images in dir; pids are the recording's.
	apply func(t *testing.T, dir string, p recordedPIDs)
	// want is the image the error must name, a path.Match pattern;
	// "" skips the case for recordings it does not apply to.
	want func(p recordedPIDs) string
}

// recordedPIDs are the PIDs of a recording that damages aim at.
type recordedPIDs struct {
	root, child, thread int
}

func tRecordedPIDs(t *testing.T, name string) recordedPIDs {
	t.Helper()
	e := tExpect(t, name)
	p := recordedPIDs{root: e.procs[0].PID}
	if len(e.procs) > 1 {
		p.child = e.procs[1].PID
	}
	for _, tid := range e.procs[0].Threads {
		if tid != p.root {
			p.thread = tid
		}
	}
	return p
}

func imgName(prefix string, pid int) string { return prefix + "-" + strconv.Itoa(pid) + ".img" }

func fixed(name string) func(recordedPIDs) string { return func(recordedPIDs) string { return name } }

var damages = []damage{
	{"pages truncated by one page",
		func(t *testing.T, dir string, _ recordedPIDs) {
			tTruncateBy(t, filepath.Join(dir, "pages-1.img"), int64(os.Getpagesize()))
		}, fixed("pages-1.img")},
	{"pages one page too long",
		func(t *testing.T, dir string, _ recordedPIDs) {
			tAppend(t, filepath.Join(dir, "pages-2.img"), make([]byte, os.Getpagesize()))
		}, fixed("pages-2.img")},
	{"pages missing",
		func(t *testing.T, dir string, _ recordedPIDs) { tRemove(t, dir, "pages-2.img") },
		fixed("pages-2.img")},
	{"inventory magic flipped",
		func(t *testing.T, dir string, _ recordedPIDs) { tFlip(t, dir, inventoryImg, 0) },
		fixed(inventoryImg)},
	{"inventory entry length flipped",
		func(t *testing.T, dir string, _ recordedPIDs) { tFlip(t, dir, inventoryImg, 7) },
		fixed(inventoryImg)},
	{"inventory first field tag flipped",
		func(t *testing.T, dir string, _ recordedPIDs) { tFlip(t, dir, inventoryImg, 8) },
		fixed(inventoryImg)},
	{"inventory truncated by one byte",
		func(t *testing.T, dir string, _ recordedPIDs) {
			tTruncateBy(t, filepath.Join(dir, inventoryImg), 1)
		}, fixed(inventoryImg)},
	{"pstree type magic flipped",
		func(t *testing.T, dir string, _ recordedPIDs) { tFlip(t, dir, pstreeImg, 5) },
		fixed(pstreeImg)},
	{"pstree entry length flipped",
		func(t *testing.T, dir string, _ recordedPIDs) { tFlip(t, dir, pstreeImg, 11) },
		fixed(pstreeImg)},
	{"pstree first field tag flipped",
		func(t *testing.T, dir string, _ recordedPIDs) { tFlip(t, dir, pstreeImg, 12) },
		fixed(pstreeImg)},
	{"pstree truncated by one byte",
		func(t *testing.T, dir string, _ recordedPIDs) {
			tTruncateBy(t, filepath.Join(dir, pstreeImg), 1)
		}, fixed(pstreeImg)},
	{"pstree without processes",
		func(t *testing.T, dir string, _ recordedPIDs) {
			tTruncateTo(t, filepath.Join(dir, pstreeImg), 8)
		}, fixed(pstreeImg)},
	{"root core missing",
		func(t *testing.T, dir string, p recordedPIDs) { tRemove(t, dir, imgName("core", p.root)) },
		func(p recordedPIDs) string { return imgName("core", p.root) }},
	{"thread core missing",
		func(t *testing.T, dir string, p recordedPIDs) { tRemove(t, dir, imgName("core", p.thread)) },
		func(p recordedPIDs) string {
			if p.thread == 0 {
				return ""
			}
			return imgName("core", p.thread)
		}},
	{"root core replaced by its mm",
		func(t *testing.T, dir string, p recordedPIDs) {
			tCopyFile(t, filepath.Join(dir, imgName("mm", p.root)), filepath.Join(dir, imgName("core", p.root)))
		}, func(p recordedPIDs) string { return imgName("core", p.root) }},
	{"root mm missing",
		func(t *testing.T, dir string, p recordedPIDs) { tRemove(t, dir, imgName("mm", p.root)) },
		func(p recordedPIDs) string { return imgName("mm", p.root) }},
	{"child pagemap missing",
		func(t *testing.T, dir string, p recordedPIDs) { tRemove(t, dir, imgName("pagemap", p.child)) },
		func(p recordedPIDs) string { return imgName("pagemap", p.child) }},
	{"root pagemap says pages are in a parent",
		func(t *testing.T, dir string, p recordedPIDs) {
			tPagemapToParent(t, filepath.Join(dir, imgName("pagemap", p.root)))
		},
		func(p recordedPIDs) string { return imgName("pagemap", p.root) }},
	{"files truncated by one byte",
		func(t *testing.T, dir string, _ recordedPIDs) { tTruncateBy(t, filepath.Join(dir, filesImg), 1) },
		fixed(filesImg)},
	{"descriptor tables missing",
		func(t *testing.T, dir string, _ recordedPIDs) {
			matches, _ := filepath.Glob(filepath.Join(dir, "fdinfo-*.img"))
			for _, m := range matches {
				tRemove(t, dir, filepath.Base(m))
			}
		}, fixed("fdinfo-*.img")},
}

func TestValidateImagesDamaged(t *testing.T) {
	for _, rec := range recordings {
		pids := tRecordedPIDs(t, rec.name)
		for _, d := range damages {
			want := d.want(pids)
			if want == "" {
				continue
			}
			t.Run(rec.name+"/"+d.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "images")
				tCopyDir(t, filepath.Join(recordingDir(rec.name), rec.imagesDir), dir)
				d.apply(t, dir, pids)

				err := ValidateImages(dir)
				ie := tWantImageError(t, err, want)
				if filepath.Dir(ie.File) != dir {
					t.Errorf("File %q is not in %s", ie.File, dir)
				}
				t.Logf("%v", err)
			})
		}
	}
}

func TestValidateImagesWithoutInventory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	tCopyDir(t, recordingDir("tinytree"), dir)
	tRemove(t, dir, inventoryImg)

	err := ValidateImages(dir)
	if !errors.Is(err, ErrCheckpointNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want ErrCheckpointNotFound and fs.ErrNotExist", err)
	}
	tWantImageError(t, err, inventoryImg)

	err = ValidateImages(filepath.Join(dir, "absent"))
	if !errors.Is(err, ErrCheckpointNotFound) {
		t.Errorf("absent directory: got %v, want ErrCheckpointNotFound", err)
	}
}

// TestValidateImagesByteFlips flips every byte of the images that
// tell the tree, one at a time. CRIU's images carry no checksums, so
// not every flip can be seen; the magic and the first entry's length
// always are. The share caught is logged.
func TestValidateImagesByteFlips(t *testing.T) {
	src := recordingDir("tinytree")
	for _, name := range []string{inventoryImg, pstreeImg} {
		t.Run(name, func(t *testing.T) {
			set := tMemImages(t, src)
			orig := set.files[name]
			header := 8
			if name == pstreeImg {
				header = 12
			}
			caught := 0
			for i := range orig {
				b := bytes.Clone(orig)
				b[i] ^= 0xff
				set.files[name] = b
				_, err := checkImages(set)
				if err != nil {
					caught++
					tWantImageError(t, err, "*")
				} else if i < header {
					t.Errorf("flipping byte %d of %s went unnoticed", i, name)
				}
			}
			t.Logf("%s: %d of %d byte flips refused", name, caught, len(orig))
		})
	}
}

func TestImageError(t *testing.T) {
	cause := errors.New("proto: cannot parse invalid wire-format data")
	err := error(&ImageError{File: "/ckpt/images/pstree.img", Reason: "entry 0: " + cause.Error(), Err: cause})
	if got, want := err.Error(), "checkpoint image /ckpt/images/pstree.img: entry 0: "+cause.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrCorruptCheckpoint) || !errors.Is(err, cause) {
		t.Errorf("%v does not match ErrCorruptCheckpoint and its cause", err)
	}
	if errors.Is(err, ErrCheckpointNotFound) {
		t.Errorf("%v matches ErrCheckpointNotFound", err)
	}
}

func TestCompatPagemapEntry(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	yes := true
	withNrPages := func(pe *pagemap.PagemapEntry, n uint64) *pagemap.PagemapEntry {
		b, _ := proto.Marshal(pe)
		b = binary.AppendUvarint(append(b, pagemapNrPages<<3), n)
		out := &pagemap.PagemapEntry{}
		if err := proto.Unmarshal(b, out); err != nil {
			panic(err)
		}
		return out
	}
	tests := []struct {
		name string
		pe   *pagemap.PagemapEntry
		want pagemapEntry
	}{
		{"criu 4.2: count in field 5", withNrPages(&pagemap.PagemapEntry{Vaddr: u64(4096), NrPages: u32(0),
			Flags: u32(pePresent | 2)}, 7), pagemapEntry{4096, 7, pePresent | 2}},
		{"criu 3: 32-bit count, flags", &pagemap.PagemapEntry{Vaddr: u64(8192), NrPages: u32(3),
			Flags: u32(peParent)}, pagemapEntry{8192, 3, peParent}},
		{"criu 2: no flags means present", &pagemap.PagemapEntry{Vaddr: u64(0), NrPages: u32(1)},
			pagemapEntry{0, 1, pePresent}},
		{"criu 2: in_parent", &pagemap.PagemapEntry{Vaddr: u64(0), NrPages: u32(1), InParent: &yes},
			pagemapEntry{0, 1, peParent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := compatPagemapEntry(tt.pe)
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzInspectImages replaces one image of the tinytree recording with
// the fuzzer's bytes and decodes, validates and describes the result,
// which must never panic; the same bytes go through the stats and log
// readers.
func FuzzInspectImages(f *testing.F) {
	src := recordingDir("tinytree")
	base := tMemImagesF(f, src)
	names := base.names()
	for i, n := range names {
		if !strings.HasPrefix(n, "pages-") && n != DumpLogName {
			f.Add(uint8(i), base.files[n])
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		set := base.clone()
		name := names[int(which)%len(names)]
		set.files[name] = data

		if img, err := checkImages(set); err == nil {
			describeImages(img)
		} else if !errors.Is(err, ErrCorruptCheckpoint) {
			t.Fatalf("%s: error %v is not ErrCorruptCheckpoint", name, err)
		}
		_, _ = decodeDumpStats(data, name)
		_, _ = logHeader(bytes.NewReader(data))
	})
}

// memImages is an imageSet held in memory, for fuzzing.
type memImages struct{ files map[string][]byte }

func (m *memImages) path(name string) string { return name }

func (m *memImages) size(name string) (int64, error) {
	if b, ok := m.files[name]; ok {
		return int64(len(b)), nil
	}
	return 0, fs.ErrNotExist
}

func (m *memImages) read(name string) ([]byte, error) {
	if b, ok := m.files[name]; ok {
		return b, nil
	}
	return nil, fs.ErrNotExist
}

func (m *memImages) readAt(name string, off int64, n int) ([]byte, error) {
	b, ok := m.files[name]
	if !ok || off < 0 || off > int64(len(b)) || int64(n) > int64(len(b))-off {
		return nil, errors.New("out of range")
	}
	return b[off : off+int64(n)], nil
}

func (m *memImages) names() []string {
	var names []string
	for n := range m.files {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func (m *memImages) clone() *memImages {
	c := &memImages{files: make(map[string][]byte, len(m.files))}
	for k, v := range m.files {
		c.files[k] = v
	}
	return c
}

func tMemImages(t *testing.T, dir string) *memImages {
	t.Helper()
	m, err := loadMemImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tMemImagesF(f *testing.F, dir string) *memImages {
	f.Helper()
	m, err := loadMemImages(dir)
	if err != nil {
		f.Fatal(err)
	}
	return m
}

func loadMemImages(dir string) (*memImages, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := &memImages{files: map[string][]byte{}}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		m.files[e.Name()] = b
	}
	return m, nil
}

func BenchmarkValidateImages(b *testing.B) {
	dir := recordingDir("tinytree")
	for b.Loop() {
		if err := ValidateImages(dir); err != nil {
			b.Fatal(err)
		}
	}
}

// tWantImageError fails unless err is an *ImageError matching
// ErrCorruptCheckpoint whose File's base name matches the pattern.
func tWantImageError(t *testing.T, err error, pattern string) *ImageError {
	t.Helper()
	var ie *ImageError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T) is not an *ImageError", err, err)
	}
	if !errors.Is(err, ErrCorruptCheckpoint) {
		t.Errorf("%v does not match ErrCorruptCheckpoint", err)
	}
	if ok, _ := path.Match(pattern, path.Base(filepath.ToSlash(ie.File))); !ok && pattern != ie.File {
		t.Errorf("error names %q, want %q: %v", ie.File, pattern, err)
	}
	if !strings.HasPrefix(err.Error(), "checkpoint image ") && !errors.Is(err, ErrCheckpointNotFound) {
		t.Errorf("Error() = %q", err.Error())
	}
	return ie
}

func tTruncateBy(t *testing.T, p string, n int64) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	tTruncateTo(t, p, fi.Size()-n)
}

func tTruncateTo(t *testing.T, p string, size int64) {
	t.Helper()
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
}

func tAppend(t *testing.T, p string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func tRemove(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func tFlip(t *testing.T, dir, name string, off int) {
	t.Helper()
	p := filepath.Join(dir, name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func tCopyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tPagemapToParent rewrites the first entry of a pagemap image to say
// its pages are in a parent checkpoint.
func tPagemapToParent(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := splitEntries(b, magicCommon, magicPagemap, func(r string) error { return errors.New(r) })
	if err != nil || len(raw) < 2 {
		t.Fatalf("%s: %v, %d entries", p, err, len(raw))
	}
	pe := &pagemap.PagemapEntry{}
	if err := proto.Unmarshal(raw[1], pe); err != nil {
		t.Fatal(err)
	}
	flags := uint32(peParent)
	pe.Flags = &flags
	if raw[1], err = proto.Marshal(pe); err != nil {
		t.Fatal(err)
	}
	out := bytes.Clone(b[:8])
	for _, e := range raw {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e)))
		out = append(out, e...)
	}
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
