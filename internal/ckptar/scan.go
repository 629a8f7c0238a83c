package ckptar

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrUnexpectedFile means a checkpoint directory holds something that is
// not part of its layout: a symbolic link, a socket, a device, a
// subdirectory, or a file of unknown name. Writing refuses it rather
// than leave it out unnoticed.
var ErrUnexpectedFile = errors.New("not part of a checkpoint directory")

// source is one entry to write.
type source struct {
	name string // archive name
	path string // file on disk; "" for directories and generated files
	data []byte // content of a generated file
	dir  bool
	size int64
	rank int
}

// scanDir lists what an archive of dir holds, in writing order.
func scanDir(dir string, opts WriteOptions) ([]source, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var srcs []source
	for _, e := range entries {
		more, err := scanTop(dir, e, opts.SkipRootfs)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, more...)
	}
	for _, g := range []struct {
		name string
		data []byte
	}{{ConfigDumpName, opts.ConfigDump}, {SpecDumpName, opts.SpecDump}} {
		if g.data != nil {
			r, _ := rank(g.name, false)
			srcs = append(srcs, source{name: g.name, data: g.data,
				size: int64(len(g.data)), rank: r})
		}
	}

	if err := checkRequired(dir, srcs); err != nil {
		return nil, err
	}
	slices.SortFunc(srcs, func(a, b source) int {
		if a.rank != b.rank {
			return a.rank - b.rank
		}
		return strings.Compare(a.name, b.name)
	})
	return srcs, nil
}

// scanTop lists the entries that one top-level name of dir stands for.
func scanTop(dir string, e fs.DirEntry, skipRootfs bool) ([]source, error) {
	p := filepath.Join(dir, e.Name())
	switch e.Name() {
	case DiskImagesDir:
		return scanFolder(p, ImagesDir, e)
	case VolumesDir:
		return scanFolder(p, VolumesDir, e)
	case RootfsDiffName, DeletedFilesName:
		if skipRootfs {
			return nil, nil
		}
	}
	if _, ok := rank(e.Name(), false); !ok || diskPath(e.Name()) == "" {
		return nil, unexpected(p, e.Type())
	}
	s, err := fileSource(p, e.Name(), e)
	return []source{s}, err
}

// scanFolder lists a folder of the layout and the files in it.
func scanFolder(p, name string, e fs.DirEntry) ([]source, error) {
	if !e.IsDir() {
		return nil, unexpected(p, e.Type())
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	r, _ := rank(name, true)
	srcs := []source{{name: name, dir: true, rank: r}}
	for _, f := range entries {
		s, err := fileSource(filepath.Join(p, f.Name()), name+"/"+f.Name(), f)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, s)
	}
	return srcs, nil
}

func fileSource(p, name string, e fs.DirEntry) (source, error) {
	r, ok := rank(name, false)
	if !ok || !e.Type().IsRegular() {
		return source{}, unexpected(p, e.Type())
	}
	info, err := e.Info()
	if err != nil {
		return source{}, err
	}
	return source{name: name, path: p, size: info.Size(), rank: r}, nil
}

func checkRequired(dir string, srcs []source) error {
	for _, req := range required {
		if !slices.ContainsFunc(srcs, func(s source) bool { return s.name == req }) {
			return fmt.Errorf("%s: no %s: %w", dir, filepath.FromSlash(diskPath(req)),
				fs.ErrNotExist)
		}
	}
	return nil
}

func unexpected(p string, mode fs.FileMode) error {
	return fmt.Errorf("%s (%s): %w", p, describeMode(mode), ErrUnexpectedFile)
}

func describeMode(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeSymlink != 0:
		return "symbolic link"
	case mode&fs.ModeSocket != 0:
		return "socket"
	case mode&fs.ModeNamedPipe != 0:
		return "named pipe"
	case mode&fs.ModeDevice != 0:
		return "device"
	case mode.IsDir():
		return "directory"
	case mode.IsRegular():
		return "file of unknown name"
	}
	return "special file"
}
