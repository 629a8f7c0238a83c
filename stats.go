package dockercr

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/stats"
	"google.golang.org/protobuf/proto"
)

// DumpStats is what CRIU measured during a dump (its stats-dump image).
// In JSON, durations are nanoseconds.
type DumpStats struct {
	// FreezingTime is how long stopping every task took.
	FreezingTime time.Duration `json:"freezingTime"`
	// FrozenTime is how long the tasks stayed stopped.
	FrozenTime time.Duration `json:"frozenTime"`
	// MemdumpTime is how long collecting memory pages took.
	MemdumpTime time.Duration `json:"memdumpTime"`
	// MemwriteTime is how long writing pages to the images took.
	MemwriteTime time.Duration `json:"memwriteTime"`

	PagesScanned       uint64 `json:"pagesScanned"`
	PagesSkippedParent uint64 `json:"pagesSkippedParent"`
	PagesWritten       uint64 `json:"pagesWritten"`
	PagesLazy          uint64 `json:"pagesLazy"`
}

// RestoreStats is what CRIU measured during a restore (stats-restore).
type RestoreStats struct {
	// ForkingTime is how long recreating the process tree took.
	ForkingTime time.Duration `json:"forkingTime"`
	// RestoreTime is how long the whole restore took.
	RestoreTime time.Duration `json:"restoreTime"`

	PagesCompared   uint64 `json:"pagesCompared"`
	PagesSkippedCOW uint64 `json:"pagesSkippedCow"`
	PagesRestored   uint64 `json:"pagesRestored"`
}

// CRIU records times in microseconds.
func usec(v uint32) time.Duration { return time.Duration(v) * time.Microsecond }

// maxStatsImage bounds a stats image read into memory; CRIU's are a
// few dozen bytes.
const maxStatsImage = 64 << 10

func readDumpStats(workDir string) (DumpStats, error) {
	b, err := readStatsImage(workDir, stats.StatsDump)
	if err != nil {
		return DumpStats{}, err
	}
	d, err := decodeDumpStats(b, stats.StatsDump)
	if err != nil {
		return DumpStats{}, err
	}
	return *d, nil
}

// readRestoreStats reads stats-restore from workDir and makes it 0600
// first: CRIU 4.2.1 creates it 0644, in a directory whose files are
// otherwise all 0600.
func readRestoreStats(workDir string) (RestoreStats, error) {
	if err := os.Chmod(filepath.Join(workDir, stats.StatsRestore), 0o600); err != nil {
		return RestoreStats{}, err
	}
	b, err := readStatsImage(workDir, stats.StatsRestore)
	if err != nil {
		return RestoreStats{}, err
	}
	st, err := decodeStatsEntry(b, stats.StatsRestore)
	if err != nil {
		return RestoreStats{}, err
	}
	r := st.GetRestore()
	return RestoreStats{
		ForkingTime:     usec(r.GetForkingTime()),
		RestoreTime:     usec(r.GetRestoreTime()),
		PagesCompared:   r.GetPagesCompared(),
		PagesSkippedCOW: r.GetPagesSkippedCow(),
		PagesRestored:   r.GetPagesRestored(),
	}, nil
}

func readStatsImage(dir, name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStatsImage+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(b) > maxStatsImage {
		return nil, &ImageError{File: name, Reason: "larger than a stats image can be"}
	}
	return b, nil
}

// decodeStatsEntry decodes a stats image with the same bounded framing
// as every other image: go-criu v7.2's own stats reader panics when the
// entry's length field exceeds the file.
func decodeStatsEntry(b []byte, name string) (*stats.StatsEntry, error) {
	bad := func(reason string) error { return &ImageError{File: name, Reason: reason} }
	raw, err := splitEntries(b, magicService, magicStats, bad)
	if err != nil {
		return nil, err
	}
	if len(raw) != 1 {
		return nil, bad(fmt.Sprintf("%d entries, want 1", len(raw)))
	}
	st := &stats.StatsEntry{}
	if err := proto.Unmarshal(raw[0], st); err != nil {
		return nil, &ImageError{File: name, Reason: err.Error(), Err: err}
	}
	return st, nil
}

// decodeDumpStats decodes a stats-dump image.
func decodeDumpStats(b []byte, name string) (*DumpStats, error) {
	st, err := decodeStatsEntry(b, name)
	if err != nil {
		return nil, err
	}
	d := st.GetDump()
	return &DumpStats{
		FreezingTime:       usec(d.GetFreezingTime()),
		FrozenTime:         usec(d.GetFrozenTime()),
		MemdumpTime:        usec(d.GetMemdumpTime()),
		MemwriteTime:       usec(d.GetMemwriteTime()),
		PagesScanned:       d.GetPagesScanned(),
		PagesSkippedParent: d.GetPagesSkippedParent(),
		PagesWritten:       d.GetPagesWritten(),
		PagesLazy:          d.GetPagesLazy(),
	}, nil
}
