package dockercr

import (
	"bytes"
	"os"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
)

// maxCmdline bounds the argument area read from memory.
const maxCmdline = 64 << 10

// span is a range of bytes of a pages image.
type span struct {
	off int64
	n   int
}

// cmdline reads the process's arguments from its dumped memory.
func (img *images) cmdline(p *procImages) []string {
	spans := argSpans(p.mm, p.pagemap)
	if spans == nil {
		return nil
	}
	var b []byte
	name := pagesImg(p.pagemap.pagesID)
	for _, s := range spans {
		part, err := img.set.readAt(name, s.off, s.n)
		if err != nil {
			return nil
		}
		b = append(b, part...)
	}
	return splitArgs(b)
}

// argSpans maps the argument area [mm_arg_start, mm_arg_end) to spans
// of the pages image: the pages of PE_PRESENT entries follow each
// other there in pagemap order. nil if some page of the area is not
// in the image (never touched, zero, or in a parent dump).
func argSpans(m *mm.MmEntry, pm *pagemapImage) []span {
	start, end := m.GetMmArgStart(), m.GetMmArgEnd()
	if pm == nil || end <= start {
		return nil
	}
	end = min(end, start+maxCmdline)
	page := uint64(os.Getpagesize())
	var spans []span
	var off uint64
	for _, e := range pm.entries {
		if start >= end {
			break
		}
		if e.nrPages > (1<<52)/page {
			return nil
		}
		eEnd := e.vaddr + e.nrPages*page
		present := e.flags&pePresent != 0
		if start < e.vaddr {
			return nil
		}
		if start < eEnd {
			if !present {
				return nil
			}
			n := min(end, eEnd) - start
			spans = append(spans, span{off: int64(off + start - e.vaddr), n: int(n)})
			start += n
		}
		if present {
			off += e.nrPages * page
		}
	}
	if start < end {
		return nil
	}
	return spans
}

// splitArgs splits NUL-terminated arguments.
func splitArgs(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}
