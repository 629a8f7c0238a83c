// Package bench measures, side by side in one run and on the same
// container, how long a checkpoint and a restore take through this
// library and through the alternatives: raw `criu dump` with the options
// the library passes, and Docker's own checkpoint and restore; and how
// fast a checkpoint is exported to an archive and imported from one,
// with zstd and with no compression, beside plain tar(1) of the same
// directory.
//
// It runs only with `make bench` (go test -bench), as root, with criu
// on PATH and a dockerd started with --experimental; when one is missing
// every benchmark fails. Under a plain go test the package runs its few
// pure unit tests and touches nothing.
//
// The workload is internal/testworkload `mem -mib N` in an image of the
// static busybox and the workload, one container per size, run with
// --network none. Each iteration records its wall time in a collector;
// after the benchmarks TestMain prints, per size, the median of every
// method and the ratios between them.
package bench

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()

	// Clean up first, so that the summary ends the output.
	if err := env.close(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
		code = 1
	}
	printSummary(os.Stdout, results.snapshot())
	os.Exit(code)
}
