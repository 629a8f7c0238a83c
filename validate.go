package dockercr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	criucore "github.com/checkpoint-restore/go-criu/v7/crit/images/criu-core"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/fdinfo"
	criufs "github.com/checkpoint-restore/go-criu/v7/crit/images/fs"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/inventory"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pstree"
	"google.golang.org/protobuf/encoding/protowire"
)

// ErrCorruptCheckpoint means a checkpoint's images are incomplete or
// damaged, so that a restore from them would fail half-way or bring
// back something else. A [*ImageError] names the image at fault.
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint")

// ImageError is a CRIU image that is missing, cannot be decoded, or
// does not agree with the images that refer to it. It matches
// [ErrCorruptCheckpoint].
type ImageError struct {
	// File is the image's path; for an archive, its entry name.
	File string
	// Reason says what is wrong with it.
	Reason string
	// Err is the decoder's or file system's error, if one caused it.
	Err error
}

func (e *ImageError) Error() string {
	return "checkpoint image " + e.File + ": " + e.Reason
}

// Unwrap returns the underlying error, such as [fs.ErrNotExist].
func (e *ImageError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrCorruptCheckpoint].
func (e *ImageError) Is(target error) bool { return target == ErrCorruptCheckpoint }

// ValidateImages checks, without reading any memory page, that the
// CRIU images in imagesDir are complete and agree with each other:
//
//   - inventory.img and pstree.img decode (magic, framing, protobuf
//     with its required fields), and the tree has one root and no
//     parent outside it;
//   - every thread has its core-TID.img, and every live process its
//     mm-PID.img and pagemap-PID.img, all decoding;
//   - every pagemap (shared memory ones too) refers to a pages-N.img
//     whose size is exactly the pages it says are in it, and to a
//     parent checkpoint when it says pages are there;
//   - files.img, ids-PID.img, fs-PID.img and fdinfo-N.img decode
//     where present, and every descriptor refers to a file in
//     files.img.
//
// Images must be regular files; a symbolic link counts as missing,
// but for the parent link of a pre-dump chain.
//
// A failure is a [*ImageError] naming the image. CRIU's images carry
// no checksums, so a flipped bit inside a value that still decodes
// (a port, a register) goes unnoticed; archives add SHA-256 sums for
// that. A directory without inventory.img also matches
// [ErrCheckpointNotFound].
func ValidateImages(imagesDir string) error {
	set, err := openDirImages(imagesDir)
	if err != nil {
		return err
	}
	_, err = checkImages(set)
	return err
}

// images is what checkImages decoded, for inspection to build on.
type images struct {
	set       imageSet
	inventory *inventory.InventoryEntry
	procs     []*procImages
	// pagemaps are every pagemap image by name.
	pagemaps map[string]*pagemapImage
	// files are files.img's entries by id, nil without files.img.
	files map[uint32]*fdinfo.FileEntry
}

// procImages are the images of one process. mm and pagemap are nil
// for a zombie; ids, fds and fs are nil where the images are absent.
type procImages struct {
	entry   *pstree.PstreeEntry
	core    *criucore.CoreEntry
	mm      *mm.MmEntry
	pagemap *pagemapImage
	ids     *criucore.TaskKobjIdsEntry
	fds     []*fdinfo.FdinfoEntry
	fs      *criufs.FsEntry
}

// pagemapImage is a decoded pagemap-*.img.
type pagemapImage struct {
	pagesID uint32
	entries []pagemapEntry
}

// pagemapEntry is one pagemap entry with CRIU's compatibility rules
// applied: a count from either field, flags from in_parent if unset.
type pagemapEntry struct {
	vaddr   uint64
	nrPages uint64
	flags   uint32
}

// checkImages decodes and cross-checks the images of set; see
// [ValidateImages].
func checkImages(set imageSet) (*images, error) {
	img := &images{set: set, pagemaps: make(map[string]*pagemapImage)}
	var err error
	if img.inventory, err = decodeInventory(set); err != nil {
		return nil, err
	}
	entries, err := decodePstree(set)
	if err != nil {
		return nil, err
	}
	if err := img.decodeFiles(); err != nil {
		return nil, err
	}
	for _, e := range entries {
		p, err := img.decodeProc(e)
		if err != nil {
			return nil, err
		}
		img.procs = append(img.procs, p)
	}
	if err := img.checkPages(); err != nil {
		return nil, err
	}
	return img, nil
}

func decodeInventory(set imageSet) (*inventory.InventoryEntry, error) {
	inv := &inventory.InventoryEntry{}
	if err := decodeOne(set, inventoryImg, magicNone, magicInventory, inv); err != nil {
		return nil, err
	}
	if v := inv.GetImgVersion(); v != imgVersion {
		return nil, &ImageError{File: set.path(inventoryImg),
			Reason: fmt.Sprintf("image version %d, CRIU writes %d", v, imgVersion)}
	}
	return inv, nil
}

