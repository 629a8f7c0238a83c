package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// tcpCmd keeps an established loopback TCP connection busy: the client end
// sends the count as a sequence number on every tick and the server end,
// in the same process, echoes it.
//
// GODEBUG is left alone on purpose: since Go 1.24 listeners open MPTCP
// sockets by default where the kernel has MPTCP, and CRIU 4.2.1 refuses to
// dump them ("Unsupported proto 262"). Run with GODEBUG=multipathtcp=0 to
// get plain TCP.
type tcpCmd struct {
	addr string
	ln   net.Listener
	conn net.Conn
	last int64 // last sequence number echoed back, -1 before the first
}

func (c *tcpCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:0", "loopback address to listen on")
}

func (c *tcpCmd) check() error {
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q is not a loopback IP address", c.addr)
	}

	return nil
}

func (c *tcpCmd) start() (*workload, error) {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return nil, err
	}

	// The kernel completes the handshake from the backlog, so dialling
	// before Accept does not block.
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	server, err := ln.Accept()
	if err != nil {
		return nil, err
	}

	// The listener stays open: it is the socket Go makes MPTCP by
	// default, while the accepted one falls back to plain TCP.
	c.ln, c.conn, c.last = ln, client, -1
	failed := make(chan error, 1)
	go echo(server, failed)

	return &workload{
		kind:   "tcp",
		detail: describeConns(ln, client, server),
		tick:   c.exchange,
		verify: c.verify,
		failed: failed,
	}, nil
}

// exchange sends seq and checks that the echo carries the same number.
func (c *tcpCmd) exchange(seq uint64) error {
	var sent, got [8]byte
	binary.BigEndian.PutUint64(sent[:], seq)
	if _, err := c.conn.Write(sent[:]); err != nil {
		return fmt.Errorf("client write of %d: %w", seq, err)
	}
	if _, err := io.ReadFull(c.conn, got[:]); err != nil {
		return fmt.Errorf("client read of echo %d: %w", seq, err)
	}

	if echoed := binary.BigEndian.Uint64(got[:]); echoed != seq {
		return fmt.Errorf("echo mismatch: sent %d, got %d", seq, echoed)
	}
	c.last = int64(seq)

	return nil
}

func (c *tcpCmd) verify() (string, error) {
	if c.last < 0 {
		return "last=none", nil
	}

	return fmt.Sprintf("last=%d", c.last), nil
}

// echo copies 8-byte messages back until the connection fails. It does
// not use io.Copy, which may splice through a pipe it creates itself.
func echo(conn net.Conn, failed chan<- error) {
	var buf [8]byte
	for {
		if _, err := io.ReadFull(conn, buf[:]); err != nil {
			failed <- fmt.Errorf("server read: %w", err)
			return
		}
		if _, err := conn.Write(buf[:]); err != nil {
			failed <- fmt.Errorf("server write: %w", err)
			return
		}
	}
}

// describeConns names both ends and the protocol of each socket as CRIU
// will see it (SO_PROTOCOL: "mptcp" is the proto 262 it refuses).
func describeConns(ln net.Listener, client, server net.Conn) string {
	return fmt.Sprintf("local=%s remote=%s listener-proto=%s "+
		"client-proto=%s server-proto=%s",
		client.LocalAddr(), client.RemoteAddr(),
		sockProto(ln), sockProto(client), sockProto(server))
}

func sockProto(sock any) string {
	sc, ok := sock.(syscall.Conn)
	if !ok {
		return "unknown"
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return "unknown"
	}

	var proto int
	var gerr error
	err = raw.Control(func(fd uintptr) {
		proto, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PROTOCOL)
	})
	if errors.Join(err, gerr) != nil {
		return "unknown"
	}

	switch proto {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_MPTCP:
		return "mptcp"
	}

	return strconv.Itoa(proto)
}
