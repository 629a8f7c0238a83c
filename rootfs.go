package dockercr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	archive "github.com/moby/go-archive"
	"github.com/moby/go-archive/compression"
)

// Files a container checkpoint may hold beside its images.
const (
	// RootfsDiffName is the container's writable-layer changes, a layer
	// tar in Docker's format (deletions as ".wh." entries).
	RootfsDiffName = "rootfs-diff.tar"
	// DeletedFilesName lists, as a JSON array, the paths the writable
	// layer deletes from the image (Podman's deleted.files).
	DeletedFilesName = "deleted.files"
	// VolumesDirName holds one NAME.tar per captured named volume.
	VolumesDirName = "volumes"
)

// captureRootfs writes the overlay upper directory upper as a layer tar
// into dir, and the paths it deletes into deleted.files. It is called
// while the container is frozen, so the files agree with the memory
// CRIU dumped. go-archive turns overlay whiteouts (0:0 character
// devices, opaque-directory xattrs) into the portable layer format.
func captureRootfs(ctx context.Context, upper, dir string) error {
	deleted, err := overlayWhiteouts(upper)
	if err != nil {
		return err
	}
	if err := writeTar(ctx, upper, filepath.Join(dir, RootfsDiffName),
		&archive.TarOptions{WhiteoutFormat: archive.OverlayWhiteoutFormat}); err != nil {
		return fmt.Errorf("capture rootfs changes: %w", err)
	}
	b, err := json.Marshal(deleted)
	if err != nil {
		return err
	}
	return writeNewFile(filepath.Join(dir, DeletedFilesName), b)
}

// captureVolume writes the contents of a named volume into
// dir/volumes/NAME.tar.
func captureVolume(ctx context.Context, name, mountpoint, dir string) error {
	vdir := filepath.Join(dir, VolumesDirName)
	if err := os.Mkdir(vdir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := writeTar(ctx, mountpoint, filepath.Join(vdir, name+".tar"), &archive.TarOptions{}); err != nil {
		return fmt.Errorf("capture volume %s: %w", name, err)
	}
	return nil
}

func writeTar(ctx context.Context, src, dst string, opts *archive.TarOptions) error {
	opts.Compression = compression.None
	rc, err := archive.TarWithOptions(src, opts)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, ctxReader{ctx: ctx, r: rc})
	return errors.Join(err, f.Close())
}

// overlayWhiteouts lists the paths, relative to upper and starting with
// "/", that overlayfs whiteouts delete from the lower layers.
func overlayWhiteouts(upper string) ([]string, error) {
	deleted := []string{}
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeCharDevice == 0 {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Rdev == 0 {
			rel, _ := filepath.Rel(upper, p)
			deleted = append(deleted, "/"+filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(deleted)
	return deleted, err
}

// applyRootfs unpacks a checkpoint's rootfs-diff.tar into the overlay
// upper directory of a container that was created but never started.
// go-archive's unpacking is Docker's own: it resolves every entry within
// upper (os.Root), so none can escape it, and writes deletions back as
// overlay whiteouts.
func applyRootfs(dir, upper string) error {
	f, err := os.Open(filepath.Join(dir, RootfsDiffName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	// Unpack, unlike ApplyUncompressedLayer, runs the overlay whiteout
	// converter: ".wh." entries become 0:0 devices in upper instead of
	// deleting from it.
	err = archive.Unpack(f, upper, &archive.TarOptions{WhiteoutFormat: archive.OverlayWhiteoutFormat})
	if err != nil {
		return fmt.Errorf("apply rootfs changes to %s: %w", upper, err)
	}
	return nil
}

// applyVolume fills an empty volume at mountpoint from the checkpoint.
func applyVolume(dir, name, mountpoint string) error {
	f, err := os.Open(filepath.Join(dir, VolumesDirName, name+".tar"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := archive.Unpack(f, mountpoint, &archive.TarOptions{}); err != nil {
		return fmt.Errorf("fill volume %s: %w", name, err)
	}
	return nil
}

// ctxReader stops a long copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
