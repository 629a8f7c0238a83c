package ckptar

import (
	"errors"
	"fmt"
)

// Limits bound what [Walk] and [Extract] accept from an archive. A zero
// field takes its default; a negative one is refused.
type Limits struct {
	// MaxFiles bounds the entries, directories included. Default
	// [DefaultMaxFiles].
	MaxFiles int
	// MaxTotalBytes bounds the sum of all file sizes. Default
	// [DefaultMaxTotalBytes].
	MaxTotalBytes int64
	// MaxFileBytes bounds each file's size. Default
	// [DefaultMaxFileBytes].
	MaxFileBytes int64
	// MaxExpansionRatio bounds the file bytes produced per compressed
	// byte read, measured over the stream so far. The first
	// [ExpansionAllowance] bytes are exempt: tar headers and small
	// files compress far beyond any sane ratio. Default
	// [DefaultMaxExpansionRatio].
	MaxExpansionRatio float64
}

// Default limits. A process's memory lands in one pages image, so the
// per-file bound is large. Memory of zero pages is the most compressible
// thing a checkpoint holds: this package's zstd packs it about 5000 to 1
// and gzip cannot pass 1032 to 1, so the default ratio refuses no
// archive they wrote; zstd's stronger levels (and the zstd command) pack
// zeros 32768 to 1, as a zstd bomb does, and are refused.
const (
	DefaultMaxFiles          = 1 << 16
	DefaultMaxTotalBytes     = 256 << 30
	DefaultMaxFileBytes      = 64 << 30
	DefaultMaxExpansionRatio = 10000
)

// ExpansionAllowance is how many file bytes a reader produces before
// the expansion ratio is enforced.
const ExpansionAllowance = 16 << 20

// maxTrailer bounds what may follow the tar stream's end marker: tar
// pads to records of 10 KiB, and compressors end their frames.
const maxTrailer = 1 << 20

// DefaultLimits returns the limits a zero [Limits] stands for.
func DefaultLimits() Limits { return Limits{}.withDefaults() }

func (l Limits) withDefaults() Limits {
	if l.MaxFiles == 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.MaxTotalBytes == 0 {
		l.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if l.MaxFileBytes == 0 {
		l.MaxFileBytes = DefaultMaxFileBytes
	}
	if l.MaxExpansionRatio == 0 {
		l.MaxExpansionRatio = DefaultMaxExpansionRatio
	}
	return l
}

// Validate refuses negative limits.
func (l Limits) Validate() error {
	var errs []error
	if l.MaxFiles < 0 {
		errs = append(errs, fmt.Errorf("MaxFiles %d is negative", l.MaxFiles))
	}
	if l.MaxTotalBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxTotalBytes %d is negative", l.MaxTotalBytes))
	}
	if l.MaxFileBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxFileBytes %d is negative", l.MaxFileBytes))
	}
	if !(l.MaxExpansionRatio >= 0) {
		errs = append(errs, fmt.Errorf("MaxExpansionRatio %v is not a positive number",
			l.MaxExpansionRatio))
	}
	return errors.Join(errs...)
}

// maxManifestBytes bounds the manifest, which is read into memory: a
// line of JSON per entry, each name at most a few hundred bytes.
func (l Limits) maxManifestBytes() int64 {
	return int64(l.MaxFiles)*512 + 64<<10
}
