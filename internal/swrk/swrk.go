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

	"github.com/docker-cr/dockercr/internal/procgroup"
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
	stop func()

	mu      sync.Mutex
	stopped bool
}

// Start runs `criuPath swrk 3` with the server end of a socket pair as
// fd 3 and extra as fds 4, 5, ... Once ctx is done, the child and the
// helpers it forked are killed, after grace (see procgroup.KillOnDone),
// and a read blocked on the channel returns.
func Start(ctx context.Context, criuPath string, extra []*os.File, grace time.Duration) (*Client, error) {
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

	cmd := exec.Command(criuPath, "swrk", "3")
	cmd.ExtraFiles = append([]*os.File{srv}, extra...)
	cmd.WaitDelay = waitDelay
	// CRIU must not share our process group: a terminal's SIGINT meant
	// for the caller would otherwise kill criu mid-dump. Its own group
	// also lets procgroup kill the helpers it forks.
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		cln.Close()
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}

	c := &Client{cmd: cmd, sock: cln}
	c.stop = procgroup.KillOnDone(ctx, cmd.Process, grace, func() {
		_ = cln.SetReadDeadline(time.Now())
	})
	return c, nil
}

// PID returns the process ID of the swrk child.
func (c *Client) PID() int { return c.cmd.Process.Pid }

// Call sends req and reads replies until one that is not a
// notification. Each notification (CRIU sends them when the request
// sets notify_scripts) is answered with what notify returns: false
// fails that step, and CRIU rolls back as it does when a hook script
// fails; a nil notify accepts every step. CRIU's own failure is
// returned as a reply with Success false and a nil error: the caller
// decides how to report it.
func (c *Client) Call(req *rpc.CriuReq, notify func(*rpc.CriuNotify) bool) (*rpc.CriuResp, error) {
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
		ok := notify == nil || notify(resp.GetNotify())
		ack := &rpc.CriuReq{
			Type:          rpc.CriuReqType_NOTIFY.Enum(),
			NotifySuccess: proto.Bool(ok),
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
	c.stop()
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
