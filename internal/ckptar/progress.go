package ckptar

import "time"

// Progress reports how far a write or read has come.
type Progress struct {
	// File is the archive name of the entry being moved.
	File string
	// Done counts file bytes written so far when writing, and
	// compressed bytes read so far when reading.
	Done int64
	// Total is what Done ends at: the sum of the file sizes when
	// writing, the input's size when reading from a regular file,
	// and 0 when that is not known.
	Total int64
}

// progressInterval is the shortest time between two reports, so a
// caller that redraws a bar on each is not flooded.
const progressInterval = 100 * time.Millisecond

// meter calls fn with the progress at most once per interval, and once
// more at the end.
type meter struct {
	fn       func(Progress)
	p        Progress
	interval time.Duration
	last     time.Time
}

func newMeter(fn func(Progress), total int64) *meter {
	return &meter{fn: fn, p: Progress{Total: total}, interval: progressInterval}
}

// set records done bytes of file and reports if the interval passed.
func (m *meter) set(file string, done int64) {
	if m.fn == nil {
		return
	}
	m.p.File, m.p.Done = file, done
	if now := time.Now(); now.Sub(m.last) >= m.interval {
		m.last = now
		m.fn(m.p)
	}
}

// final reports done as the last word.
func (m *meter) final(done int64) {
	if m.fn == nil {
		return
	}
	m.p.Done = done
	m.fn(m.p)
}
