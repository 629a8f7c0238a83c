package dockercr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/docker-cr/dockercr/internal/ckptar"
)

// Compression is how [ExportCheckpoint] compresses an archive.
// [ImportCheckpoint] detects it from the archive's first bytes.
type Compression string

// Compressions of an archive.
const (
	// CompressZstd is the default: zstd's fastest level, about three
	// times as fast as gzip at a similar ratio on process memory.
	CompressZstd Compression = "zstd"
	CompressGzip Compression = "gzip"
	CompressNone Compression = "none"
)

// ErrBadArchive means [ImportCheckpoint] refused an archive: a name
// outside the checkpoint layout, a link, device or other special file,
// a duplicate, a size or expansion over [ArchiveLimits], a checksum
// that does not match the manifest, a missing manifest, checkpoint.json
// or inventory image, or a truncated stream. The error names the entry
// and the reason.
var ErrBadArchive = errors.New("bad checkpoint archive")

// ArchiveOption configures [ExportCheckpoint] and [ImportCheckpoint].
// An option for one direction is ignored by the other.
type ArchiveOption func(*archiveConfig) error

type archiveConfig struct {
	compression Compression
	progress    func(Progress)
	noRootfs    bool
	limits      ArchiveLimits
}

// WithCompression sets how an export compresses. Default
// [CompressZstd].
func WithCompression(c Compression) ArchiveOption {
	return func(cfg *archiveConfig) error {
		if !ckptar.Compression(c).Valid() {
			return fmt.Errorf("WithCompression: unknown compression %q", c)
		}
		cfg.compression = c
		return nil
	}
}

// WithProgress has fn called as bytes move, at most about ten times a
// second and once at the end, on the goroutine that exports or
// imports. Default: no reports.
func WithProgress(fn func(Progress)) ArchiveOption {
	return func(cfg *archiveConfig) error {
		if fn == nil {
			return errors.New("WithProgress: nil function")
		}
		cfg.progress = fn
		return nil
	}
}

// WithoutRootfs leaves the container's filesystem changes
// (rootfs-diff.tar and deleted.files) out of an export. Such an archive
// restores only where the container's writable layer still is. Default:
// they are exported when the checkpoint has them.
func WithoutRootfs() ArchiveOption {
	return func(cfg *archiveConfig) error { cfg.noRootfs = true; return nil }
}

// WithArchiveLimits replaces the limits an import enforces. Zero fields
// keep their defaults (see [ArchiveLimits]); negative ones are refused.
func WithArchiveLimits(l ArchiveLimits) ArchiveOption {
	return func(cfg *archiveConfig) error {
		if err := ckptar.Limits(l).Validate(); err != nil {
			return fmt.Errorf("WithArchiveLimits: %w", err)
		}
		cfg.limits = l
		return nil
	}
}

// Progress reports how far an export or import has come.
type Progress struct {
	// File is the archive name of the entry being moved.
	File string
	// Done counts file bytes exported, or compressed bytes imported.
	Done int64
	// Total is what Done ends at: the sum of the file sizes of an
	// export; for an import, the archive's size if it is read from an
	// *os.File, else 0.
	Total int64
}

// ArchiveLimits bound what [ImportCheckpoint] accepts. Zero fields take
// the defaults: 65536 entries, 256 GiB in all, 64 GiB per file, and an
// expansion ratio of 10000, enforced once 16 MiB have been unpacked.
// The ratio admits any archive [ExportCheckpoint] writes, even of memory
// that is all zero pages (about 5000 to 1), and refuses zstd bombs
// (32768 to 1); an archive recompressed with the zstd command at a high
// level may need a higher one. Lower MaxTotalBytes for archives from
// untrusted sources: it is what bounds the disk an import can fill.
type ArchiveLimits struct {
	// MaxFiles bounds the entries, directories included.
	MaxFiles int
	// MaxTotalBytes bounds the sum of the file sizes.
	MaxTotalBytes int64
	// MaxFileBytes bounds each file's size.
	MaxFileBytes int64
	// MaxExpansionRatio bounds the bytes unpacked per compressed byte
	// read, over the stream so far.
	MaxExpansionRatio float64
}

// ArchiveSummary describes an archive exported or imported.
type ArchiveSummary struct {
	// Files and Bytes count the archive's files and their content,
	// its manifest left out.
	Files int
	Bytes int64
	// Compressed is the archive's size.
	Compressed  int64
	Compression Compression
	// Metadata is the checkpoint's checkpoint.json.
	Metadata *Metadata
}

