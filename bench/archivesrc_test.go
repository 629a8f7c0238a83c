package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-cr/dockercr"
)

// archiveName is the library checkpoint the archive benchmark exports,
// and so the name every import stores.
const archiveName = "archive-src"

// archiveSource is the checkpoint the archive benchmark of one size
// works on, and the archives of it that the imports read.
type archiveSource struct {
	env *benchEnv
	mib int
	// container is the name of the checkpointed container.
	container string
	dir       string
	// bytes and imageBytes are the file sizes in dir and in its
	// images/, summed.
	bytes, imageBytes int64
	// work holds this size's archives and outputs; it is in e.tmp, as
	// the checkpoint is, so on the same filesystem.
	work string
	tar  string
	// cp backs the Docker of each fresh import base; an import runs
	// no CRIU.
	cp *dockercr.Checkpointer
	// archives hold an export of dir per compression, tarFile a tar(1)
	// of it.
	archives map[dockercr.Compression]string
	tarFile  string
}

// tArchiveSource checkpoints c through the library and writes the
// archives the imports read, untimed; everything is removed when b's
// size is done.
func tArchiveSource(b *testing.B, e *benchEnv, c *benchContainer) *archiveSource {
	b.Helper()
	ctx := b.Context()
	res, err := e.lib[methodRPC].Checkpoint(ctx, c.name, archiveName)
	if err != nil {
		b.Fatalf("checkpoint to archive: %v", err)
	}
	s := &archiveSource{env: e, mib: c.mib, container: c.name, dir: res.Dir,
		work:     filepath.Join(e.tmp, "archive", sizeName(c.mib)),
		archives: make(map[dockercr.Compression]string)}
	b.Cleanup(func() {
		if err := errors.Join(os.RemoveAll(s.work), os.RemoveAll(s.dir)); err != nil {
			b.Errorf("remove archive benchmark files: %v", err)
		}
	})
	if err := s.prepare(ctx); err != nil {
		b.Fatalf("prepare archives of %s: %v", sizeName(c.mib), err)
	}
	return s
}

func (s *archiveSource) prepare(ctx context.Context) error {
	var err error
	if s.tar, err = exec.LookPath("tar"); err != nil {
		return err
	}
	if s.cp, err = dockercr.New(dockercr.WithCriuPath(s.env.criu)); err != nil {
		return err
	}
	if err := os.MkdirAll(s.work, 0o700); err != nil {
		return err
	}
	if s.bytes, err = dirBytes(s.dir); err != nil {
		return err
	}
	if s.imageBytes, err = dirBytes(filepath.Join(s.dir, dockercr.ImagesDirName)); err != nil {
		return err
	}
	results.setBytes(key{op: opArchive, mib: s.mib, method: sizeDir}, s.bytes)

	for _, kind := range archiveKinds {
		path := filepath.Join(s.work, "source-"+kind.exp)
		sum, err := s.export(ctx, kind.comp, path)
		if err == nil {
			err = checkExport(path, sum, kind.comp)
		}
		if err != nil {
			return err
		}
		s.archives[kind.comp] = path
		results.setBytes(key{op: opArchive, mib: s.mib, method: kind.exp}, sum.Compressed)
	}
	s.tarFile = filepath.Join(s.work, "source.tar")
	if err := s.tarCreate(ctx, s.tarFile); err != nil {
		return err
	}
	return checkTarSize(s.tarFile, s.bytes)
}

// export writes the checkpoint to a new file path with Docker.Export.
func (s *archiveSource) export(ctx context.Context, comp dockercr.Compression,
	path string) (*dockercr.ArchiveSummary, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	sum, err := s.env.lib[methodRPC].Export(ctx, s.container, archiveName, f,
		dockercr.WithCompression(comp))
	return sum, errors.Join(err, f.Close())
}

func (s *archiveSource) tarCreate(ctx context.Context, path string) error {
	return s.runTar(ctx, "-cf", path, "-C", s.dir, ".")
}

func (s *archiveSource) tarExtract(ctx context.Context, dir string) error {
	return s.runTar(ctx, "-xf", s.tarFile, "-C", dir)
}

func (s *archiveSource) runTar(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, s.tar, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tar %s: %w: %s", strings.Join(args, " "), err,
			strings.TrimSpace(string(out)))
	}
	return nil
}

// freshBase returns a Docker integration whose checkpoint base is the
// new directory base.
func (s *archiveSource) freshBase(base string) (*dockercr.Docker, error) {
	return dockercr.NewDocker(s.cp, dockercr.WithDockerClient(s.env.cli),
		dockercr.WithCheckpointBase(base))
}

func importFile(ctx context.Context, d *dockercr.Docker,
	path string) (*dockercr.StoredCheckpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return d.Import(ctx, f)
}

// checkImport checks that the import stored the checkpoint under base,
// under its own name, with images of the source's size.
func (s *archiveSource) checkImport(got *dockercr.StoredCheckpoint, base string) error {
	want := filepath.Join(base, s.container, archiveName)
	if got.Dir != want {
		return fmt.Errorf("imported to %s, want %s", got.Dir, want)
	}
	return checkDirBytes(filepath.Join(got.Dir, dockercr.ImagesDirName), s.imageBytes)
}

// checkExport checks that the file at path is the archive sum describes.
func checkExport(path string, sum *dockercr.ArchiveSummary, comp dockercr.Compression) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() != sum.Compressed || sum.Compression != comp {
		return fmt.Errorf("%s: %d bytes %s, export said %d bytes %s",
			path, st.Size(), comp, sum.Compressed, sum.Compression)
	}
	return nil
}

// checkTarSize checks that a tar(1) archive can hold files of n bytes.
func checkTarSize(path string, n int64) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Size() < n {
		return fmt.Errorf("%s: %d bytes, less than the %d it packs", path, st.Size(), n)
	}
	return nil
}

func checkDirBytes(dir string, want int64) error {
	n, err := dirBytes(dir)
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%s holds %d bytes of files, want %d", dir, n, want)
	}
	return nil
}

// dirBytes sums the sizes of the regular files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	return n, err
}
