package ckptar

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"
)

// Entry is one entry of an archive, as [Walk] hands it over.
type Entry struct {
	// Name is the name in the archive, such as "checkpoint/pages-1.img";
	// directories come without a trailing slash.
	Name string
	// Dir is true for the folders "checkpoint" and "volumes".
	Dir bool
	// Size is the file's size as its header states it, 0 for a folder.
	Size int64
}

// Walk reads an archive from r and calls fn for every entry but the
// manifest, in archive order, with a reader of its content. It applies
// the checks of [Extract]: names, types, duplicates and [Limits] before
// fn sees an entry, the expansion ratio while it reads, and once the
// stream ends, the manifest against every file and the presence of
// checkpoint.json and checkpoint/inventory.img.
//
// body is valid only until fn returns. What fn leaves unread is still
// read and hashed (the stream cannot seek), so an inspector may read
// small files into memory and skip pages at the cost of decompressing
// them. Content is unverified until Walk returns nil: act on nothing
// fn saw before that. An error fn returns stops the walk and is
// returned as it is; every rejection of the archive matches
// [ErrInvalid].
func Walk(r io.Reader, limits Limits, fn func(hdr Entry, body io.Reader) error) error {
	_, err := walk(context.Background(), r, limits, newMeter(nil, 0), fn)
	return err
}

// walker holds the state of one read.
type walker struct {
	ctx   context.Context
	lim   Limits
	in    *countReader
	tr    *tar.Reader
	meter *meter
	buf   []byte

	cur      string // the entry being read, for errors
	entries  int
	declared int64 // sum of the sizes headers state
	produced int64 // file bytes read out of the tar stream
	names    map[string]bool
	order    []string
	seen     map[string]fileSum
	man      *manifest
	bodyErr  error // the first failure of a body reader
	sum      Summary
}

func walk(ctx context.Context, r io.Reader, lim Limits, m *meter,
	fn func(Entry, io.Reader) error) (*Summary, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &walker{ctx: ctx, lim: lim.withDefaults(), in: &countReader{r: r}, meter: m,
		buf: make([]byte, 256<<10), names: map[string]bool{}, seen: map[string]fileSum{}}

	br := bufio.NewReaderSize(w.in, 256<<10)
	comp, err := detect(br)
	if err != nil {
		return nil, w.streamErr("", "reading the start", err)
	}
	dec, release, err := decompressor(br, comp)
	if err != nil {
		return nil, w.streamErr("", "reading the "+string(comp)+" header", err)
	}
	defer release()
	w.tr = tar.NewReader(dec)
	w.sum.Compression = comp

	if err := w.readEntries(fn); err != nil {
		return nil, err
	}
	if err := w.readTrailer(dec); err != nil {
		return nil, err
	}
	if err := w.man.verify(w.order, w.seen); err != nil {
		return nil, err
	}
	if err := w.checkRequired(); err != nil {
		return nil, err
	}
	w.sum.Compressed = w.in.count()
	w.meter.final(w.in.count())
	return &w.sum, nil
}

func (w *walker) readEntries(fn func(Entry, io.Reader) error) error {
	for {
		hdr, err := w.tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && w.cur == "" {
			return w.streamErr("", "reading the first header", err)
		}
		if err != nil {
			return w.streamErr(w.cur, "reading the header after it", err)
		}
		if err := w.ctx.Err(); err != nil {
			return err
		}
		e, err := w.check(hdr)
		if err != nil {
			return err
		}
		if err := w.readEntry(e, fn); err != nil {
			return err
		}
	}
	if w.man == nil && w.cur == "" {
		return reject(ManifestName, "missing: the archive holds no entries")
	}
	if w.man == nil {
		return reject(ManifestName, "missing: the archive ends after %q", w.cur)
	}
	return nil
}

// check validates an entry's header before anything reads its content.
func (w *walker) check(hdr *tar.Header) (Entry, error) {
	dir := hdr.Typeflag == tar.TypeDir
	name := hdr.Name
	if dir {
		name = strings.TrimSuffix(name, "/")
	}
	w.cur = name
	if w.man != nil {
		return Entry{}, reject(name, "follows the manifest, which must be the last entry")
	}
	if err := checkName(name, dir); err != nil {
		return Entry{}, err
	}
	if err := checkType(name, hdr); err != nil {
		return Entry{}, err
	}
	if w.names[name] {
		return Entry{}, reject(name, "appears twice")
	}
	w.names[name] = true
	if err := w.checkLimits(name, hdr.Size); err != nil {
		return Entry{}, err
	}
	return Entry{Name: name, Dir: dir, Size: hdr.Size}, nil
}

// checkType accepts regular files and directories only. Sparse files
// are refused too: their holes expand beyond what the stream carries.
func checkType(name string, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeReg:
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return reject(name, "sparse file")
			}
		}
		return nil
	case tar.TypeDir:
		if hdr.Size != 0 {
			return reject(name, "directory with %d bytes of content", hdr.Size)
		}
		return nil
	case tar.TypeSymlink:
		return reject(name, "symbolic link to %q", hdr.Linkname)
	case tar.TypeLink:
		return reject(name, "hard link to %q", hdr.Linkname)
	case tar.TypeChar:
		return reject(name, "character device")
	case tar.TypeBlock:
		return reject(name, "block device")
	case tar.TypeFifo:
		return reject(name, "named pipe")
	}
	return reject(name, "tar type %q is neither a regular file nor a directory", hdr.Typeflag)
}

