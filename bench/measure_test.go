package bench

import (
	"fmt"
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
)

// The operations measured.
const (
	opCheckpoint = "checkpoint"
	opRestore    = "restore"
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

// reportRate adds the throughput over the timed part of the run, with
// the workload's nominal size (its Go runtime adds a few MiB).
func reportRate(b *testing.B, mib int) {
	if s := b.Elapsed().Seconds(); s > 0 && b.N > 0 {
		b.ReportMetric(float64(mib)*float64(b.N)/s, "MiB/s")
	}
}
