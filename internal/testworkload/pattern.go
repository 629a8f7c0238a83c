package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// chunkSize is how much of a pattern file is written or read per call.
const chunkSize = 1 << 20

// patternWord is the 8-byte word at word index i of the stream for seed.
// It is a splitmix64 step on (seed, i): every word differs, so no page is
// all zeros (CRIU could skip it) and a page moved elsewhere no longer
// matches its new offset.
func patternWord(seed, i uint64) uint64 {
	z := seed + (i+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb

	return z ^ z>>31
}

// fillPattern writes the stream for seed into b, where b starts at byte
// offset base of the stream. base must be a multiple of 8.
func fillPattern(b []byte, seed uint64, base int64) {
	var w [8]byte
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(w[:], patternWord(seed, uint64(base+int64(i))/8))
		copy(b[i:], w[:])
	}
}

// mismatch is the first byte that differs from the pattern.
type mismatch struct {
	off       int64
	got, want byte
}

func (m *mismatch) Error() string {
	return fmt.Sprintf("bad byte at offset %d: got %#02x, want %#02x",
		m.off, m.got, m.want)
}

// checkPattern compares b with the stream for seed from offset base (a
// multiple of 8) and returns a *mismatch for the first differing byte.
func checkPattern(b []byte, seed uint64, base int64) error {
	for i := 0; i < len(b); i += 8 {
		want := patternWord(seed, uint64(base+int64(i))/8)
		if i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:]) == want {
			continue
		}

		for j := 0; j < 8 && i+j < len(b); j++ {
			if wb := byte(want >> (8 * j)); b[i+j] != wb {
				return &mismatch{off: base + int64(i+j), got: b[i+j], want: wb}
			}
		}
	}

	return nil
}

// writePatternFile writes size bytes of the stream for seed to f from
// offset 0.
func writePatternFile(f *os.File, size int64, seed uint64) error {
	buf := make([]byte, chunkSize)
	for off := int64(0); off < size; off += chunkSize {
		b := buf[:min(chunkSize, size-off)]
		fillPattern(b, seed, off)
		if _, err := f.WriteAt(b, off); err != nil {
			return fmt.Errorf("write %s: %w", f.Name(), err)
		}
	}

	return nil
}

// checkPatternFile reads size bytes back through f with pread (ReadAt), so
// it works on an unlinked file, and checks them against the stream.
func checkPatternFile(f *os.File, size int64, seed uint64) error {
	buf := make([]byte, chunkSize)
	for off := int64(0); off < size; off += chunkSize {
		b := buf[:min(chunkSize, size-off)]
		if _, err := f.ReadAt(b, off); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("file shorter than %d bytes: %w", size, err)
			}
			return fmt.Errorf("pread: %w", err)
		}
		if err := checkPattern(b, seed, off); err != nil {
			return err
		}
	}

	return nil
}

// fileFlags are the flags of the workloads that keep a pattern file.
type fileFlags struct {
	file string
	kib  int
	seed uint64
}

func (p *fileFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.file, "file", "", "path of the file (required)")
	fs.IntVar(&p.kib, "kib", 4096, "file size in KiB")
	fs.Uint64Var(&p.seed, "seed", 1, "seed of the content pattern")
}

func (p *fileFlags) validate() error {
	if p.file == "" {
		return errors.New("-file is required")
	}
	if p.kib <= 0 {
		return fmt.Errorf("-kib must be > 0, got %d", p.kib)
	}

	return nil
}

func (p *fileFlags) size() int64 { return int64(p.kib) << 10 }

// describe is the detail shared by ready and verify lines.
func (p *fileFlags) describe() string {
	return fmt.Sprintf("file=%s kib=%d seed=%d", p.file, p.kib, p.seed)
}