func (w *walker) checkLimits(name string, size int64) error {
	w.entries++
	switch {
	case w.entries > w.lim.MaxFiles:
		return reject(name, "more than the limit of %d entries", w.lim.MaxFiles)
	case size > w.lim.MaxFileBytes:
		return reject(name, "%d bytes, more than the limit of %d per file",
			size, w.lim.MaxFileBytes)
	case size > w.lim.MaxTotalBytes-w.declared:
		return reject(name, "brings the files to more than the limit of %d bytes",
			w.lim.MaxTotalBytes)
	case name == ManifestName && size > w.lim.maxManifestBytes():
		return reject(name, "%d bytes, more than a manifest of %d entries needs",
			size, w.lim.MaxFiles)
	}
	w.declared += size
	return nil
}

func (w *walker) readEntry(e Entry, fn func(Entry, io.Reader) error) error {
	if e.Dir {
		return fn(e, bytes.NewReader(nil))
	}
	body := &bodyReader{w: w, name: e.Name, h: sha256.New()}
	if e.Name == ManifestName {
		return w.readManifest(body)
	}
	err := fn(e, body)
	if w.bodyErr != nil {
		// fn may have wrapped the body's failure; report it as it is.
		return w.bodyErr
	}
	if err != nil {
		return err
	}
	if err := body.drain(); err != nil {
		return err
	}

	w.order = append(w.order, e.Name)
	w.seen[e.Name] = fileSum{size: body.n, sum: hex.EncodeToString(body.h.Sum(nil))}
	w.sum.Files++
	w.sum.Bytes += body.n
	return nil
}

func (w *walker) readManifest(body *bodyReader) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	w.man, err = parseManifest(b)
	return err
}

// readTrailer reads what follows the tar end marker, so that the
// decompressor reaches the end of its stream and checks it: zstd's
// frame checksum, gzip's CRC and length.
func (w *walker) readTrailer(dec io.Reader) error {
	n, err := io.CopyBuffer(io.Discard, io.LimitReader(dec, maxTrailer+1), w.buf)
	switch {
	case err != nil:
		return w.streamErr("", "reading past the end of the tar stream", err)
	case n > maxTrailer:
		return reject("", "more than %d bytes follow the end of the tar stream", maxTrailer)
	}
	return nil
}

func (w *walker) checkRequired() error {
	for _, name := range required {
		if _, ok := w.seen[name]; !ok {
			return reject(name, "missing; every checkpoint has it")
		}
	}
	return nil
}

// streamErr classifies a failure to read the stream: the caller's
// reader failing is an I/O error; the stream ending early or not
// decoding is the archive's fault.
func (w *walker) streamErr(name, doing string, err error) error {
	if w.in.err() != nil {
		return fmt.Errorf("read archive: %w", w.in.err())
	}
	if errors.Is(err, ErrInvalid) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return reject(name, "truncated while %s", doing)
	}
	return &EntryError{Name: name, Reason: "corrupt stream while " + doing, Err: err}
}

// expanded reports whether the files read so far exceed the expansion
// ratio over the compressed bytes read.
func (w *walker) expanded() bool {
	allowed := w.lim.MaxExpansionRatio*float64(w.in.count()) + ExpansionAllowance
	return float64(w.produced) > allowed
}

// bodyReader reads one file's content out of the tar stream, hashing
// it and enforcing the expansion ratio and the context as it goes.
type bodyReader struct {
	w    *walker
	name string
	h    hash.Hash
	n    int64
}

func (b *bodyReader) Read(p []byte) (int, error) {
	w := b.w
	if w.bodyErr != nil {
		return 0, w.bodyErr
	}
	if err := w.ctx.Err(); err != nil {
		w.bodyErr = err
		return 0, err
	}
	n, err := w.tr.Read(p)
	b.h.Write(p[:n])
	b.n += int64(n)
	w.produced += int64(n)
	w.meter.set(b.name, w.in.count())
	switch {
	case w.expanded():
		w.bodyErr = reject(b.name, "expands more than %v times: %d bytes from %d compressed",
			w.lim.MaxExpansionRatio, w.produced, w.in.count())
	case err != nil && err != io.EOF:
		w.bodyErr = w.streamErr(b.name, "reading its content", err)
	default:
		return n, err
	}
	return 0, w.bodyErr
}

// drain reads what fn left of the body.
func (b *bodyReader) drain() error {
	for {
		_, err := b.Read(b.w.buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// countReader counts the bytes read through it and keeps the first
// error of the underlying reader other than io.EOF. The zstd decoder
// reads it from a goroutine of its own while the walker reads the
// count, so both are guarded.
type countReader struct {
	r  io.Reader
	n  atomic.Int64
	mu sync.Mutex
	e  error
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if err != nil && err != io.EOF {
		c.mu.Lock()
		if c.e == nil {
			c.e = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// count returns the bytes read so far.
func (c *countReader) count() int64 { return c.n.Load() }

// err returns the first read error other than io.EOF.
func (c *countReader) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.e
}
