package dockercr

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	skinet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	skunix "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-unix"
	"golang.org/x/sys/unix"

	"github.com/docker-cr/dockercr/internal/ckptar"
)

// CheckpointInfo is what a checkpoint holds, as its images, metadata,
// log and statistics tell.
type CheckpointInfo struct {
	// Dir is the checkpoint directory inspected, "" for an archive.
	Dir string `json:"dir,omitempty"`
	// Metadata describes the container of a container checkpoint; nil
	// for a checkpoint of plain processes.
	Metadata *Metadata `json:"metadata,omitempty"`

	// CRIUVersion and Kernel are those of the dump: from the metadata,
	// else from the head of CRIU's dump.log; "" when neither is there.
	CRIUVersion string `json:"criuVersion,omitempty"`
	Kernel      string `json:"kernel,omitempty"`
	// Created is when the dump was made: from the metadata, else the
	// modification time of inventory.img (the images record none).
	Created time.Time `json:"created"`

	// Processes are the dumped tree, the root first.
	Processes []ProcessInfo `json:"processes"`
	// Files are the open descriptors of every process, by PID and FD.
	Files []FileInfo `json:"files"`
	// Sockets are the descriptors of Files that are sockets.
	Sockets []SocketInfo `json:"sockets"`

	// MemoryBytes is the size of the pages-*.img images, the memory
	// the dump holds; ImagesBytes that of every file of the images.
	MemoryBytes int64 `json:"memoryBytes"`
	ImagesBytes int64 `json:"imagesBytes"`
	// Stats are CRIU's dump statistics; nil without a stats-dump.
	Stats *DumpStats `json:"stats,omitempty"`
}

// ProcessInfo is one process of a checkpoint. PIDs are as the dumped
// tree saw them: inside its PID namespace for a container.
type ProcessInfo struct {
	PID  int `json:"pid"`
	PPID int `json:"ppid"`
	PGID int `json:"pgid"`
	SID  int `json:"sid"`
	// Threads are the thread IDs, the leader (PID) first.
	Threads []int `json:"threads"`
	// State is "running", "stopped", "zombie" or "dead".
	State string `json:"state"`
	// Comm is the kernel's 15-character task name.
	Comm string `json:"comm"`
	// Cmdline is read from the dumped memory between the argument
	// start and end of mm-PID.img, as /proc/PID/cmdline would show it.
	// Best effort: nil when those pages are not in this dump (a zombie,
	// pages left in a parent pre-dump, an archive that holds the pages
	// before the memory maps), and what the process wrote there if it
	// rewrote its arguments. At most 64 KiB.
	Cmdline []string `json:"cmdline"`
	// Exe is the executable's path, Cwd the working directory's.
	Exe string `json:"exe,omitempty"`
	Cwd string `json:"cwd,omitempty"`
}

// FileInfo is one open descriptor of a process.
type FileInfo struct {
	PID int `json:"pid"`
	FD  int `json:"fd"`
	// Type is "reg", "pipe", "fifo", "unix", "inet", "packet",
	// "netlink", "eventfd", "eventpoll", "inotify", "signalfd", "tty",
	// "timerfd", "memfd", "ns", "tun", "ext" or "bpfmap".
	Type string `json:"type"`
	// Path is the file's path for a file or FIFO, else a description
	// the way /proc/PID/fd shows it: "pipe:[INODE]", "socket:[INODE]",
	// "anon_inode:[eventfd]".
	Path string `json:"path"`
}