// decodePstree decodes the process tree and checks its shape: unique
// PIDs, one root first (CRIU writes the root first), parents inside.
func decodePstree(set imageSet) ([]*pstree.PstreeEntry, error) {
	raw, err := decodeEntries(set, pstreeImg, magicCommon, magicPstree)
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return &ImageError{File: set.path(pstreeImg), Reason: fmt.Sprintf(format, args...)}
	}
	if len(raw) == 0 {
		return nil, bad("no process")
	}
	entries := make([]*pstree.PstreeEntry, len(raw))
	seen := make(map[uint32]bool, len(raw))
	for i, b := range raw {
		e := &pstree.PstreeEntry{}
		if err := unmarshalEntry(set, pstreeImg, i, b, e); err != nil {
			return nil, err
		}
		if e.GetPid() == 0 || seen[e.GetPid()] {
			return nil, bad("entry %d: pid %d is zero or repeated", i, e.GetPid())
		}
		seen[e.GetPid()] = true
		entries[i] = e
	}
	if entries[0].GetPpid() != 0 {
		return nil, bad("first process %d has parent %d, want the root",
			entries[0].GetPid(), entries[0].GetPpid())
	}
	for _, e := range entries[1:] {
		if !seen[e.GetPpid()] {
			return nil, bad("process %d has parent %d outside the tree", e.GetPid(), e.GetPpid())
		}
	}
	return entries, nil
}

// decodeFiles reads files.img, which CRIU 3.x and later write whenever
// a task has descriptors.
func (img *images) decodeFiles() error {
	if _, err := img.set.size(filesImg); err != nil {
		return nil
	}
	raw, err := decodeEntries(img.set, filesImg, magicCommon, magicFiles)
	if err != nil {
		return err
	}
	img.files = make(map[uint32]*fdinfo.FileEntry, len(raw))
	for i, b := range raw {
		f := &fdinfo.FileEntry{}
		if err := unmarshalEntry(img.set, filesImg, i, b, f); err != nil {
			return err
		}
		img.files[f.GetId()] = f
	}
	return nil
}

