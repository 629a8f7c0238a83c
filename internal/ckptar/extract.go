package ckptar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ReadOptions configure [Extract].
type ReadOptions struct {
	// Limits bound what is accepted; zero fields take the defaults.
	Limits Limits
	// Progress, if set, is called as compressed bytes are read, at most
	// about ten times a second, and once when the archive checked out.
	Progress func(Progress)
}

// Extract reads an archive from r into dest, an existing empty
// directory that only the caller can write to (a staging directory the
// caller renames into place on success). It writes each file 0600 and
// each folder 0700 as a checkpoint directory lays them out (the
// archive's checkpoint/ becomes images/), syncs them, and checks
// everything [Walk] checks. config.dump and spec.dump are verified but
// not stored: they derive from checkpoint.json.
//
// On any error dest holds partial, unverified content: the caller
// removes it. A Read of r that blocks is not interrupted by ctx; close
// the source to unblock it.
func Extract(ctx context.Context, r io.Reader, dest string, opts ReadOptions) (*Summary, error) {
	x := &extractor{dest: dest, buf: make([]byte, copyChunk), made: map[string]bool{}}
	m := newMeter(opts.Progress, inputSize(r))
	sum, err := walk(ctx, r, opts.Limits, m, x.entry)
	if err != nil {
		return nil, err
	}
	if err := x.syncDirs(); err != nil {
		return nil, err
	}
	return sum, nil
}

// inputSize returns how much is left to read of r if it is a regular
// file, else 0.
func inputSize(r io.Reader) int64 {
	f, ok := r.(*os.File)
	if !ok {
		return 0
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil || off > st.Size() {
		return 0
	}
	return st.Size() - off
}

// extractor writes the entries [walk] accepted below dest.
type extractor struct {
	dest string
	buf  []byte
	made map[string]bool
	dirs []string
}

func (x *extractor) entry(e Entry, body io.Reader) error {
	rel := diskPath(e.Name)
	if rel == "" {
		return nil
	}
	p := filepath.Join(x.dest, filepath.FromSlash(rel))
	if e.Dir {
		return x.mkdir(p)
	}
	if parent := filepath.Dir(p); parent != x.dest {
		if err := x.mkdir(parent); err != nil {
			return err
		}
	}
	return x.writeFile(p, body)
}

// mkdir creates a folder of the layout once, or accepts the real
// directory the caller's staging made.
func (x *extractor) mkdir(p string) error {
	if x.made[p] {
		return nil
	}
	err := os.Mkdir(p, 0o700)
	if errors.Is(err, fs.ErrExist) {
		st, lerr := os.Lstat(p)
		if lerr != nil || !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", p)
		}
		err = os.Chmod(p, 0o700)
	}
	if err != nil {
		return err
	}
	x.made[p] = true
	x.dirs = append(x.dirs, p)
	return nil
}

// writeFile copies body into a new file p and syncs it. O_EXCL and
// O_NOFOLLOW make sure nothing that was there is followed or reused.
func (x *extractor) writeFile(p string, body io.Reader) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	for err == nil {
		var n int
		n, err = io.ReadFull(body, x.buf)
		if n > 0 {
			if _, werr := f.Write(x.buf[:n]); werr != nil {
				err = werr
			}
		}
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		// The body ends with io.EOF; ReadFull calls a short last chunk
		// unexpected.
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// syncDirs makes the directory entries of the new files durable.
func (x *extractor) syncDirs() error {
	for _, d := range append(x.dirs, x.dest) {
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
