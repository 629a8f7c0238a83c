package dockercr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"

	"google.golang.org/protobuf/proto"
)

// decodeOne decodes an image that holds exactly one entry into m.
func decodeOne(set imageSet, name string, kind, magic uint32, m proto.Message) error {
	raw, err := decodeEntries(set, name, kind, magic)
	if err != nil {
		return err
	}
	if len(raw) != 1 {
		return &ImageError{File: set.path(name), Reason: fmt.Sprintf("%d entries, want 1", len(raw))}
	}
	return unmarshalEntry(set, name, 0, raw[0], m)
}

func unmarshalEntry(set imageSet, name string, i int, b []byte, m proto.Message) error {
	if err := proto.Unmarshal(b, m); err != nil {
		return &ImageError{File: set.path(name), Reason: fmt.Sprintf("entry %d: %v", i, err), Err: err}
	}
	return nil
}

// decodeEntries reads image name, checks its two magics and returns
// its entries undecoded. Unlike go-criu's crit decoder it never trusts
// a length beyond the bytes that are there: a flipped length byte
// would have crit allocate up to 4 GiB, and its short reads go
// unnoticed, so a truncated image could decode.
func decodeEntries(set imageSet, name string, kind, magic uint32) ([][]byte, error) {
	b, err := set.read(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missingImage(set, name)
	}
	if err != nil {
		return nil, &ImageError{File: set.path(name), Reason: err.Error(), Err: err}
	}
	return splitEntries(b, kind, magic, func(reason string) error {
		return &ImageError{File: set.path(name), Reason: reason}
	})
}

// splitEntries is decodeEntries on the bytes of an image.
func splitEntries(b []byte, kind, magic uint32, bad func(string) error) ([][]byte, error) {
	start := 8
	if kind == magicNone {
		start = 4
	}
	if len(b) < start {
		return nil, bad(fmt.Sprintf("%d bytes, shorter than its magic", len(b)))
	}
	if kind == magicNone {
		if m := binary.LittleEndian.Uint32(b); m != magic {
			return nil, bad(fmt.Sprintf("magic %#08x, want %#08x", m, magic))
		}
	} else {
		k, m := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
		if k != kind || m != magic {
			return nil, bad(fmt.Sprintf("magic %#08x %#08x, want %#08x %#08x", k, m, kind, magic))
		}
	}
	var entries [][]byte
	for off := start; off < len(b); {
		if len(b)-off < 4 {
			return nil, bad(fmt.Sprintf("truncated: %d stray bytes at offset %d", len(b)-off, off))
		}
		n := int64(binary.LittleEndian.Uint32(b[off:]))
		off += 4
		if n > int64(len(b)-off) {
			return nil, bad(fmt.Sprintf("truncated: entry %d at offset %d claims %d bytes, %d left",
				len(entries), off-4, n, len(b)-off))
		}
		entries = append(entries, b[off:off+int(n)])
		off += int(n)
	}
	return entries, nil
}
