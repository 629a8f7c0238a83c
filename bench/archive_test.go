package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/docker-cr/dockercr"
)

// archiveKind is one compression exported and imported, with the
// methods it is recorded under.
type archiveKind struct {
	comp     dockercr.Compression
	exp, imp string
}

var archiveKinds = []archiveKind{
	{comp: dockercr.CompressZstd, exp: methodExportZstd, imp: methodImportZstd},
	{comp: dockercr.CompressNone, exp: methodExportNone, imp: methodImportNone},
}

// BenchmarkArchive exports a library checkpoint of the running
// container to a file with each compression, imports those files into a
// fresh checkpoint base, and, side by side, packs and unpacks the same
// checkpoint directory with plain tar(1). Outputs go to a temporary
// directory on the checkpoint's filesystem and are checked and removed
// after each iteration, untimed; each timed operation starts after
// [settle], since the archives of one step are still dirty when the
// next one starts.
//
// The workload's memory is a splitmix64 stream, so that no page repeats:
// zstd finds almost nothing to compress in it, and the export and
// import with zstd show its cost without its gain. Real process memory
// compresses better.
func BenchmarkArchive(b *testing.B) {
	e := tRequireEnv(b)
	for _, mib := range sizes {
		b.Run(sizeName(mib), func(b *testing.B) {
			c := tContainer(b, e, mib)
			s := tArchiveSource(b, e, c)
			for _, kind := range archiveKinds {
				b.Run(kind.exp, func(b *testing.B) { benchExport(b, s, kind) })
			}
			b.Run(methodTarC, func(b *testing.B) { benchTarCreate(b, s) })
			for _, kind := range archiveKinds {
				b.Run(kind.imp, func(b *testing.B) { benchImport(b, s, kind) })
			}
			b.Run(methodTarX, func(b *testing.B) { benchTarExtract(b, s, methodTarX) })
			b.Run(methodTarXSync, func(b *testing.B) { benchTarExtract(b, s, methodTarXSync) })
		})
	}
}

func benchExport(b *testing.B, s *archiveSource, kind archiveKind) {
	k := key{op: opArchive, mib: s.mib, method: kind.exp}
	for i := 0; b.Loop(); i++ {
		path := s.out(kind.exp, i)
		untimed(b, "settle page cache", settle)
		var sum *dockercr.ArchiveSummary
		measure(b, k, func() (time.Duration, error) {
			var err error
			sum, err = s.export(b.Context(), kind.comp, path)
			return 0, err
		})
		untimed(b, "check export", func() error {
			return errors.Join(checkExport(path, sum, kind.comp), os.Remove(path))
		})
	}
	reportRate(b, mibOf(s.bytes))
}

func benchTarCreate(b *testing.B, s *archiveSource) {
	k := key{op: opArchive, mib: s.mib, method: methodTarC}
	for i := 0; b.Loop(); i++ {
		path := s.out(methodTarC, i)
		untimed(b, "settle page cache", settle)
		measure(b, k, func() (time.Duration, error) {
			return 0, s.tarCreate(b.Context(), path)
		})
		untimed(b, "check tar", func() error {
			return errors.Join(checkTarSize(path, s.bytes), os.Remove(path))
		})
	}
	reportRate(b, mibOf(s.bytes))
}

// benchImport imports into a new checkpoint base each time, as on a
// host that never had the checkpoint.
func benchImport(b *testing.B, s *archiveSource, kind archiveKind) {
	k := key{op: opArchive, mib: s.mib, method: kind.imp}
	for i := 0; b.Loop(); i++ {
		base := s.out(kind.imp, i)
		var d *dockercr.Docker
		untimed(b, "fresh checkpoint base", func() error {
			var err error
			d, err = s.freshBase(base)
			return err
		})
		untimed(b, "settle page cache", settle)
		var got *dockercr.StoredCheckpoint
		measure(b, k, func() (time.Duration, error) {
			var err error
			got, err = importFile(b.Context(), d, s.archives[kind.comp])
			return 0, err
		})
		untimed(b, "check import", func() error {
			return errors.Join(s.checkImport(got, base), d.Close(), os.RemoveAll(base))
		})
	}
	reportRate(b, mibOf(s.bytes))
}

// benchTarExtract unpacks the tar(1) archive into a new directory. As
// methodTarXSync it also runs sync(2) in the timed part: an import
// fsyncs every file it writes, tar leaves them to writeback.
func benchTarExtract(b *testing.B, s *archiveSource, method string) {
	k := key{op: opArchive, mib: s.mib, method: method}
	for i := 0; b.Loop(); i++ {
		dir := s.out(method, i)
		untimed(b, "create target", func() error { return os.Mkdir(dir, 0o700) })
		untimed(b, "settle page cache", settle)
		measure(b, k, func() (time.Duration, error) {
			err := s.tarExtract(b.Context(), dir)
			if err == nil && method == methodTarXSync {
				syscall.Sync()
			}
			return 0, err
		})
		untimed(b, "check extract", func() error {
			return errors.Join(checkDirBytes(dir, s.bytes), os.RemoveAll(dir))
		})
	}
	reportRate(b, mibOf(s.bytes))
}

// out names the output of iteration i of method in the work directory.
func (s *archiveSource) out(method string, i int) string {
	return filepath.Join(s.work, fmt.Sprintf("%s-%d", method, i))
}