// decodeProc decodes the images of one process of the tree.
func (img *images) decodeProc(e *pstree.PstreeEntry) (*procImages, error) {
	p := &procImages{entry: e}
	for i, tid := range threadIDs(e) {
		core := &criucore.CoreEntry{}
		if err := decodeOne(img.set, coreImg(tid), magicCommon, magicCore, core); err != nil {
			return nil, err
		}
		if i == 0 {
			p.core = core
		}
	}
	if s := p.core.GetTc().GetTaskState(); s == taskZombie || s == taskDead {
		return p, nil
	}

	p.mm = &mm.MmEntry{}
	if err := decodeOne(img.set, mmImg(e.GetPid()), magicCommon, magicMM, p.mm); err != nil {
		return nil, err
	}
	pm, err := decodePagemap(img.set, pagemapImg(e.GetPid()))
	if err != nil {
		return nil, err
	}
	p.pagemap = pm
	img.pagemaps[pagemapImg(e.GetPid())] = pm
	if err := img.decodeFds(p); err != nil {
		return nil, err
	}
	if _, err := img.set.size(fsImg(e.GetPid())); err == nil {
		p.fs = &criufs.FsEntry{}
		if err := decodeOne(img.set, fsImg(e.GetPid()), magicCommon, magicFS, p.fs); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// threadIDs returns the TIDs of a process, the leader first. CRIU
// lists them all, the leader included; an empty list means only it.
func threadIDs(e *pstree.PstreeEntry) []uint32 {
	tids := []uint32{e.GetPid()}
	for _, t := range e.GetThreads() {
		if t != e.GetPid() {
			tids = append(tids, t)
		}
	}
	return tids
}

// decodeFds reads the process's ids, if any, and the descriptor table
// they name, and checks each descriptor against files.img.
func (img *images) decodeFds(p *procImages) error {
	name := idsImg(p.entry.GetPid())
	if _, err := img.set.size(name); err != nil {
		return nil
	}
	p.ids = &criucore.TaskKobjIdsEntry{}
	if err := decodeOne(img.set, name, magicCommon, magicIDs, p.ids); err != nil {
		return err
	}
	// CRIU writes the table of each files_id once, even when empty.
	name = fdinfoImg(p.ids.GetFilesId())
	raw, err := decodeEntries(img.set, name, magicCommon, magicFdinfo)
	if err != nil {
		return err
	}
	for i, b := range raw {
		fd := &fdinfo.FdinfoEntry{}
		if err := unmarshalEntry(img.set, name, i, b, fd); err != nil {
			return err
		}
		if img.files != nil && img.files[fd.GetId()] == nil {
			return &ImageError{File: img.set.path(name), Reason: fmt.Sprintf(
				"descriptor %d refers to file %d, which %s lacks", fd.GetFd(), fd.GetId(), filesImg)}
		}
		p.fds = append(p.fds, fd)
	}
	return nil
}

// checkPages decodes the pagemaps not yet read (shared memory ones)
// and checks every pages image against the pagemaps that fill it.
func (img *images) checkPages() error {
	want := make(map[uint32]uint64)
	owner := make(map[uint32]string)
	for _, name := range img.set.names() {
		if !isPagemapImg(name) {
			continue
		}
		pm := img.pagemaps[name]
		if pm == nil {
			var err error
			if pm, err = decodePagemap(img.set, name); err != nil {
				return err
			}
			img.pagemaps[name] = pm
		}
		if err := img.countPages(name, pm, want); err != nil {
			return err
		}
		owner[pm.pagesID] = name
	}

	ids := make([]uint32, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if err := checkPagesSize(img.set, id, want[id], owner[id]); err != nil {
			return err
		}
	}
	return nil
}

// countPages adds the present pages of pm to want, by pages image.
func (img *images) countPages(name string, pm *pagemapImage, want map[uint32]uint64) error {
	page := uint64(os.Getpagesize())
	total := want[pm.pagesID]
	for i, e := range pm.entries {
		if e.flags&peParent != 0 {
			if _, err := img.set.size(parentLink); err != nil {
				return &ImageError{File: img.set.path(name), Reason: fmt.Sprintf(
					"entry %d has pages in a parent checkpoint, but there is no %q link",
					i+1, parentLink)}
			}
		}
		if e.flags&pePresent == 0 {
			continue
		}
		if e.vaddr%page != 0 || e.nrPages > (1<<52)/page || total+e.nrPages < total {
			return &ImageError{File: img.set.path(name), Reason: fmt.Sprintf(
				"entry %d: %d pages at %#x do not fit in memory", i+1, e.nrPages, e.vaddr)}
		}
		total += e.nrPages
	}
	want[pm.pagesID] = total
	return nil
}

// checkPagesSize compares pages image id with the pages its pagemaps
// put in it. An image with no page to hold may be absent.
func checkPagesSize(set imageSet, id uint32, pages uint64, pagemapName string) error {
	name := pagesImg(id)
	size, err := set.size(name)
	if errors.Is(err, fs.ErrNotExist) && pages == 0 {
		return nil
	}
	if err != nil {
		e := missingImage(set, name)
		e.Reason = fmt.Sprintf("missing; %s puts %d pages in it", pagemapName, pages)
		return e
	}
	want := pages * uint64(os.Getpagesize())
	if uint64(size) != want {
		return &ImageError{File: set.path(name), Reason: fmt.Sprintf(
			"%d bytes, but %s puts %d pages (%d bytes) in it", size, pagemapName, pages, want)}
	}
	return nil
}

// decodePagemap decodes a pagemap image: its head, then its entries.
func decodePagemap(set imageSet, name string) (*pagemapImage, error) {
	raw, err := decodeEntries(set, name, magicCommon, magicPagemap)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, &ImageError{File: set.path(name), Reason: "no pagemap head"}
	}
	head := &pagemap.PagemapHead{}
	if err := unmarshalEntry(set, name, 0, raw[0], head); err != nil {
		return nil, err
	}
	pm := &pagemapImage{pagesID: head.GetPagesId(), entries: make([]pagemapEntry, 0, len(raw)-1)}
	for i, b := range raw[1:] {
		pe := &pagemap.PagemapEntry{}
		if err := unmarshalEntry(set, name, i+1, b, pe); err != nil {
			return nil, err
		}
		e, err := compatPagemapEntry(pe)
		if err != nil {
			return nil, &ImageError{File: set.path(name),
				Reason: fmt.Sprintf("entry %d: %v", i+1, err), Err: err}
		}
		pm.entries = append(pm.entries, e)
	}
	return pm, nil
}

// compatPagemapEntry applies CRIU's rules for older images: in_parent
// means PE_PARENT, no flags means PE_PRESENT, and the 64-bit count
// wins over the 32-bit one when present.
func compatPagemapEntry(pe *pagemap.PagemapEntry) (pagemapEntry, error) {
	e := pagemapEntry{vaddr: pe.GetVaddr(), nrPages: uint64(pe.GetNrPages()), flags: pe.GetFlags()}
	switch {
	case pe.GetInParent():
		e.flags |= peParent
	case pe.Flags == nil:
		e.flags = pePresent
	}
	n, ok, err := unknownVarint(pe.ProtoReflect().GetUnknown(), pagemapNrPages)
	if ok {
		e.nrPages = n
	}
	return e, err
}

// unknownVarint finds varint field num among unknown protobuf fields;
// the last occurrence wins, as in protobuf itself.
func unknownVarint(b []byte, num protowire.Number) (uint64, bool, error) {
	var v uint64
	var found bool
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, false, protowire.ParseError(l)
		}
		b = b[l:]
		if n == num && typ == protowire.VarintType {
			x, l := protowire.ConsumeVarint(b)
			if l < 0 {
				return 0, false, protowire.ParseError(l)
			}
			v, found, b = x, true, b[l:]
			continue
		}
		if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
			return 0, false, protowire.ParseError(l)
		}
		b = b[l:]
	}
	return v, found, nil
}
