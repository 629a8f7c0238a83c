package dockercr

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// CRIU's image format: a file starts with a 32-bit magic saying
// whether it is a service image (stats) or a common one, then the
// magic of its type, then entries, each a 32-bit little-endian length
// and a protobuf message. inventory.img, read first to learn the
// format, has only its own magic (magicNone). Values from go-criu's
// magic package (CRIU's images/magic.h).
const (
	magicNone      = 0
	magicCommon    = 0x54564319
	magicService   = 0x55105940
	magicInventory = 0x58313116
	magicPstree    = 0x50273030
	magicCore      = 0x55053847
	magicMM        = 0x57492820
	magicPagemap   = 0x56084025
	magicFiles     = 0x56303138
	magicFdinfo    = 0x56213732
	magicIDs       = 0x54432030
	magicFS        = 0x51403912
	magicStats     = 0x57093306
)

// imgVersion is the inventory's img_version of every CRIU since 1.1
// (CRTOOLS_IMAGES_V1_1).
const imgVersion = 2

// Pagemap entry flags (CRIU's criu/include/pagemap.h). Only PE_PRESENT
// pages are in the pages image: PE_PARENT ones are in the parent
// checkpoint, and PE_LAZY alone means a lazy-pages dump left them in
// the process. A normal dump marks most anonymous pages
// PE_LAZY|PE_PRESENT, so PE_LAZY does not mean absent.
const (
	pePresent = 1 << 2
	peParent  = 1 << 0
)

// pagemapNrPages is the 64-bit page count newer CRIU writes in
// pagemap_entry; 4.2.1 writes it and leaves the old 32-bit nr_pages 0.
// go-criu v7.2's schema lacks it, so it is read from unknown fields.
const pagemapNrPages = 5

// Task states of core_entry.tc.task_state (CRIU's compel task-state.h).
// Zombies and dead tasks have no memory images.
const (
	taskAlive   = 1
	taskDead    = 2
	taskStopped = 3
	taskZombie  = 6
)

// maxImageSize bounds an image read into memory. The largest are the
// mm and files images of processes with very many mappings or
// descriptors, a few MiB.
const maxImageSize = 256 << 20

// parentLink is the link a pre-dump chain leaves in the images dir.
const parentLink = "parent"

// imageSet is the images of one checkpoint: a directory, or the images
// of an archive held in memory (pages only sized).
type imageSet interface {
	// path names the image in errors.
	path(name string) string
	// size returns the image's size, an error matching
	// [fs.ErrNotExist] if it is absent.
	size(name string) (int64, error)
	// read returns the image's content.
	read(name string) ([]byte, error)
	// readAt reads n bytes of the image at off; an archive answers
	// only for the spans captured while streaming.
	readAt(name string, off int64, n int) ([]byte, error)
	// names lists every image.
	names() []string
}

// dirImages is an images directory on disk.
type dirImages struct {
	dir   string
	files map[string]int64
}

// openDirImages lists dir. It fails with ErrCheckpointNotFound unless
// dir holds inventory.img.
func openDirImages(dir string) (*dirImages, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpointNotFound, err)
	}
	d := &dirImages{dir: dir, files: make(map[string]int64, len(entries))}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		if info.Mode().IsRegular() {
			d.files[e.Name()] = info.Size()
		} else if e.Name() == parentLink {
			d.files[e.Name()] = 0
		}
	}
	if _, ok := d.files[inventoryImg]; !ok {
		return nil, fmt.Errorf("%w: %w", ErrCheckpointNotFound, missingImage(d, inventoryImg))
	}
	return d, nil
}

func (d *dirImages) path(name string) string { return filepath.Join(d.dir, name) }

func (d *dirImages) size(name string) (int64, error) {
	if n, ok := d.files[name]; ok {
		return n, nil
	}
	return 0, fs.ErrNotExist
}

func (d *dirImages) read(name string) ([]byte, error) {
	f, err := os.Open(d.path(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxImageSize+1))
	if err == nil && len(b) > maxImageSize {
		err = fmt.Errorf("larger than %d MiB", maxImageSize>>20)
	}
	return b, err
}

func (d *dirImages) readAt(name string, off int64, n int) ([]byte, error) {
	f, err := os.Open(d.path(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

func (d *dirImages) names() []string {
	names := make([]string, 0, len(d.files))
	for n := range d.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Image names.
const (
	inventoryImg = "inventory.img"
	pstreeImg    = "pstree.img"
	filesImg     = "files.img"
	statsDump    = "stats-dump"
)

func coreImg(tid uint32) string     { return "core-" + utoa(tid) + ".img" }
func mmImg(pid uint32) string       { return "mm-" + utoa(pid) + ".img" }
func pagemapImg(pid uint32) string  { return "pagemap-" + utoa(pid) + ".img" }
func pagesImg(id uint32) string     { return "pages-" + utoa(id) + ".img" }
func idsImg(pid uint32) string      { return "ids-" + utoa(pid) + ".img" }
func fdinfoImg(id uint32) string    { return "fdinfo-" + utoa(id) + ".img" }
func fsImg(pid uint32) string       { return "fs-" + utoa(pid) + ".img" }
func utoa(v uint32) string          { return strconv.FormatUint(uint64(v), 10) }
func isPagesImg(name string) bool   { return strings.HasPrefix(name, "pages-") }
func isPagemapImg(name string) bool { return strings.HasPrefix(name, "pagemap-") }

func missingImage(set imageSet, name string) *ImageError {
	return &ImageError{File: set.path(name), Reason: "missing", Err: fs.ErrNotExist}
}