// SocketInfo is a socket descriptor of a process.
type SocketInfo struct {
	PID   int    `json:"pid"`
	FD    int    `json:"fd"`
	Inode uint32 `json:"inode,omitempty"`
	// Family is "unix", "inet", "inet6", "packet" or "netlink".
	Family string `json:"family"`
	// Type is "stream", "dgram", "seqpacket", "raw" or "packet".
	Type string `json:"type"`
	// Protocol is "tcp", "udp", ... for inet sockets, else "".
	Protocol string `json:"protocol,omitempty"`
	// State is the kernel's name ("LISTEN", "ESTABLISHED", "CLOSE");
	// "UNCONN" for a datagram socket without a peer.
	State string `json:"state,omitempty"`
	// Local and Remote are "ADDR:PORT" for inet sockets; for unix ones
	// the bound path ("@NAME" if abstract) and the peer's, or
	// "socket:[INODE]" for an unnamed peer. "" when there is none.
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
}

// InspectCheckpoint describes the checkpoint in dir: a checkpoint
// directory of this package (with images/ inside) or a bare CRIU
// images directory. It refuses images that [ValidateImages] refuses,
// with the same error, so what it reports is what a restore would use;
// it reads no more of the memory pages than the command lines.
func InspectCheckpoint(dir string) (*CheckpointInfo, error) {
	imagesDir := filepath.Join(dir, ImagesDirName)
	if fi, err := os.Stat(imagesDir); err != nil || !fi.IsDir() {
		imagesDir = dir
	}
	set, err := openDirImages(imagesDir)
	if err != nil {
		return nil, err
	}
	img, err := checkImages(set)
	if err != nil {
		return nil, err
	}

	info := describeImages(img)
	info.Dir = dir
	if fi, err := os.Stat(set.path(inventoryImg)); err == nil {
		info.Created = fi.ModTime()
	}
	if err := info.readDirExtras(dir, imagesDir); err != nil {
		return nil, err
	}
	return info, nil
}

// readDirExtras adds what lies beside the images: the metadata, the
// head of the dump log and the statistics, each looked for in the
// checkpoint directory, then among the images (where a bare criu dump
// without a work dir puts them).
func (info *CheckpointInfo) readDirExtras(dir, imagesDir string) error {
	if _, err := os.Stat(filepath.Join(dir, MetadataName)); err == nil {
		m, err := ReadMetadata(dir)
		if err != nil {
			return err
		}
		info.Metadata = m
	}
	for _, d := range []string{dir, imagesDir} {
		if f, err := os.Open(filepath.Join(d, DumpLogName)); err == nil {
			info.CRIUVersion, info.Kernel = logHeader(f)
			f.Close()
			break
		}
	}
	for _, d := range []string{dir, imagesDir} {
		b, err := os.ReadFile(filepath.Join(d, statsDump))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			info.Stats, err = decodeDumpStats(b, filepath.Join(d, statsDump))
		}
		if err != nil {
			return err
		}
		break
	}
	info.fromMetadata()
	return nil
}

// fromMetadata lets the metadata, which the library wrote at dump
// time, override what was guessed from files.
func (info *CheckpointInfo) fromMetadata() {
	m := info.Metadata
	if m == nil {
		return
	}
	if m.CRIUVersion != "" {
		info.CRIUVersion = m.CRIUVersion
	}
	if m.Kernel != "" {
		info.Kernel = m.Kernel
	}
	if !m.Created.IsZero() {
		info.Created = m.Created
	}
}

// logHeadSize is how much of a CRIU log holds its header lines.
const logHeadSize = 16 << 10

// logHeader finds CRIU's version and the kernel release in the first
// lines of a CRIU log: "Version: 4.2.1 (gitid 0)" and "Running on
// HOST Linux RELEASE ...", which CRIU 3.x and 4.x log at level 3 and
// above.
func logHeader(r io.Reader) (version, kernel string) {
	sc := bufio.NewScanner(io.LimitReader(r, logHeadSize))
	for i := 0; sc.Scan() && i < 50 && (version == "" || kernel == ""); i++ {
		line := sc.Text()
		if _, rest, ok := strings.Cut(line, ") Version: "); ok {
			version, _, _ = strings.Cut(rest, " ")
		}
		if _, rest, ok := strings.Cut(line, ") Running on "); ok {
			if f := strings.Fields(rest); len(f) >= 3 {
				kernel = f[2]
			}
		}
	}
	return version, kernel
}

