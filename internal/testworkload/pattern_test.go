package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const page = 4096

func patterned(size int, seed uint64) []byte {
	b := make([]byte, size)
	fillPattern(b, seed, 0)
	return b
}

func TestCheckPattern(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		seed    uint64 // seed checked against; data is made with seed 7
		damage  func(b []byte)
		wantOff int64 // -1: no mismatch expected
	}{
		{"intact", 16 * page, 7, func([]byte) {}, -1},
		{"odd length intact", 1003, 7, func([]byte) {}, -1},
		{"flipped byte", 16 * page, 7, func(b []byte) { b[5*page+123] ^= 0x01 }, 5*page + 123},
		{"flipped last byte of odd tail", 1003, 7, func(b []byte) { b[1002] ^= 0x80 }, 1002},
		{"swapped pages", 16 * page, 7, swapPages(3, 9), 3 * page},
		{"zeroed page", 16 * page, 7, func(b []byte) { clear(b[2*page : 3*page]) }, 2 * page},
		{"other seed", page, 8, func([]byte) {}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := patterned(tc.size, 7)
			tc.damage(b)

			err := checkPattern(b, tc.seed, 0)
			tAssertMismatch(t, err, tc.wantOff)
		})
	}
}

func swapPages(i, j int) func([]byte) {
	return func(b []byte) {
		tmp := bytes.Clone(b[i*page : (i+1)*page])
		copy(b[i*page:], b[j*page:(j+1)*page])
		copy(b[j*page:], tmp)
	}
}

// tAssertMismatch checks err against the offset of the expected first bad
// byte, or against no error for wantOff -1.
func tAssertMismatch(t *testing.T, err error, wantOff int64) {
	t.Helper()
	if wantOff < 0 {
		if err != nil {
			t.Fatalf("unexpected mismatch: %v", err)
		}
		return
	}

	var m *mismatch
	if !errors.As(err, &m) {
		t.Fatalf("got error %v, want a mismatch at offset %d", err, wantOff)
	}
	if m.off != wantOff || m.got == m.want {
		t.Fatalf("mismatch %+v, want offset %d with got != want", m, wantOff)
	}
}

func TestPatternPagesDiffer(t *testing.T) {
	b := patterned(64*page, 1)
	zero := make([]byte, page)
	seen := map[string]int{}
	for i := range 64 {
		p := b[i*page : (i+1)*page]
		if bytes.Equal(p, zero) {
			t.Fatalf("page %d is all zeros", i)
		}
		if j, ok := seen[string(p)]; ok {
			t.Fatalf("pages %d and %d are equal", j, i)
		}
		seen[string(p)] = i
	}
}

func TestPatternBase(t *testing.T) {
	// A slice filled from offset base must match the whole stream there,
	// which is what chunked file writes rely on.
	whole := patterned(8*page, 3)
	part := make([]byte, 2*page)
	fillPattern(part, 3, 5*page)

	if !bytes.Equal(part, whole[5*page:7*page]) {
		t.Fatal("chunk filled at base 5 pages differs from the whole stream")
	}
	if err := checkPattern(part, 3, 5*page); err != nil {
		t.Fatalf("check at the right base: %v", err)
	}
	if err := checkPattern(part, 3, 0); err == nil {
		t.Fatal("check at the wrong base passed")
	}
}

func TestPatternFile(t *testing.T) {
	const size = 2*chunkSize + 3*page // crosses chunk boundaries
	tests := []struct {
		name    string
		damage  func(t *testing.T, f *os.File)
		wantOff int64
	}{
		{"intact", func(*testing.T, *os.File) {}, -1},
		{"byte in second chunk", writeByteAt(chunkSize + 77), chunkSize + 77},
		{"last byte", writeByteAt(size - 1), size - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "p"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := writePatternFile(f, size, 11); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, f)

			tAssertMismatch(t, checkPatternFile(f, size, 11), tc.wantOff)
		})
	}
}

// writeByteAt overwrites one byte with its complement.
func writeByteAt(off int64) func(*testing.T, *os.File) {
	return func(t *testing.T, f *os.File) {
		var b [1]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			t.Fatal(err)
		}
		b[0] = ^b[0]
		if _, err := f.WriteAt(b[:], off); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPatternFileShort(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writePatternFile(f, 10*page, 1); err != nil {
		t.Fatal(err)
	}

	if err := checkPatternFile(f, 11*page, 1); err == nil {
		t.Fatal("a file shorter than the expected size passed")
	}
}