// ExportCheckpoint writes the container checkpoint in dir to w as one
// archive, streaming, with no copy staged on disk. The archive follows
// Podman's export layout (images under checkpoint/, config.dump and
// spec.dump derived from the [Metadata]) so that checkpointctl can show
// it, and ends with a manifest of every file's SHA-256.
//
// dir must hold checkpoint.json and images/inventory.img, or the error
// matches [ErrCheckpointNotFound]. Anything in dir outside the layout (a
// symbolic link, socket, subfolder or file of unknown name) fails the
// export before anything is written. On failure or cancellation w holds
// a truncated archive that no import accepts.
//
// The archive carries process memory and, in checkpoint.json, the
// container's environment: keep and send it as the secret it may be.
func ExportCheckpoint(ctx context.Context, dir string, w io.Writer,
	opts ...ArchiveOption) (*ArchiveSummary, error) {
	cfg, err := newArchiveConfig(opts)
	if err != nil {
		return nil, err
	}
	meta, err := ReadMetadata(dir)
	if err != nil {
		return nil, err
	}
	if err := ValidateImages(filepath.Join(dir, ImagesDirName)); err != nil {
		return nil, err
	}
	config, spec, err := podmanDumps(meta)
	if err != nil {
		return nil, err
	}

	sum, err := ckptar.Write(ctx, dir, w, ckptar.WriteOptions{
		Compression: ckptar.Compression(cfg.compression),
		Progress:    cfg.progressFunc(),
		SkipRootfs:  cfg.noRootfs,
		ConfigDump:  config,
		SpecDump:    spec,
	})
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", dir, err)
	}
	return newArchiveSummary(sum, meta), nil
}

// ImportCheckpoint reads an archive from r and creates the checkpoint
// directory dir from it; dir must not exist ([ErrCheckpointExists]),
// and its parent, created 0700 if missing, must be safe
// ([ErrUnsafeDir]).
//
// Everything is checked before dir exists: the archive is unpacked into
// a hidden sibling (folders 0700, files 0600, each synced), verified
// against its manifest, and renamed into place only then. On any
// failure, cancellation included, the sibling is removed and nothing is
// left behind; a rejected archive fails with [ErrBadArchive]. A Read of
// r that blocks is not interrupted by ctx: close the source for that.
func ImportCheckpoint(ctx context.Context, r io.Reader, dir string,
	opts ...ArchiveOption) (*ArchiveSummary, error) {
	cfg, err := newArchiveConfig(opts)
	if err != nil {
		return nil, err
	}
	staged, err := stageImport(dir)
	if err != nil {
		return nil, err
	}

	sum, meta, err := extractArchive(ctx, r, staged.tmp, cfg)
	if err == nil {
		// Checksums prove the files are what the exporter wrote, not
		// that the images are whole: check those too, before the
		// checkpoint appears.
		err = ValidateImages(filepath.Join(staged.tmp, ImagesDirName))
	}
	if err == nil {
		err = staged.commit()
	}
	if err != nil {
		if rmErr := os.RemoveAll(staged.tmp); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove staging: %w", rmErr))
		}
		return nil, err
	}
	return newArchiveSummary(sum, meta), nil
}

func newArchiveConfig(opts []ArchiveOption) (*archiveConfig, error) {
	cfg := &archiveConfig{compression: CompressZstd}
	for _, opt := range opts {
		if err := opt(cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func (cfg *archiveConfig) progressFunc() func(ckptar.Progress) {
	if cfg.progress == nil {
		return nil
	}
	return func(p ckptar.Progress) { cfg.progress(Progress(p)) }
}

// stageImport checks where dir goes and creates its staging sibling.
func stageImport(dir string) (*stagedDir, error) {
	// Check the name as given, before Abs cleans "x/.." into x's parent.
	if err := validateDirName(filepath.Base(dir)); err != nil {
		return nil, err
	}
	final, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("create checkpoint parent: %w", err)
	}
	if err := ensureSafeDir(parent); err != nil {
		return nil, err
	}
	return stageCheckpoint(final, false)
}

// extractArchive unpacks and verifies the archive into staging, then
// reads its metadata.
func extractArchive(ctx context.Context, r io.Reader, staging string,
	cfg *archiveConfig) (*ckptar.Summary, *Metadata, error) {
	sum, err := ckptar.Extract(ctx, r, staging, ckptar.ReadOptions{
		Limits:   ckptar.Limits(cfg.limits),
		Progress: cfg.progressFunc(),
	})
	if errors.Is(err, ckptar.ErrInvalid) {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadArchive, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("import checkpoint: %w", err)
	}
	meta, err := ReadMetadata(staging)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: entry %q: %w", ErrBadArchive, MetadataName, err)
	}
	return sum, meta, nil
}

// podmanDumps renders config.dump and spec.dump from meta.
func podmanDumps(meta *Metadata) (config, spec []byte, err error) {
	c := ckptar.Container{
		ID:           meta.ContainerID,
		Name:         meta.ContainerName,
		Image:        meta.Image,
		ImageID:      meta.ImageID,
		Created:      meta.ContainerCreated,
		Checkpointed: meta.Created,
		Args:         append(append([]string(nil), meta.Config.Entrypoint...), meta.Config.Cmd...),
		Cwd:          meta.Config.WorkingDir,
		Hostname:     meta.Config.Hostname,
	}
	for _, m := range meta.Config.Mounts {
		c.Mounts = append(c.Mounts, ckptar.Mount{Destination: m.Destination, Type: m.Type,
			Source: m.Source, ReadOnly: m.ReadOnly})
	}
	if config, err = ckptar.ConfigDump(c); err != nil {
		return nil, nil, err
	}
	spec, err = ckptar.SpecDump(c)
	return config, spec, err
}

func newArchiveSummary(s *ckptar.Summary, meta *Metadata) *ArchiveSummary {
	return &ArchiveSummary{
		Files:       s.Files,
		Bytes:       s.Bytes,
		Compressed:  s.Compressed,
		Compression: Compression(s.Compression),
		Metadata:    meta,
	}
}
