package dockercr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// importsDirName is the hidden folder under the base directory where
// archives are unpacked before their metadata names their place.
const importsDirName = ".imports"

// Export writes the checkpoint name of containerName to w as one
// archive (see [ExportCheckpoint]): images, logs, metadata and, unless
// [WithoutRootfs], the captured writable layer.
func (d *Docker) Export(ctx context.Context, containerName, name string, w io.Writer,
	opts ...ArchiveOption) (*ArchiveSummary, error) {
	dir, err := d.Dir(containerName, name)
	if err != nil {
		return nil, err
	}
	return ExportCheckpoint(ctx, dir, w, opts...)
}

// Import reads an archive made by [Docker.Export] and stores it as the
// checkpoint its metadata names, BASE/CONTAINER/NAME, where
// [Docker.RestoreAs] finds it, also on a host where the container never
// existed. The archive is validated entirely before the checkpoint
// appears; an existing checkpoint of that name is never replaced.
func (d *Docker) Import(ctx context.Context, r io.Reader, opts ...ArchiveOption) (*StoredCheckpoint, error) {
	if err := os.MkdirAll(filepath.Dir(d.base), 0o755); err != nil {
		return nil, err
	}
	imports := filepath.Join(d.base, importsDirName)
	for _, p := range []string{d.base, imports} {
		if err := ensureSafeDir(p); err != nil {
			return nil, err
		}
	}
	tmp := filepath.Join(imports, "import-"+randomSuffix())
	sum, err := ImportCheckpoint(ctx, r, tmp, opts...)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	meta := sum.Metadata
	if meta == nil {
		return nil, fmt.Errorf("%w: no container metadata", ErrBadArchive)
	}
	dir, err := d.prepareDir(meta.ContainerName, meta.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: names in metadata: %w", ErrBadArchive, err)
	}
	err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("%w: %s", ErrCheckpointExists, dir)
	}
	if err != nil {
		return nil, err
	}
	return &StoredCheckpoint{Name: meta.Checkpoint, Dir: dir, Created: meta.Created,
		Metadata: meta}, syncDir(filepath.Dir(dir))
}
