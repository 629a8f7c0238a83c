package dockercr

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
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
