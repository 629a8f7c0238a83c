package dockercr

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	skinet "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-inet"
	skunix "github.com/checkpoint-restore/go-criu/v7/crit/images/sk-unix"
	"golang.org/x/sys/unix"
)

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
