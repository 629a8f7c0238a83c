package dockercr

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/stats"
)

// DumpStats is what CRIU measured during a dump (its stats-dump image).
type DumpStats struct {
	// FreezingTime is how long stopping every task took.
	FreezingTime time.Duration
	// FrozenTime is how long the tasks stayed stopped.
	FrozenTime time.Duration
	// MemdumpTime is how long collecting memory pages took.
	MemdumpTime time.Duration
	// MemwriteTime is how long writing pages to the images took.
	MemwriteTime time.Duration

	PagesScanned       uint64
	PagesSkippedParent uint64
	PagesWritten       uint64
	PagesLazy          uint64
}

// RestoreStats is what CRIU measured during a restore (stats-restore).
type RestoreStats struct {
	// ForkingTime is how long recreating the process tree took.
	ForkingTime time.Duration
	// RestoreTime is how long the whole restore took.
	RestoreTime time.Duration

	PagesCompared   uint64
	PagesSkippedCOW uint64
	PagesRestored   uint64
}

// CRIU records times in microseconds.
func usec(v uint32) time.Duration { return time.Duration(v) * time.Microsecond }

func readDumpStats(workDir string) (DumpStats, error) {
	dir, err := os.Open(workDir)
	if err != nil {
		return DumpStats{}, err
	}
	defer dir.Close()
	s, err := stats.CriuGetDumpStats(dir)
	if err != nil {
		return DumpStats{}, fmt.Errorf("read %s: %w", stats.StatsDump, err)
	}
	return DumpStats{
		FreezingTime:       usec(s.GetFreezingTime()),
		FrozenTime:         usec(s.GetFrozenTime()),
		MemdumpTime:        usec(s.GetMemdumpTime()),
		MemwriteTime:       usec(s.GetMemwriteTime()),
		PagesScanned:       s.GetPagesScanned(),
		PagesSkippedParent: s.GetPagesSkippedParent(),
		PagesWritten:       s.GetPagesWritten(),
		PagesLazy:          s.GetPagesLazy(),
	}, nil
}

// readRestoreStats reads stats-restore from workDir and makes it 0600
// first: CRIU 4.2.1 creates it 0644, in a directory whose files are
// otherwise all 0600.
func readRestoreStats(workDir string) (RestoreStats, error) {
	if err := os.Chmod(filepath.Join(workDir, stats.StatsRestore), 0o600); err != nil {
		return RestoreStats{}, err
	}
	dir, err := os.Open(workDir)
	if err != nil {
		return RestoreStats{}, err
	}
	defer dir.Close()
	s, err := stats.CriuGetRestoreStats(dir)
	if err != nil {
		return RestoreStats{}, fmt.Errorf("read %s: %w", stats.StatsRestore, err)
	}
	return RestoreStats{
		ForkingTime:     usec(s.GetForkingTime()),
		RestoreTime:     usec(s.GetRestoreTime()),
		PagesCompared:   s.GetPagesCompared(),
		PagesSkippedCOW: s.GetPagesSkippedCow(),
		PagesRestored:   s.GetPagesRestored(),
	}, nil
}
