package bench

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// key names one measured series: an operation, a size and a method.
type key struct {
	op     string
	mib    int
	method string
}

// sample is one measured operation.
type sample struct {
	// total is the wall time of the whole call.
	total time.Duration
	// inner is what the library itself timed within it: the CRIU run
	// of a checkpoint, the Docker start call of a restore; 0 if none.
	inner time.Duration
	// pair is a raw criu dump run right before or after a library
	// checkpoint, 0 if none: on a machine whose load drifts, the ratio
	// of neighbours says more than a ratio of medians taken minutes
	// apart.
	pair time.Duration
}

// series are the samples of each measured key.
type series map[key][]sample

// collector gathers the samples of the whole run for the summary. The
// benchmark framework only keeps each benchmark's mean.
type collector struct {
	mu sync.Mutex
	m  series
	// bytes are sizes measured beside the times (see [report]).
	bytes map[key]int64
}

var results collector

func (c *collector) add(k key, s sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(series)
	}
	c.m[k] = append(c.m[k], s)
}

// pairLast sets the pair of the last sample of k.
func (c *collector) pairLast(k key, pair time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.m[k]; len(s) > 0 {
		s[len(s)-1].pair = pair
	}
}

// setBytes records the size n under k.
func (c *collector) setBytes(k key, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bytes == nil {
		c.bytes = make(map[key]int64)
	}
	c.bytes[k] = n
}

// report is what the summary is printed from.
type report struct {
	samples series
	// bytes holds, for the archive benchmark, the size of the
	// checkpoint directory (method sizeDir) and of each kind of
	// archive (the method that wrote it).
	bytes map[key]int64
}

func (c *collector) snapshot() report {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(series, len(c.m))
	for k, v := range c.m {
		out[k] = slices.Clone(v)
	}
	return report{samples: out, bytes: maps.Clone(c.bytes)}
}

// rateMiB is what one operation of op at size mib moves, for its MiB/s:
// the workload's nominal size, or for archives the checkpoint
// directory's (0 if unknown).
func (r report) rateMiB(op string, mib int) float64 {
	if op != opArchive {
		return float64(mib)
	}
	return mibOf(r.bytes[key{op: opArchive, mib: mib, method: sizeDir}])
}

func mibOf(n int64) float64 { return float64(n) / (1 << 20) }

// ratio is one line of the summary: num's median over den's, and the
// target it is held against (0 for none).
type ratio struct {
	num, den string
	// below is true when the ratio should stay under target, false
	// when it should exceed it.
	below  bool
	target float64
}

// The methods and ratios the summary shows, per operation.
var (
	summaryMethods = map[string][]string{
		opCheckpoint: {methodRPC, methodExec, methodRaw, methodDocker},
		opRestore:    {methodLib, methodDocker},
		opArchive: {methodExportZstd, methodExportNone, methodTarC,
			methodImportZstd, methodImportNone, methodTarX, methodTarXSync},
	}
	summaryRatios = map[string][]ratio{
		opCheckpoint: {
			{num: methodRPC, den: methodRaw, below: true, target: 1.15},
			{num: methodExec, den: methodRaw, below: true, target: 1.15},
			{num: methodDocker, den: methodRPC, target: 20},
		},
		opRestore: {{num: methodDocker, den: methodLib}},
		opArchive: {
			{num: methodExportZstd, den: methodTarC},
			{num: methodExportNone, den: methodTarC},
			{num: methodImportZstd, den: methodTarX},
			{num: methodImportNone, den: methodTarX},
			{num: methodImportZstd, den: methodTarXSync},
			{num: methodImportNone, den: methodTarXSync},
		},
	}
	innerLabel = map[string]string{
		opCheckpoint: "criu run",
		opRestore:    "docker start call",
	}
)

// printSummary writes the medians and ratios of every size measured.
func printSummary(w io.Writer, r report) {
	if len(r.samples) == 0 {
		return
	}
	fmt.Fprint(w, `
=== dockercr bench summary: median wall time per operation ===
The part the library timed itself and the rest are medians of their own.
Ratios are of medians; "paired" is the median of each library checkpoint
over a raw criu dump run right before or after it (alternating), which
cancels the drift of a loaded machine's speed between benchmarks.
Every timed restore and archive operation starts after an untimed
sync(2), so that none pays for the writeback of an earlier step.
Archive MiB/s are of the checkpoint directory's size; tar-x-sync is
tar -x followed by sync(2), as import fsyncs every file it writes.
`)
	for _, op := range []string{opCheckpoint, opRestore, opArchive} {
		for _, mib := range measuredSizes(r.samples, op) {
			fmt.Fprintf(w, "%s, %d MiB workload:\n", op, mib)
			if op == opArchive {
				printArchiveSizes(w, r, mib)
			}
			med := printMethods(w, r, op, mib)
			printRatios(w, r.samples, op, mib, med)
		}
	}
}

