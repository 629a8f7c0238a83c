package dockercr

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"

	"github.com/docker-cr/dockercr/internal/ckptar"
)

// recordings are the checkpoints of testdata/checkpoints, recorded by
// its record.sh with real CRIU, and how each is laid out.
var recordings = []struct {
	name string
	// imagesDir is where the images are, relative to the recording.
	imagesDir string
	// container says the recording has checkpoint.json.
	container bool
}{
	{name: "tinytree", imagesDir: "."},
	{name: "container", imagesDir: ImagesDirName, container: true},
}

func recordingDir(name string) string { return filepath.Join("testdata", "checkpoints", name) }

// expectation is what /proc said of a recorded tree at dump time (see
// testdata/checkpoints/record.sh).
type expectation struct {
	criu, kernel string
	procs        []ProcessInfo
	fds          []FileInfo
	inet         map[uint32]expectedInet
	unix         map[uint32]expectedUnix
}

type expectedInet struct{ proto, local, remote, state string }

type expectedUnix struct{ flags, typ, state, path string }

// tExpect reads NAME.expect.txt.
func tExpect(t *testing.T, name string) *expectation {
	t.Helper()
	f, err := os.Open(recordingDir(name) + ".expect.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := &expectation{inet: map[uint32]expectedInet{}, unix: map[uint32]expectedUnix{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if err := e.add(strings.Split(sc.Text(), "\t")); err != nil {
			t.Fatalf("%s.expect.txt: %q: %v", name, sc.Text(), err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *expectation) add(f []string) error {
	n := func(i int) int {
		v, err := strconv.Atoi(f[i])
		if err != nil {
			panic(err)
		}
		return v
	}
	switch {
	case f[0] == "criu" && len(f) == 2:
		e.criu = f[1]
	case f[0] == "kernel" && len(f) == 2:
		e.kernel = f[1]
	case f[0] == "process" && len(f) >= 7:
		e.procs = append(e.procs, ProcessInfo{PID: n(1), PPID: n(2), PGID: n(3), SID: n(4),
			Comm: f[5], Cmdline: f[6:]})
	case f[0] == "thread" && len(f) == 3:
		for i := range e.procs {
			if e.procs[i].PID == n(1) {
				e.procs[i].Threads = append(e.procs[i].Threads, n(2))
			}
		}
	case f[0] == "fd" && len(f) == 4:
		e.fds = append(e.fds, FileInfo{PID: n(1), FD: n(2), Path: f[3]})
	case f[0] == "inet" && len(f) == 6:
		e.inet[uint32(n(1))] = expectedInet{proto: f[2], local: procNetAddr(f[3]),
			remote: procNetAddr(f[4]), state: f[5]}
	case f[0] == "unix" && len(f) == 6:
		e.unix[uint32(n(1))] = expectedUnix{flags: f[2], typ: f[3], state: f[4], path: f[5]}
	default:
		return fmt.Errorf("unknown line")
	}
	return nil
}

// procNetAddr turns /proc/net/tcp's "0100007F:91BB" (address bytes in
// host order, port in hex) into "127.0.0.1:37307", "" for 0:0.
func procNetAddr(s string) string {
	addrHex, portHex, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(addrHex)
	if err != nil {
		panic(err)
	}
	b := make([]byte, len(raw))
	for i := 0; i+4 <= len(raw); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		panic(err)
	}
	a, _ := netip.AddrFromSlice(b)
	if a.IsUnspecified() && port == 0 {
		return ""
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

// procNetStates maps /proc/net/tcp's hex states to the kernel's names.
var procNetStates = map[string]string{"01": "ESTABLISHED", "07": "CLOSE", "0A": "LISTEN"}

func TestInspectCheckpoint(t *testing.T) {
	for _, rec := range recordings {
		t.Run(rec.name, func(t *testing.T) {
			dir := recordingDir(rec.name)
			info, err := InspectCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			want := tExpect(t, rec.name)
			tCheckInfo(t, info, want, filepath.Join(dir, rec.imagesDir))

			if info.Dir != dir {
				t.Errorf("Dir %q, want %q", info.Dir, dir)
			}
			if rec.container != (info.Metadata != nil) {
				t.Fatalf("Metadata %v for a recording with checkpoint.json: %v", info.Metadata, rec.container)
			}
			if rec.container {
				tCheckMetadata(t, info)
			}
		})
	}
}

// tCheckInfo holds info against what /proc said at dump time and what
// the images directory holds on disk.
func tCheckInfo(t *testing.T, info *CheckpointInfo, want *expectation, imagesDir string) {
	t.Helper()
	if info.CRIUVersion != want.criu || info.Kernel != want.kernel {
		t.Errorf("criu %q kernel %q, want %q %q", info.CRIUVersion, info.Kernel, want.criu, want.kernel)
	}
	tCheckProcesses(t, info.Processes, want.procs)
	tCheckFiles(t, info.Files, want)
	tCheckSockets(t, info.Sockets, want)

	images, pages := tDirSizes(t, imagesDir)
	if info.ImagesBytes != images || info.MemoryBytes != pages {
		t.Errorf("ImagesBytes %d MemoryBytes %d, the directory holds %d and %d",
			info.ImagesBytes, info.MemoryBytes, images, pages)
	}
	if info.Stats == nil {
		t.Fatal("no Stats, the recording has a stats-dump")
	}
	// CRIU counts the pages it wrote: they are the pages images.
	if got := int64(info.Stats.PagesWritten) * int64(os.Getpagesize()); got != info.MemoryBytes {
		t.Errorf("stats say %d pages written (%d bytes), pages images hold %d bytes",
			info.Stats.PagesWritten, got, info.MemoryBytes)
	}
	if info.Stats.FrozenTime <= 0 {
		t.Errorf("FrozenTime %v", info.Stats.FrozenTime)
	}
}

func tCheckProcesses(t *testing.T, got, want []ProcessInfo) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d processes %+v, want %d %+v", len(got), got, len(want), want)
	}
	for i, w := range want {
		g := got[i]
		slices.Sort(w.Threads)
		threads := slices.Sorted(slices.Values(g.Threads))
		if g.PID != w.PID || g.PPID != w.PPID || g.PGID != w.PGID || g.SID != w.SID ||
			g.Comm != w.Comm || !slices.Equal(g.Cmdline, w.Cmdline) || !slices.Equal(threads, w.Threads) {
			t.Errorf("process %d:\n got %+v\nwant %+v", i, g, w)
		}
		if len(g.Threads) == 0 || g.Threads[0] != g.PID {
			t.Errorf("process %d: threads %v do not start with the leader", g.PID, g.Threads)
		}
		if g.State != "running" {
			t.Errorf("process %d: state %q", g.PID, g.State)
		}
		if g.Exe == "" || g.Cwd == "" {
			t.Errorf("process %d: exe %q cwd %q", g.PID, g.Exe, g.Cwd)
		}
	}
}

func tCheckFiles(t *testing.T, got []FileInfo, want *expectation) {
	t.Helper()
	key := func(f FileInfo) string { return fmt.Sprintf("%d/%d %s", f.PID, f.FD, f.Path) }
	var g, w []string
	for _, f := range got {
		g = append(g, key(f))
		if typ := want.typeOf(f.Path); f.Type != typ {
			t.Errorf("fd %d/%d %s has type %q, want %q", f.PID, f.FD, f.Path, f.Type, typ)
		}
	}
	for _, f := range want.fds {
		w = append(w, key(f))
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("files\n got %q\nwant %q", g, w)
	}
}

// typeOf is the descriptor type of a /proc/PID/fd target.
func (e *expectation) typeOf(target string) string {
	switch {
	case strings.HasPrefix(target, "/"):
		return "reg"
	case strings.HasPrefix(target, "pipe:"):
		return "pipe"
	}
	var ino uint32
	if _, err := fmt.Sscanf(target, "socket:[%d]", &ino); err != nil {
		return "unknown " + target
	}
	if _, ok := e.inet[ino]; ok {
		return "inet"
	}
	if _, ok := e.unix[ino]; ok {
		return "unix"
	}
	return "unknown " + target
}

func tCheckSockets(t *testing.T, got []SocketInfo, want *expectation) {
	t.Helper()
	if len(got) != len(want.inet)+len(want.unix) {
		t.Errorf("%d sockets %+v, /proc listed %d inet and %d unix", len(got), got, len(want.inet), len(want.unix))
	}
	for _, s := range got {
		if w, ok := want.inet[s.Inode]; ok {
			if s.Family != "inet" || s.Protocol != w.proto || s.Local != w.local || s.Remote != w.remote ||
				!sameState(s, procNetStates[w.state]) {
				t.Errorf("socket %d: got %+v, /proc said %+v", s.Inode, s, w)
			}
			continue
		}
		if w, ok := want.unix[s.Inode]; ok {
			// /proc/net/unix shows SS_CONNECTED (03) and a listener's
			// __SO_ACCEPTCON flag; the images hold the TCP-like state.
			state := map[string]string{"03": "ESTABLISHED", "01": "CLOSE"}[w.state]
			if w.flags == "00010000" {
				state = "LISTEN"
			}
			if s.Family != "unix" || s.Type != "stream" || w.typ != "0001" || s.State != state || s.Local != w.path {
				t.Errorf("socket %d: got %+v, /proc said %+v", s.Inode, s, w)
			}
			continue
		}
		t.Errorf("socket %+v not listed by /proc", s)
	}
}

// sameState compares states, a datagram socket's CLOSE shown UNCONN.
func sameState(s SocketInfo, want string) bool {
	return s.State == want || (s.Type == "dgram" && want == "CLOSE" && s.State == "UNCONN")
}

// tDirSizes sums the sizes of the regular files of dir, and of its
// pages images.
func tDirSizes(t *testing.T, dir string) (all, pages int64) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		all += fi.Size()
		if strings.HasPrefix(e.Name(), "pages-") {
			pages += fi.Size()
		}
	}
	return all, pages
}