// describeImages builds what the decoded images say.
func describeImages(img *images) *CheckpointInfo {
	info := &CheckpointInfo{Processes: []ProcessInfo{}, Files: []FileInfo{}, Sockets: []SocketInfo{}}
	for _, name := range img.set.names() {
		n, _ := img.set.size(name)
		info.ImagesBytes += n
		if isPagesImg(name) {
			info.MemoryBytes += n
		}
	}
	for _, p := range img.procs {
		info.Processes = append(info.Processes, img.describeProc(p))
		info.addFds(img, p)
	}
	return info
}

func (img *images) describeProc(p *procImages) ProcessInfo {
	e := p.entry
	pi := ProcessInfo{
		PID: int(e.GetPid()), PPID: int(e.GetPpid()), PGID: int(e.GetPgid()), SID: int(e.GetSid()),
		State: taskStateName(p.core.GetTc().GetTaskState()),
		Comm:  p.core.GetTc().GetComm(),
	}
	for _, t := range threadIDs(e) {
		pi.Threads = append(pi.Threads, int(t))
	}
	if p.mm != nil {
		pi.Exe = img.fileName(p.mm.GetExeFileId())
		pi.Cmdline = img.cmdline(p)
	}
	if p.fs != nil {
		pi.Cwd = img.fileName(p.fs.GetCwdId())
	}
	return pi
}

func taskStateName(s uint32) string {
	switch s {
	case taskAlive:
		return "running"
	case taskStopped:
		return "stopped"
	case taskZombie:
		return "zombie"
	case taskDead:
		return "dead"
	}
	return fmt.Sprintf("state %d", s)
}

// fileName is the path of regular file id of files.img, "" if unknown.
func (img *images) fileName(id uint32) string {
	return img.files[id].GetReg().GetName()
}

// addFds lists the descriptors of p, and its sockets.
func (info *CheckpointInfo) addFds(img *images, p *procImages) {
	pid := int(p.entry.GetPid())
	for _, fd := range p.fds {
		f := img.files[fd.GetId()]
		info.Files = append(info.Files, FileInfo{PID: pid, FD: int(fd.GetFd()),
			Type: fdTypeName(fd.GetType()), Path: img.describeFile(fd, f)})
		if s, ok := img.describeSocket(f); ok {
			s.PID, s.FD = pid, int(fd.GetFd())
			info.Sockets = append(info.Sockets, s)
		}
	}
}

// fdTypeNames shortens CRIU's descriptor types.
var fdTypeNames = map[fdinfo.FdTypes]string{
	fdinfo.FdTypes_INETSK:    "inet",
	fdinfo.FdTypes_UNIXSK:    "unix",
	fdinfo.FdTypes_PACKETSK:  "packet",
	fdinfo.FdTypes_NETLINKSK: "netlink",
	fdinfo.FdTypes_TUNF:      "tun",
}

func fdTypeName(t fdinfo.FdTypes) string {
	if n, ok := fdTypeNames[t]; ok {
		return n
	}
	return strings.ToLower(t.String())
}

// describeFile names a descriptor's file as /proc/PID/fd would.
func (img *images) describeFile(fd *fdinfo.FdinfoEntry, f *fdinfo.FileEntry) string {
	switch fd.GetType() {
	case fdinfo.FdTypes_REG:
		return f.GetReg().GetName()
	case fdinfo.FdTypes_FIFO:
		return img.fileName(f.GetFifo().GetRegfId())
	case fdinfo.FdTypes_PIPE:
		return fmt.Sprintf("pipe:[%d]", f.GetPipe().GetPipeId())
	case fdinfo.FdTypes_INETSK:
		return fmt.Sprintf("socket:[%d]", f.GetIsk().GetIno())
	case fdinfo.FdTypes_UNIXSK:
		return fmt.Sprintf("socket:[%d]", f.GetUsk().GetIno())
	case fdinfo.FdTypes_NETLINKSK:
		return fmt.Sprintf("socket:[%d]", f.GetNlsk().GetIno())
	case fdinfo.FdTypes_EVENTFD, fdinfo.FdTypes_EVENTPOLL, fdinfo.FdTypes_SIGNALFD,
		fdinfo.FdTypes_TIMERFD, fdinfo.FdTypes_INOTIFY, fdinfo.FdTypes_FANOTIFY:
		return "anon_inode:[" + fdTypeName(fd.GetType()) + "]"
	case fdinfo.FdTypes_NS:
		return fmt.Sprintf("ns:[%d]", f.GetNsf().GetNsId())
	case fdinfo.FdTypes_TUNF:
		return "/dev/net/tun"
	}
	return fmt.Sprintf("%s:[id %d]", fdTypeName(fd.GetType()), fd.GetId())
}

