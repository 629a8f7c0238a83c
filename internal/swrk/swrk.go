// Package swrk talks CRIU's RPC protocol to a `criu swrk` child over a
// SOCK_SEQPACKET socket pair, with the request and reply types of
// go-criu's rpc package.
//
// go-criu v7's own client cannot serve this project: it starts swrk
// without a context (a cancelled dump cannot stop criu), passes no file
// descriptors to the child (inherit-fd needs them), reads replies into a
// fixed 8 KiB buffer, returns the request instead of CRIU's answer from
// FeatureCheck, and drops the restored PID. This client keeps go-criu's
// wire types and does the transport itself.
package swrk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// ErrStart means the swrk child could not be started or the request
// could not be sent: CRIU has not seen the request.
var ErrStart = errors.New("criu swrk did not start")

// ErrProtocol means the child closed the channel or sent something that
// is not a CRIU reply.
var ErrProtocol = errors.New("criu swrk protocol error")

// maxReply bounds one reply; CRIU's replies are a few hundred bytes.
const maxReply = 4 << 20

// waitDelay is how long Close waits for the child after the socket is
// closed before it is killed.
const waitDelay = 5 * time.Second

// Client is one swrk child serving one request.
type Client struct {
	cmd  *exec.Cmd
	sock *os.File

	mu      sync.Mutex
	stopped bool
}

// Start runs `criuPath swrk 3` with the server end of a socket pair as
// fd 3 and extra as fds 4, 5, ... The child is killed when ctx is done.
func Start(ctx context.Context, criuPath string, extra []*os.File) (*Client, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: socketpair: %w", ErrStart, err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	cln := os.NewFile(uintptr(fds[0]), "criu-swrk-client")
	srv := os.NewFile(uintptr(fds[1]), "criu-swrk-server")
	defer srv.Close()

	cmd := exec.CommandContext(ctx, criuPath, "swrk", "3")
	cmd.ExtraFiles = append([]*os.File{srv}, extra...)
	cmd.WaitDelay = waitDelay
	// CRIU must not share our process group: a terminal's SIGINT meant
	// for the caller would otherwise kill criu mid-dump.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process) }
	if err := cmd.Start(); err != nil {
		cln.Close()
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}

	c := &Client{cmd: cmd, sock: cln}
	// A read blocked on the socket returns once ctx is done, even if
	// the child were to linger after being killed.
	context.AfterFunc(ctx, func() { _ = cln.SetReadDeadline(time.Now()) })
	return c, nil
}

// killGroup kills the process group that Setpgid made criu's own.
// Killing criu alone is not enough: CRIU 4.2.1 forks helpers (kerndat
// probes that stop themselves for ptrace, `sh -c iptables ...`) that
// would outlive it, some stopped for good. Criu's PID names the group
// only until exec.Cmd reaps criu, so that is checked first.
func killGroup(p *os.Process) error {
	if err := p.Signal(unix.Signal(0)); err != nil {
		return err
	}
	err := unix.Kill(-p.Pid, unix.SIGKILL)
	if errors.Is(err, unix.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// PID returns the process ID of the swrk child.
func (c *Client) PID() int { return c.cmd.Process.Pid }

// Call sends req and reads replies until one that is not a
// notification. Each notification is passed to notify, whose error
// aborts the call; a nil notify acknowledges every notification.
// CRIU's own failure is returned as a reply with Success false and a nil
// error: the caller decides how to report it.
func (c *Client) Call(req *rpc.CriuReq, notify func(*rpc.CriuNotify) error) (*rpc.CriuResp, error) {
	if err := c.send(req); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	for {
		resp, err := c.recv()
		if err != nil {
			return nil, err
		}
		if resp.GetType() != rpc.CriuReqType_NOTIFY || !resp.GetSuccess() {
			return resp, nil
		}
		if notify != nil {
			if err := notify(resp.GetNotify()); err != nil {
				return nil, err
			}
		}
		ack := &rpc.CriuReq{
			Type:          rpc.CriuReqType_NOTIFY.Enum(),
			NotifySuccess: proto.Bool(true),
		}
		if err := c.send(ack); err != nil {
			return nil, fmt.Errorf("%w: acknowledging notification: %w", ErrProtocol, err)
		}
	}
}

func (c *Client) send(req *rpc.CriuReq) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	_, err = c.sock.Write(b)
	return err
}

// recv reads one whole message. It peeks at the message's real length
// first (MSG_TRUNC), so no reply is ever cut short by a fixed buffer.
func (c *Client) recv() (*rpc.CriuResp, error) {
	rc, err := c.sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		buf    []byte
		n      int
		rerr   error
		peeked bool
	)
	err = rc.Read(func(fd uintptr) bool {
		if !peeked {
			n, _, rerr = unix.Recvfrom(int(fd), nil, unix.MSG_PEEK|unix.MSG_TRUNC)
			if rerr == unix.EAGAIN {
				return false
			}
			if rerr != nil || n == 0 {
				return true
			}
			if n > maxReply {
				rerr = fmt.Errorf("reply of %d bytes exceeds %d", n, maxReply)
				return true
			}
			buf = make([]byte, n)
			peeked = true
		}
		n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if rerr != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, rerr)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: criu closed the channel without a reply", ErrProtocol)
	}
	resp := &rpc.CriuResp{}
	if err := proto.Unmarshal(buf[:n], resp); err != nil {
		return nil, fmt.Errorf("%w: %d-byte reply: %w", ErrProtocol, n, err)
	}
	return resp, nil
}

// Close closes the channel, which ends the child, and waits for it.
// The child's exit status is returned when it failed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	errClose := c.sock.Close()
	errWait := c.cmd.Wait()
	if errWait != nil {
		errWait = fmt.Errorf("criu swrk (pid %d): %w", c.cmd.Process.Pid, errWait)
	}
	return errors.Join(errClose, errWait)
}

// FD returns the descriptor number extra[i] has in the child.
func FD(i int) int32 { return int32(4 + i) }

// ExitCode returns the child's exit status after Close, -1 if it was
// killed by a signal.
func (c *Client) ExitCode() int {
	if c.cmd.ProcessState == nil {
		return 0
	}
	return c.cmd.ProcessState.ExitCode()
}

// String names the child for logs.
func (c *Client) String() string {
	return "criu swrk pid " + strconv.Itoa(c.PID())
}