// printArchiveSizes writes the size of the checkpoint directory, of
// each archive, and the zstd compression ratio: the uncompressed
// archive's size over the zstd one's, the same tar stream.
func printArchiveSizes(w io.Writer, r report, mib int) {
	size := func(method string) int64 {
		return r.bytes[key{op: opArchive, mib: mib, method: method}]
	}
	dir, zstd, none := size(sizeDir), size(methodExportZstd), size(methodExportNone)
	fmt.Fprintf(w, "  checkpoint directory %.1f MiB; archive none %.1f MiB, zstd %.1f MiB",
		mibOf(dir), mibOf(none), mibOf(zstd))
	if zstd > 0 && none > 0 {
		fmt.Fprintf(w, " (compression %.2fx)", float64(none)/float64(zstd))
	}
	fmt.Fprintln(w)
}

func measuredSizes(all series, op string) []int {
	var out []int
	for k := range all {
		if k.op == op && !slices.Contains(out, k.mib) {
			out = append(out, k.mib)
		}
	}
	slices.Sort(out)
	return out
}

// printMethods writes one line per measured method and returns the
// medians.
func printMethods(w io.Writer, r report, op string, mib int) map[string]time.Duration {
	med := make(map[string]time.Duration)
	for _, m := range summaryMethods[op] {
		s := r.samples[key{op: op, mib: mib, method: m}]
		if len(s) == 0 {
			continue
		}
		med[m] = median(totals(s))
		fmt.Fprintf(w, "  %-11s %9.3fs  n=%d  %8.1f MiB/s", m, med[m].Seconds(), len(s),
			r.rateMiB(op, mib)/med[m].Seconds())
		if in := median(inners(s)); in > 0 {
			fmt.Fprintf(w, "  (%s %.3fs, rest %.3fs)", innerLabel[op],
				in.Seconds(), median(rests(s)).Seconds())
		}
		fmt.Fprintln(w)
	}
	return med
}

func printRatios(w io.Writer, all series, op string, mib int, med map[string]time.Duration) {
	for _, r := range summaryRatios[op] {
		num, okN := med[r.num]
		den, okD := med[r.den]
		if okN && okD && den > 0 {
			x := float64(num) / float64(den)
			fmt.Fprintf(w, "  %-27s %7.2fx%s\n", r.num+" / "+r.den, x, r.verdict(x))
		}

		// Pairs exist without the raw benchmark having run.
		p := pairRatios(all[key{op: op, mib: mib, method: r.num}])
		if r.den == methodRaw && len(p) > 0 {
			x := medianFloat(p)
			fmt.Fprintf(w, "  %-27s %7.2fx%s\n", r.num+" / "+r.den+", paired", x, r.verdict(x))
		}
	}
}

// pairRatios are total/pair of the samples that have a pair.
func pairRatios(s []sample) []float64 {
	var out []float64
	for _, x := range s {
		if x.pair > 0 {
			out = append(out, float64(x.total)/float64(x.pair))
		}
	}
	return out
}

// verdict says whether x meets the ratio's target.
func (r ratio) verdict(x float64) string {
	if r.target == 0 {
		return ""
	}
	met := x > r.target
	rel := ">"
	if r.below {
		met, rel = x <= r.target, "<="
	}
	word := "met"
	if !met {
		word = "MISSED"
	}
	return fmt.Sprintf("  (target %s %gx: %s)", rel, r.target, word)
}

// medianFloat is [median] for ratios.
func medianFloat(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// median returns the middle value of d, the mean of the two middle
// ones for an even count, 0 for none.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.SortFunc(s, cmp.Compare)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func totals(s []sample) []time.Duration {
	return pick(s, func(x sample) time.Duration { return x.total })
}

func inners(s []sample) []time.Duration {
	return pick(s, func(x sample) time.Duration { return x.inner })
}

// rests are the parts of each call outside what the library timed.
func rests(s []sample) []time.Duration {
	return pick(s, func(x sample) time.Duration { return x.total - x.inner })
}

func pick(s []sample, f func(sample) time.Duration) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, x := range s {
		out[i] = f(x)
	}
	return out
}
