// Testworkload is the set of small processes that the CRIU and Docker
// integration tests checkpoint and restore. It is one static binary; the
// first argument picks the workload:
//
//	counter                               count lines only (kind "count")
//	mem -mib N [-seed S] [-verify-every D] N MiB of patterned memory
//	tcp [-addr 127.0.0.1:0]               echo over a loopback TCP pair
//	flock -file PATH                      holds flock(LOCK_EX) on PATH
//	deleted -file PATH [-kib N] [-seed S] patterned file, unlinked, fd kept
//	shm -file PATH [-kib N] [-seed S]     patterned file mapped MAP_SHARED
//	tty                                   needs a terminal on stdin
//	writefile -file PATH [-content S]     writes PATH once (kind "write")
//
// Every workload also takes -interval D (default 100ms). -kib defaults to
// 4096, more than CRIU's default --ghost-limit of 1 MiB for the deleted
// file. Build it with CGO_ENABLED=0 go build, so the binary also runs in
// an image with no libc.
//
// # Protocol
//
// The workload writes lines to stdout, each in a single write, from one
// goroutine, so lines never interleave:
//
//	ready <kind> pid=<pid> [key=value ...]   once, when fully set up
//	<kind> <n>                               every -interval, n = 0, 1, ...
//	verify ok <kind> count=<c> [detail]      answer to SIGUSR1
//	verify FAIL <kind> count=<c> <reason>    answer to SIGUSR1
//	error <message>                          then a non-zero exit
//
// n lives in process memory, so after a restore the count lines go on from
// the last one before the dump; c in a verify line is the number of count
// lines printed so far. Wait for the ready line before signalling: until
// then SIGUSR1 still has its default action and kills the process. Each
// SIGUSR1 gets exactly one verify line. SIGTERM exits with status 0.
//
// Exit status 1 means setup failed (for tty on a non-terminal the line is
// exactly "error not a tty"), 2 a bad subcommand or flag, 3 a failure after
// the ready line: a TCP read, write or echo mismatch, or a failed -verify-every
// check of mem.
//
// # Notes per workload
//
// tcp keeps its listener open next to the established pair and names the
// socket protocol of each in the ready line (listener-proto, client-proto,
// server-proto: "tcp" or "mptcp"). Since Go 1.24 the listener is MPTCP by
// default; run with GODEBUG=multipathtcp=0 for plain TCP, or without it to
// see CRIU 4.2.1 refuse the dump with "Unsupported proto 262". Dumping the
// established pair needs criu --tcp-established. -addr must be a loopback
// IP address.
//
// flock verification opens PATH again and expects LOCK_EX|LOCK_NB to fail
// with EWOULDBLOCK. deleted checks the file is still unlinked, its size and
// its content through pread. shm checks the mapping, then the file through
// the descriptor. writefile rereads PATH and compares. No workload removes
// its files, except deleted, which unlinks PATH at start.
//
// The pattern of mem, deleted and shm is a splitmix64 word per 8 bytes of
// offset: no page is zero and a page restored at the wrong offset fails.
// A FAIL line names the first bad offset.
package main
