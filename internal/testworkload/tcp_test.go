package main

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
)

func TestExchange(t *testing.T) {
	tests := []struct {
		name    string
		reply   func(seq uint64) uint64
		wantErr string
	}{
		{"echo", func(seq uint64) uint64 { return seq }, ""},
		{"wrong echo", func(seq uint64) uint64 { return seq + 1 }, "echo mismatch: sent 41, got 42"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			defer server.Close()
			go fakeServer(server, tc.reply)

			c := &tcpCmd{conn: client, last: -1}
			err := c.exchange(41)
			detail, _ := c.verify()

			if tc.wantErr == "" {
				if err != nil || detail != "last=41" {
					t.Fatalf("exchange: %v, verify detail %q", err, detail)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("exchange error %v, want %q", err, tc.wantErr)
			}
			if detail != "last=none" {
				t.Fatalf("verify detail %q after a failed exchange", detail)
			}
		})
	}
}

func fakeServer(conn net.Conn, reply func(uint64) uint64) {
	var b [8]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return
	}
	binary.BigEndian.PutUint64(b[:], reply(binary.BigEndian.Uint64(b[:])))
	conn.Write(b[:])
}