func tCheckMetadata(t *testing.T, info *CheckpointInfo) {
	t.Helper()
	m := info.Metadata
	if m.ContainerName == "" || m.Image == "" || m.ContainerID == "" {
		t.Errorf("metadata without container: %+v", m)
	}
	if !info.Created.Equal(m.Created) || info.CRIUVersion != m.CRIUVersion {
		t.Errorf("created %v criu %q, metadata says %v %q", info.Created, info.CRIUVersion, m.Created, m.CRIUVersion)
	}
}

func TestInspectCheckpointMissing(t *testing.T) {
	for name, dir := range map[string]string{
		"absent": filepath.Join(t.TempDir(), "nothing"),
		"empty":  t.TempDir(),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := InspectCheckpoint(dir)
			if !errors.Is(err, ErrCheckpointNotFound) {
				t.Fatalf("got %v, want ErrCheckpointNotFound", err)
			}
		})
	}
}

// tCheckpointDir copies a recording into a checkpoint directory of the
// library's layout, as an archive is made from: a bare images
// directory gets the minimal metadata ckptar requires.
func tCheckpointDir(t *testing.T, name, imagesDir string) string {
	t.Helper()
	src := recordingDir(name)
	dst := filepath.Join(t.TempDir(), name)
	if imagesDir == ImagesDirName {
		tCopyDir(t, src, dst)
		return dst
	}
	tCopyDir(t, src, filepath.Join(dst, ImagesDirName))
	for _, f := range []string{DumpLogName, statsDump} {
		if err := os.Rename(filepath.Join(dst, ImagesDirName, f), filepath.Join(dst, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeMetadata(dst, &Metadata{Format: metadataFormat}); err != nil {
		t.Fatal(err)
	}
	return dst
}

// tCopyDir copies the tree src to dst, which must not exist.
func tCopyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tArchive writes dir as a checkpoint archive.
func tArchive(t *testing.T, dir string, c ckptar.Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := ckptar.Write(context.Background(), dir, &buf, ckptar.WriteOptions{Compression: c}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestInspectArchive(t *testing.T) {
	for _, rec := range recordings {
		for _, c := range []ckptar.Compression{ckptar.Zstd, ckptar.Gzip, ckptar.None} {
			t.Run(rec.name+"/"+string(c), func(t *testing.T) {
				dir := tCheckpointDir(t, rec.name, rec.imagesDir)
				info, err := InspectArchive(bytes.NewReader(tArchive(t, dir, c)))
				if err != nil {
					t.Fatal(err)
				}
				tCheckInfo(t, info, tExpect(t, rec.name), filepath.Join(dir, ImagesDirName))
				if info.Dir != "" {
					t.Errorf("Dir %q for an archive", info.Dir)
				}
				if rec.container {
					tCheckMetadata(t, info)
				}
			})
		}
	}
}

// TestInspectArchiveDamaged checks that an archive whose checksums
// agree with damaged images is refused by the image checks, naming the
// archive entry.
func TestInspectArchiveDamaged(t *testing.T) {
	dir := tCheckpointDir(t, "container", ImagesDirName)
	pages := filepath.Join(dir, ImagesDirName, "pages-1.img")
	tTruncateBy(t, pages, int64(os.Getpagesize()))

	_, err := InspectArchive(bytes.NewReader(tArchive(t, dir, ckptar.Zstd)))
	tWantImageError(t, err, "checkpoint/pages-1.img")
}

func TestInspectArchiveRefused(t *testing.T) {
	flipped := tArchive(t, tCheckpointDir(t, "container", ImagesDirName), ckptar.None)
	flipped[len(flipped)/2] ^= 0xff
	for name, data := range map[string][]byte{
		"empty":              nil,
		"garbage":            []byte("this is no archive at all, not even tar"),
		"a byte flipped mid": flipped,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := InspectArchive(bytes.NewReader(data))
			if !errors.Is(err, ErrBadArchive) {
				t.Fatalf("got %v, want ErrBadArchive", err)
			}
		})
	}
}

func TestArgSpans(t *testing.T) {
	page := uint64(os.Getpagesize())
	a, b, c := 16*page, 64*page, 128*page
	pm := &pagemapImage{entries: []pagemapEntry{
		{vaddr: a, nrPages: 2, flags: pePresent},
		{vaddr: b, nrPages: 1, flags: peParent},
		{vaddr: c, nrPages: 3, flags: pePresent | 2},
	}}
	tests := []struct {
		name       string
		start, end uint64
		want       []span
	}{
		{"inside the first entry", a + 10, a + 20, []span{{10, 10}}},
		{"across two pages of an entry", a + page - 4, a + page + 4, []span{{int64(page - 4), 8}}},
		{"after a parent entry", c + page, c + page + 100, []span{{int64(3 * page), 100}}},
		{"in the parent", b, b + 8, nil},
		{"in a hole", a + 2*page, a + 2*page + 8, nil},
		{"empty", a, a, nil},
		{"past the end", c + 3*page, c + 3*page + 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &mm.MmEntry{MmArgStart: &tt.start, MmArgEnd: &tt.end}
			if got := argSpans(m, pm); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLogHeader(t *testing.T) {
	tests := []struct {
		name, log, version, kernel string
	}{
		{"criu 4.2.1", "(00.000000) CRIU run id = x\n(00.000128) Version: 4.2.1 (gitid 0)\n" +
			"(00.000135) Running on vm Linux 6.18.44-fc-v1252 #1 SMP PREEMPT_DYNAMIC @0 x86_64\n",
			"4.2.1", "6.18.44-fc-v1252"},
		{"no header", "(00.000100) Error (criu/cr-dump.c:1): nothing\n", "", ""},
		{"short running line", "(00.1) Running on vm\n(00.2) Version: 3.19\n", "3.19", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, k := logHeader(strings.NewReader(tt.log))
			if v != tt.version || k != tt.kernel {
				t.Fatalf("got %q %q, want %q %q", v, k, tt.version, tt.kernel)
			}
		})
	}
}

func TestInetAddr(t *testing.T) {
	word := func(ip string) []uint32 {
		a := netip.MustParseAddr(ip).AsSlice()
		w := make([]uint32, len(a)/4)
		for i := range w {
			w[i] = binary.NativeEndian.Uint32(a[4*i:])
		}
		return w
	}
	tests := []struct {
		words []uint32
		port  uint32
		want  string
	}{
		{word("127.0.0.1"), 8080, "127.0.0.1:8080"},
		{word("0.0.0.0"), 0, ""},
		{word("0.0.0.0"), 22, "0.0.0.0:22"},
		{word("::1"), 443, "[::1]:443"},
		{word("fe80::1:2"), 1, "[fe80::1:2]:1"},
		{[]uint32{1, 2}, 1, ""},
	}
	for _, tt := range tests {
		if got := inetAddr(tt.words, tt.port); got != tt.want {
			t.Errorf("inetAddr(%v, %d) = %q, want %q", tt.words, tt.port, got, tt.want)
		}
	}
}