// describeSocket says what files.img knows of a socket.
func (img *images) describeSocket(f *fdinfo.FileEntry) (SocketInfo, bool) {
	switch {
	case f.GetIsk() != nil:
		return inetSocket(f.GetIsk()), true
	case f.GetUsk() != nil:
		return img.unixSocket(f.GetUsk()), true
	case f.GetPsk() != nil:
		return SocketInfo{Family: "packet", Type: sockTypeName(f.GetPsk().GetType()),
			Protocol: fmt.Sprintf("%#04x", f.GetPsk().GetProtocol())}, true
	case f.GetNlsk() != nil:
		return SocketInfo{Family: "netlink", Inode: f.GetNlsk().GetIno(), Type: "raw",
			Protocol: fmt.Sprintf("%d", f.GetNlsk().GetProtocol())}, true
	}
	return SocketInfo{}, false
}

func inetSocket(sk *skinet.InetSkEntry) SocketInfo {
	s := SocketInfo{
		Inode: sk.GetIno(), Family: "inet", Type: sockTypeName(sk.GetType()),
		Protocol: ipProtoNames[sk.GetProto()],
		State:    sockStateName(sk.GetState(), sk.GetType()),
		Local:    inetAddr(sk.GetSrcAddr(), sk.GetSrcPort()),
		Remote:   inetAddr(sk.GetDstAddr(), sk.GetDstPort()),
	}
	if sk.GetFamily() == unix.AF_INET6 {
		s.Family = "inet6"
	}
	return s
}

