package bench

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// The methods compared, as they appear in benchmark names.
const (
	methodRPC    = "lib-rpc"
	methodExec   = "lib-exec"
	methodRaw    = "raw-criu"
	methodDocker = "docker"
	methodLib    = "lib"

	// The archive benchmark's: Docker.Export and Docker.Import with
	// each compression, and tar(1) of the same directory.
	methodExportZstd = "export-zstd"
	methodExportNone = "export-none"
	methodImportZstd = "import-zstd"
	methodImportNone = "import-none"
	methodTarC       = "tar-c"
	methodTarX       = "tar-x"
	methodTarXSync   = "tar-x-sync"
)

// sizeDir is the method under which the archive benchmark records the
// checkpoint directory's size.
const sizeDir = "dir"

// The operations measured.
const (
	opCheckpoint = "checkpoint"
	opRestore    = "restore"
	opArchive    = "archive"
)

// sizes are the MiB of patterned memory the workload holds.
var sizes = []int{256, 1024}

func sizeName(mib int) string { return fmt.Sprintf("%dMiB", mib) }

// tContainer returns the running container of size mib, started on
// first use, and fails b if it cannot.
func tContainer(b *testing.B, e *benchEnv, mib int) *benchContainer {
	b.Helper()
	c, err := e.container(b.Context(), mib)
	if err == nil {
		err = c.ensureRunning(b.Context())
	}
	if err != nil {
		b.Fatalf("container of %d MiB: %v", mib, err)
	}
	return c
}

// measure times one operation and records it under k. op returns the
// part of its time that the library measured itself (its CRIU run or
// Docker call), 0 when there is none.
func measure(b *testing.B, k key, op func() (time.Duration, error)) {
	b.Helper()
	start := time.Now()
	inner, err := op()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s %s: %v", k.op, sizeName(k.mib), k.method, err)
	}
	results.add(k, sample{total: took, inner: inner})
}

// untimed runs f with the benchmark timer stopped and fails b on error.
func untimed(b *testing.B, what string, f func() error) {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	if err := f(); err != nil {
		b.Fatalf("%s: %v", what, err)
	}
}

// reportRate adds the throughput of mib MiB per operation over the
// timed part of the run: the workload's nominal size for checkpoints and
// restores (its Go runtime adds a few MiB), the checkpoint directory's
// size for archives.
func reportRate(b *testing.B, mib float64) {
	if s := b.Elapsed().Seconds(); s > 0 && b.N > 0 {
		b.ReportMetric(mib*float64(b.N)/s, "MiB/s")
	}
}

// settle writes every dirty page back before a timed operation. A fast
// step just before, such as the library's checkpoint, leaves its output
// dirty, and the kernel's writeback of it then lands inside whatever is
// timed next; a slow one such as Docker's checkpoint has mostly flushed
// by the time it returns, so the writeback went into the time of the
// restores from the library's checkpoints only.
//
// It does not also drop the page cache: sync alone starts every method
// from the same state (its input clean and cached, nothing dirty). In a
// run that alternated the two before restores of 256 MiB and 1 GiB,
// dropping the caches made every restore slower and the spread of each
// method wider (the library's restores of 256 MiB: 1 % with sync alone,
// 8 % with the drop): the noise of reading the images back from the
// VM's disk. A drop is also felt by everything else on the host.
func settle() error {
	syscall.Sync()
	return nil
}
