package ckptar

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

// WriteOptions configure [Write].
type WriteOptions struct {
	// Compression of the stream. Default [Zstd].
	Compression Compression
	// Progress, if set, is called as file bytes move, at most about
	// ten times a second, and once when the archive is complete.
	Progress func(Progress)
	// SkipRootfs leaves rootfs-diff.tar and deleted.files out.
	SkipRootfs bool
	// ConfigDump and SpecDump are written as config.dump and
	// spec.dump; nil leaves one out.
	ConfigDump, SpecDump []byte
}

// Summary describes an archive written or read.
type Summary struct {
	// Files and Bytes count the regular files and their content, the
	// manifest left out.
	Files int
	Bytes int64
	// Compressed is the size of the archive as written or read.
	Compressed  int64
	Compression Compression
}

// copyChunk is how much is read, hashed and written per step; the
// context is checked between steps.
const copyChunk = 1 << 20

// Write writes the checkpoint directory dir to w as one archive,
// streaming: nothing is staged on disk. Only the layout's files and its
// images/ and volumes/ folders may be in dir; anything else fails with
// [ErrUnexpectedFile] before the first byte is written. A file whose
// size changes while it is copied fails the write.
//
// On failure or cancellation w holds a truncated archive, which any
// reader rejects for its missing manifest.
func Write(ctx context.Context, dir string, w io.Writer, opts WriteOptions) (*Summary, error) {
	comp := opts.Compression
	if comp == "" {
		comp = Zstd
	}
	if !comp.Valid() {
		return nil, fmt.Errorf("unknown compression %q", comp)
	}
	srcs, err := scanDir(dir, opts)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	aw, err := newArchiveWriter(ctx, w, comp, newMeter(opts.Progress, totalSize(srcs)))
	if err != nil {
		return nil, err
	}
	for _, s := range srcs {
		if err := aw.add(s); err != nil {
			aw.abort()
			return nil, err
		}
	}
	return aw.finish()
}

func totalSize(srcs []source) int64 {
	var n int64
	for _, s := range srcs {
		n += s.size
	}
	return n
}

// archiveWriter hashes each file while it writes it, and writes the
// manifest last.
type archiveWriter struct {
	ctx   context.Context
	out   *countWriter
	comp  io.WriteCloser
	tw    *tar.Writer
	meter *meter
	man   manifest
	buf   []byte
	sum   Summary
	now   time.Time
}

func newArchiveWriter(ctx context.Context, w io.Writer, c Compression,
	m *meter) (*archiveWriter, error) {
	out := &countWriter{w: w}
	comp, err := compressor(out, c)
	if err != nil {
		return nil, err
	}
	return &archiveWriter{
		ctx: ctx, out: out, comp: comp, tw: tar.NewWriter(comp), meter: m,
		man: manifest{Format: manifestFormat}, buf: make([]byte, copyChunk),
		sum: Summary{Compression: c}, now: time.Now(),
	}, nil
}

func (aw *archiveWriter) add(s source) error {
	if err := aw.ctx.Err(); err != nil {
		return err
	}
	switch {
	case s.dir:
		return aw.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir,
			Name: s.name + "/", Mode: 0o700, ModTime: aw.now})
	case s.path == "":
		return aw.addFile(s.name, bytes.NewReader(s.data), s.size, aw.now)
	}

	f, err := os.OpenFile(s.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Size() != s.size {
		return fmt.Errorf("%s changed while the archive was written", s.path)
	}
	return aw.addFile(s.name, f, s.size, st.ModTime())
}

// addFile writes exactly size bytes of r as the entry name.
func (aw *archiveWriter) addFile(name string, r io.Reader, size int64, mtime time.Time) error {
	err := aw.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name,
		Size: size, Mode: 0o600, ModTime: mtime})
	if err != nil {
		return err
	}
	h := sha256.New()
	for left := size; left > 0; {
		chunk := aw.buf[:min(left, int64(len(aw.buf)))]
		if _, err := io.ReadFull(r, chunk); err != nil {
			return fmt.Errorf("read %s: %w (did it shrink?)", name, err)
		}
		h.Write(chunk)
		if _, err := aw.tw.Write(chunk); err != nil {
			return err
		}
		left -= int64(len(chunk))
		aw.sum.Bytes += int64(len(chunk))
		aw.meter.set(name, aw.sum.Bytes)
		if err := aw.ctx.Err(); err != nil {
			return err
		}
	}
	aw.man.add(name, size, h.Sum(nil))
	aw.sum.Files++
	return nil
}

// finish writes the manifest and ends the tar and compressed streams.
func (aw *archiveWriter) finish() (*Summary, error) {
	b, err := aw.man.encode()
	if err == nil {
		err = aw.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: ManifestName,
			Size: int64(len(b)), Mode: 0o600, ModTime: aw.now})
	}
	if err == nil {
		_, err = aw.tw.Write(b)
	}
	if err != nil {
		aw.abort()
		return nil, err
	}
	if err := errors.Join(aw.tw.Close(), aw.comp.Close()); err != nil {
		return nil, err
	}
	aw.meter.final(aw.sum.Bytes)
	aw.sum.Compressed = aw.out.n
	return &aw.sum, nil
}

// abort releases the compressor's goroutines without writing its end.
func (aw *archiveWriter) abort() {
	if enc, ok := aw.comp.(*zstd.Encoder); ok {
		enc.Reset(io.Discard)
		_ = enc.Close()
	}
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
