// Package dockercr checkpoints and restores running Linux process trees
// and Docker containers with CRIU.
//
// A [Checkpointer], configured once with functional options named after
// CRIU's flags ([WithLeaveRunning], [WithTCPEstablished],
// [WithFileLocks], ...), dumps a process tree into a directory with
// [Checkpointer.Checkpoint] and brings it back with
// [Checkpointer.Restore]. [Docker] builds on it: [Docker.Checkpoint]
// dumps a container by name with CRIU directly (Docker's own checkpoint
// path tars every image through containerd and is tens of times
// slower), and [Docker.Restore] and [Docker.RestoreAs] restore it through
// Docker, so the container runs under Docker's management again.
//
// # Requirements
//
// Root (CRIU needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE, and this
// package does not use CRIU's --unprivileged mode), and criu
// [MinCRIUVersion] or newer. Newer kernels need newer CRIU: kernel 6.13
// and later map a [vvar_vclock] area that CRIU before 4.1 rejects, and
// on kernel 6.18 only CRIU 4.2 dumps TCP sockets. The Docker integration
// needs Docker Engine 20.10 or later with runc, and the checkpoint
// directories on the host Docker runs on.
//
// # Backends
//
// CRIU is driven through a [Backend]. [RPCBackend] speaks CRIU's RPC
// protocol to `criu swrk`, using go-criu's protocol types with a client
// of this package's own (it honours contexts, passes descriptors, and
// never truncates replies). [ExecBackend] runs the criu command line.
// [AutoBackend], the default, uses RPC and falls back to exec only when
// the RPC channel fails before CRIU received the request; a failure
// CRIU reports is never retried, because a second dump would freeze the
// workload again. Every option reaches both backends through the one
// [Request].
//
// # Checkpoint directories
//
// A checkpoint directory holds images/ (CRIU's images), dump.log,
// stats-dump and, after a restore, restore.log. It is written into a
// hidden temporary sibling and renamed into place only when CRIU
// succeeded: a directory at the checkpoint's path is always complete.
// Directories are 0700 and files 0600, since images hold process
// memory.
//
// # Errors
//
// A failed CRIU run returns a [*CRIUError] that carries the first
// "Error" lines of CRIU's log (the socket, file or mount that stopped
// it) and the log's path. Broad kinds match with [errors.Is]:
// [ErrCRIUNotFound], [ErrCRIUTooOld], [ErrNotSupported],
// [ErrNotPermitted], [ErrProcessNotFound], [ErrCheckpointExists] and the
// container errors of the Docker integration.
//
// # When not to use it
//
// This package does not migrate network identity, pre-dump or
// live-migrate memory (the kernels it is tested on have no soft-dirty
// tracking), or restore a container whose Docker runtime is not runc.
// Docker's own `docker checkpoint` commands remain the portable choice
// when speed and CRIU's options do not matter.
package dockercr