// inetAddr renders an address of an inet_sk_entry: one word for IPv4,
// four for IPv6, each holding four bytes in network order as CRIU
// copied them from the kernel, so read in the host's byte order. ""
// for an unspecified address with port 0.
func inetAddr(words []uint32, port uint32) string {
	b := make([]byte, 4*len(words))
	for i, w := range words {
		binary.NativeEndian.PutUint32(b[4*i:], w)
	}
	a, ok := netip.AddrFromSlice(b)
	if !ok || (a.IsUnspecified() && port == 0) {
		return ""
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

func (img *images) unixSocket(sk *skunix.UnixSkEntry) SocketInfo {
	s := SocketInfo{
		Inode: sk.GetIno(), Family: "unix", Type: sockTypeName(sk.GetType()),
		State: sockStateName(sk.GetState(), sk.GetType()),
		Local: unixName(sk.GetName()),
	}
	if peer := sk.GetPeer(); peer != 0 {
		s.Remote = fmt.Sprintf("socket:[%d]", peer)
		if name := img.unixNameOf(peer); name != "" {
			s.Remote = name
		}
	}
	return s
}

// unixNameOf is the bound name of the unix socket with inode ino.
func (img *images) unixNameOf(ino uint32) string {
	for _, f := range img.files {
		if u := f.GetUsk(); u != nil && u.GetIno() == ino {
			return unixName(u.GetName())
		}
	}
	return ""
}

// unixName shows an abstract name (a leading NUL) with "@", as ss does.
func unixName(b []byte) string {
	if len(b) > 0 && b[0] == 0 {
		return "@" + string(b[1:])
	}
	return string(b)
}

var ipProtoNames = map[uint32]string{
	unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_UDPLITE: "udplite",
	unix.IPPROTO_ICMP: "icmp", unix.IPPROTO_ICMPV6: "icmpv6", unix.IPPROTO_RAW: "raw",
	unix.IPPROTO_MPTCP: "mptcp",
}

func sockTypeName(t uint32) string {
	switch t {
	case unix.SOCK_STREAM:
		return "stream"
	case unix.SOCK_DGRAM:
		return "dgram"
	case unix.SOCK_SEQPACKET:
		return "seqpacket"
	case unix.SOCK_RAW:
		return "raw"
	case unix.SOCK_PACKET:
		return "packet"
	}
	return fmt.Sprintf("type %d", t)
}

// tcpStates are the kernel's socket states (include/net/tcp_states.h),
// which it uses for every socket family.
var tcpStates = []string{1: "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}

const tcpClose = 7

func sockStateName(state, typ uint32) string {
	if state == tcpClose && typ == unix.SOCK_DGRAM {
		return "UNCONN"
	}
	if int(state) < len(tcpStates) && tcpStates[state] != "" {
		return tcpStates[state]
	}
	return fmt.Sprintf("state %d", state)
}

// maxCmdline bounds the argument area read from memory.
const maxCmdline = 64 << 10

// span is a range of bytes of a pages image.
type span struct {
	off int64
	n   int
}

// cmdline reads the process's arguments from its dumped memory.
func (img *images) cmdline(p *procImages) []string {
	spans := argSpans(p.mm, p.pagemap)
	if spans == nil {
		return nil
	}
	var b []byte
	name := pagesImg(p.pagemap.pagesID)
	for _, s := range spans {
		part, err := img.set.readAt(name, s.off, s.n)
		if err != nil {
			return nil
		}
		b = append(b, part...)
	}
	return splitArgs(b)
}

// argSpans maps the argument area [mm_arg_start, mm_arg_end) to spans
// of the pages image: the pages of PE_PRESENT entries follow each
// other there in pagemap order. nil if some page of the area is not
// in the image (never touched, zero, or in a parent dump).
func argSpans(m *mm.MmEntry, pm *pagemapImage) []span {
	start, end := m.GetMmArgStart(), m.GetMmArgEnd()
	if pm == nil || end <= start {
		return nil
	}
	end = min(end, start+maxCmdline)
	page := uint64(os.Getpagesize())
	var spans []span
	var off uint64
	for _, e := range pm.entries {
		if start >= end {
			break
		}
		if e.nrPages > (1<<52)/page {
			return nil
		}
		eEnd := e.vaddr + e.nrPages*page
		present := e.flags&pePresent != 0
		if start < e.vaddr {
			return nil
		}
		if start < eEnd {
			if !present {
				return nil
			}
			n := min(end, eEnd) - start
			spans = append(spans, span{off: int64(off + start - e.vaddr), n: int(n)})
			start += n
		}
		if present {
			off += e.nrPages * page
		}
	}
	if start < end {
		return nil
	}
	return spans
}

// splitArgs splits NUL-terminated arguments.
func splitArgs(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// InspectArchive describes the checkpoint archive read from r (zstd,
// gzip or plain tar, images under checkpoint/) without unpacking it to
// disk. The images it decodes are held in memory, at most 1 GiB of
// them; pages images are only sized, but for the few bytes of each
// command line, captured as the stream passes. Nothing it reports is
// taken from the archive before the whole stream has been read and
// every file checked against the archive's checksums.
//
// It refuses an archive [ImportCheckpoint] would refuse, with
// [ErrBadArchive], and images that [ValidateImages] would refuse;
// [ImageError.File] then names the archive entry, such as
// "checkpoint/pages-1.img". Info.Created comes from the metadata only.
func InspectArchive(r io.Reader) (*CheckpointInfo, error) {
	a := &archiveImages{
		kept:  make(map[string][]byte),
		sizes: make(map[string]int64),
		spans: make(map[string]map[int64][]byte),
	}
	if err := walkArchive(r, a.entry); err != nil {
		return nil, err
	}
	if _, ok := a.sizes[inventoryImg]; !ok {
		return nil, fmt.Errorf("%w: archive has no %s",
			ErrCheckpointNotFound, archiveImagesDir+"/"+inventoryImg)
	}
	img, err := checkImages(a)
	if err != nil {
		return nil, err
	}

	info := describeImages(img)
	if err := info.readArchiveExtras(a); err != nil {
		return nil, err
	}
	return info, nil
}

// readArchiveExtras adds what the archive holds beside the images.
func (info *CheckpointInfo) readArchiveExtras(a *archiveImages) error {
	if a.metadata != nil {
		m, err := decodeMetadata(a.metadata, MetadataName)
		if err != nil {
			return fmt.Errorf("%w: entry %q: %w", ErrBadArchive, MetadataName, err)
		}
		info.Metadata = m
	}
	if a.stats != nil {
		st, err := decodeDumpStats(a.stats, statsDump)
		if err != nil {
			return err
		}
		info.Stats = st
	}
	info.CRIUVersion, info.Kernel = logHeader(bytes.NewReader(a.logHead))
	info.fromMetadata()
	return nil
}

// archiveImagesDir is the archive's folder of images, after Podman.
const archiveImagesDir = "checkpoint"

// Bounds on what an archive makes InspectArchive hold in memory.
const (
	maxArchiveKept = 1 << 30
	maxSmallFile   = 16 << 20
)

// archiveImages is an imageSet of the images of an archive: the small
// ones kept, the pages only sized, with the spans of them asked for.
type archiveImages struct {
	kept     map[string][]byte
	keptSize int64
	sizes    map[string]int64
	// spans are the captured bytes of pages images, by offset; planned
	// says they were chosen, at the first pages image.
	spans   map[string]map[int64][]byte
	planned map[string][]span

	// metadata, stats and logHead are checkpoint.json, stats-dump and
	// the first bytes of dump.log, nil where absent.
	metadata, stats, logHead []byte
}

func (a *archiveImages) path(name string) string { return archiveImagesDir + "/" + name }

func (a *archiveImages) size(name string) (int64, error) {
	if n, ok := a.sizes[name]; ok {
		return n, nil
	}
	return 0, fs.ErrNotExist
}

func (a *archiveImages) read(name string) ([]byte, error) {
	if b, ok := a.kept[name]; ok {
		return b, nil
	}
	if _, ok := a.sizes[name]; ok {
		return nil, errors.New("not held in memory")
	}
	return nil, fs.ErrNotExist
}

func (a *archiveImages) readAt(name string, off int64, n int) ([]byte, error) {
	if b, ok := a.spans[name][off]; ok && len(b) == n {
		return b, nil
	}
	return nil, errors.New("not captured from the archive")
}

func (a *archiveImages) names() []string {
	names := make([]string, 0, len(a.sizes))
	for n := range a.sizes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// entry takes one file of the archive.
func (a *archiveImages) entry(name string, size int64, body io.Reader) error {
	var err error
	switch name {
	case MetadataName:
		a.metadata, err = readSmall(name, body)
		return err
	case statsDump:
		a.stats, err = readSmall(name, body)
		return err
	case DumpLogName:
		a.logHead, err = io.ReadAll(io.LimitReader(body, logHeadSize))
		return err
	}
	image, ok := strings.CutPrefix(name, archiveImagesDir+"/")
	if !ok || image == "" || strings.Contains(image, "/") {
		return nil
	}
	return a.image(image, size, body)
}

// image takes one image: pages are sized and their planned spans
// captured, the images inspection decodes are kept, others sized.
func (a *archiveImages) image(name string, size int64, body io.Reader) error {
	a.sizes[name] = size
	if isPagesImg(name) {
		if a.planned == nil {
			a.planned = planArgSpans(a)
		}
		return a.capture(name, body)
	}
	if !keptImage(name) {
		return nil
	}
	if a.keptSize+size > maxArchiveKept || size > maxImageSize {
		return &ImageError{File: a.path(name), Reason: fmt.Sprintf(
			"images other than pages exceed %d MiB", maxArchiveKept>>20)}
	}
	b, err := io.ReadAll(io.LimitReader(body, size))
	if err != nil {
		return fmt.Errorf("read %s: %w", a.path(name), err)
	}
	a.kept[name] = b
	a.keptSize += int64(len(b))
	return nil
}

// keptImage says whether inspection decodes the image.
func keptImage(name string) bool {
	switch name {
	case inventoryImg, pstreeImg, filesImg:
		return true
	}
	for _, p := range []string{"core-", "mm-", "pagemap-", "ids-", "fdinfo-", "fs-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// planArgSpans chooses, from the pstree, mm and pagemap images seen
// so far, the spans of pages images that hold command lines. Images
// that do not decode plan nothing; validation reports them later.
func planArgSpans(a *archiveImages) map[string][]span {
	plan := make(map[string][]span)
	entries, err := decodePstree(a)
	if err != nil {
		return plan
	}
	for _, e := range entries {
		m := &mm.MmEntry{}
		if decodeOne(a, mmImg(e.GetPid()), magicCommon, magicMM, m) != nil {
			continue
		}
		pm, err := decodePagemap(a, pagemapImg(e.GetPid()))
		if err != nil {
			continue
		}
		name := pagesImg(pm.pagesID)
		plan[name] = append(plan[name], argSpans(m, pm)...)
	}
	return plan
}

// capture reads the planned spans of a pages image from its stream.
func (a *archiveImages) capture(name string, body io.Reader) error {
	spans := a.planned[name]
	sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
	var pos int64
	for _, s := range spans {
		if s.off < pos {
			continue
		}
		// A pages image shorter than its pagemap says fails validation
		// later, naming it; here it only ends the capture.
		if _, err := io.CopyN(io.Discard, body, s.off-pos); err != nil {
			return ignoreEOF(err)
		}
		b := make([]byte, s.n)
		if _, err := io.ReadFull(body, b); err != nil {
			return ignoreEOF(err)
		}
		if a.spans[name] == nil {
			a.spans[name] = make(map[int64][]byte)
		}
		a.spans[name][s.off] = b
		pos = s.off + int64(s.n)
	}
	return nil
}

// readSmall reads a metadata file of an archive, bounded.
func readSmall(name string, r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSmallFile+1))
	if err == nil && len(b) > maxSmallFile {
		err = fmt.Errorf("%s is larger than %d MiB", name, maxSmallFile>>20)
	}
	return b, err
}

// decodeMetadata is [ReadMetadata] on the bytes of checkpoint.json.
func decodeMetadata(b []byte, where string) (*Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if m.Format != metadataFormat {
		return nil, fmt.Errorf("%s: format %d, this library reads %d", where, m.Format, metadataFormat)
	}
	return &m, nil
}

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// walkArchive calls fn for each file of a checkpoint archive, in
// archive order, through internal/ckptar, which checks names, types,
// the default [ArchiveLimits] and, once the stream ends, the checksum
// of every file. A refused archive matches [ErrBadArchive].
func walkArchive(r io.Reader, fn func(name string, size int64, body io.Reader) error) error {
	err := ckptar.Walk(r, ckptar.Limits{}, func(e ckptar.Entry, body io.Reader) error {
		if e.Dir {
			return nil
		}
		return fn(e.Name, e.Size, body)
	})
	if errors.Is(err, ckptar.ErrInvalid) {
		return fmt.Errorf("%w: %w", ErrBadArchive, err)
	}
	if err != nil {
		return fmt.Errorf("inspect archive: %w", err)
	}
	return nil
}
