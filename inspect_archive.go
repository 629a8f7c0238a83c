package dockercr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"

	"github.com/docker-cr/dockercr/internal/ckptar"
)

// InspectArchive describes the checkpoint archive read from r (zstd,
// gzip or plain tar, images under checkpoint/) without unpacking it to
// disk. The images it decodes are held in memory, at most 1 GiB of
// them; pages images are only sized, but for the few bytes of each
// command line, captured as the stream passes. Nothing it reports is
// taken from the archive before the whole stream has been read and
// every file checked against the archive's checksums.
//
// It refuses an archive [ImportCheckpoint] would refuse, with
// [ErrBadArchive], and images that [ValidateImages] would refuse;
// [ImageError.File] then names the archive entry, such as
// "checkpoint/pages-1.img". Info.Created comes from the metadata only.
func InspectArchive(r io.Reader) (*CheckpointInfo, error) {
	a := &archiveImages{
		kept:  make(map[string][]byte),
		sizes: make(map[string]int64),
		spans: make(map[string]map[int64][]byte),
	}
	if err := walkArchive(r, a.entry); err != nil {
		return nil, err
	}
	if _, ok := a.sizes[inventoryImg]; !ok {
		return nil, fmt.Errorf("%w: archive has no %s",
			ErrCheckpointNotFound, archiveImagesDir+"/"+inventoryImg)
	}
	img, err := checkImages(a)
	if err != nil {
		return nil, err
	}

	info := describeImages(img)
	if err := info.readArchiveExtras(a); err != nil {
		return nil, err
	}
	return info, nil
}

// readArchiveExtras adds what the archive holds beside the images.
func (info *CheckpointInfo) readArchiveExtras(a *archiveImages) error {
	if a.metadata != nil {
		m, err := decodeMetadata(a.metadata, MetadataName)
		if err != nil {
			return fmt.Errorf("%w: entry %q: %w", ErrBadArchive, MetadataName, err)
		}
		info.Metadata = m
	}
	if a.stats != nil {
		st, err := decodeDumpStats(a.stats, statsDump)
		if err != nil {
			return err
		}
		info.Stats = st
	}
	info.CRIUVersion, info.Kernel = logHeader(bytes.NewReader(a.logHead))
	info.fromMetadata()
	return nil
}

// archiveImagesDir is the archive's folder of images, after Podman.
const archiveImagesDir = "checkpoint"

// Bounds on what an archive makes InspectArchive hold in memory.
const (
	maxArchiveKept = 1 << 30
	maxSmallFile   = 16 << 20
)

// archiveImages is an imageSet of the images of an archive: the small
// ones kept, the pages only sized, with the spans of them asked for.
type archiveImages struct {
	kept     map[string][]byte
	keptSize int64
	sizes    map[string]int64
	// spans are the captured bytes of pages images, by offset; planned
	// says they were chosen, at the first pages image.
	spans   map[string]map[int64][]byte
	planned map[string][]span

	// metadata, stats and logHead are checkpoint.json, stats-dump and
	// the first bytes of dump.log, nil where absent.
	metadata, stats, logHead []byte
}

func (a *archiveImages) path(name string) string { return archiveImagesDir + "/" + name }

func (a *archiveImages) size(name string) (int64, error) {
	if n, ok := a.sizes[name]; ok {
		return n, nil
	}
	return 0, fs.ErrNotExist
}

func (a *archiveImages) read(name string) ([]byte, error) {
	if b, ok := a.kept[name]; ok {
		return b, nil
	}
	if _, ok := a.sizes[name]; ok {
		return nil, errors.New("not held in memory")
	}
	return nil, fs.ErrNotExist
}

func (a *archiveImages) readAt(name string, off int64, n int) ([]byte, error) {
	if b, ok := a.spans[name][off]; ok && len(b) == n {
		return b, nil
	}
	return nil, errors.New("not captured from the archive")
}

func (a *archiveImages) names() []string {
	names := make([]string, 0, len(a.sizes))
	for n := range a.sizes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// entry takes one file of the archive.
func (a *archiveImages) entry(name string, size int64, body io.Reader) error {
	var err error
	switch name {
	case MetadataName:
		a.metadata, err = readSmall(name, body)
		return err
	case statsDump:
		a.stats, err = readSmall(name, body)
		return err
	case DumpLogName:
		a.logHead, err = io.ReadAll(io.LimitReader(body, logHeadSize))
		return err
	}
	image, ok := strings.CutPrefix(name, archiveImagesDir+"/")
	if !ok || image == "" || strings.Contains(image, "/") {
		return nil
	}
	return a.image(image, size, body)
}

// image takes one image: pages are sized and their planned spans
// captured, the images inspection decodes are kept, others sized.
func (a *archiveImages) image(name string, size int64, body io.Reader) error {
	a.sizes[name] = size
	if isPagesImg(name) {
		if a.planned == nil {
			a.planned = planArgSpans(a)
		}
		return a.capture(name, body)
	}
	if !keptImage(name) {
		return nil
	}
	if a.keptSize+size > maxArchiveKept || size > maxImageSize {
		return &ImageError{File: a.path(name), Reason: fmt.Sprintf(
			"images other than pages exceed %d MiB", maxArchiveKept>>20)}
	}
	b, err := io.ReadAll(io.LimitReader(body, size))
	if err != nil {
		return fmt.Errorf("read %s: %w", a.path(name), err)
	}
	a.kept[name] = b
	a.keptSize += int64(len(b))
	return nil
}

// keptImage says whether inspection decodes the image.
func keptImage(name string) bool {
	switch name {
	case inventoryImg, pstreeImg, filesImg:
		return true
	}
	for _, p := range []string{"core-", "mm-", "pagemap-", "ids-", "fdinfo-", "fs-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// planArgSpans chooses, from the pstree, mm and pagemap images seen
// so far, the spans of pages images that hold command lines. Images
// that do not decode plan nothing; validation reports them later.
func planArgSpans(a *archiveImages) map[string][]span {
	plan := make(map[string][]span)
	entries, err := decodePstree(a)
	if err != nil {
		return plan
	}
	for _, e := range entries {
		m := &mm.MmEntry{}
		if decodeOne(a, mmImg(e.GetPid()), magicCommon, magicMM, m) != nil {
			continue
		}
		pm, err := decodePagemap(a, pagemapImg(e.GetPid()))
		if err != nil {
			continue
		}
		name := pagesImg(pm.pagesID)
		plan[name] = append(plan[name], argSpans(m, pm)...)
	}
	return plan
}

// capture reads the planned spans of a pages image from its stream.
func (a *archiveImages) capture(name string, body io.Reader) error {
	spans := a.planned[name]
	sort.Slice(spans, func(i, j int) bool { return spans[i].off < spans[j].off })
	var pos int64
	for _, s := range spans {
		if s.off < pos {
			continue
		}
		// A pages image shorter than its pagemap says fails validation
		// later, naming it; here it only ends the capture.
		if _, err := io.CopyN(io.Discard, body, s.off-pos); err != nil {
			return ignoreEOF(err)
		}
		b := make([]byte, s.n)
		if _, err := io.ReadFull(body, b); err != nil {
			return ignoreEOF(err)
		}
		if a.spans[name] == nil {
			a.spans[name] = make(map[int64][]byte)
		}
		a.spans[name][s.off] = b
		pos = s.off + int64(s.n)
	}
	return nil
}

// readSmall reads a metadata file of an archive, bounded.
func readSmall(name string, r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSmallFile+1))
	if err == nil && len(b) > maxSmallFile {
		err = fmt.Errorf("%s is larger than %d MiB", name, maxSmallFile>>20)
	}
	return b, err
}

// decodeMetadata is [ReadMetadata] on the bytes of checkpoint.json.
func decodeMetadata(b []byte, where string) (*Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if m.Format != metadataFormat {
		return nil, fmt.Errorf("%s: format %d, this library reads %d", where, m.Format, metadataFormat)
	}
	return &m, nil
}

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}

// walkArchive calls fn for each file of a checkpoint archive, in
// archive order, through internal/ckptar, which checks names, types,
// the default [ArchiveLimits] and, once the stream ends, the checksum
// of every file. A refused archive matches [ErrBadArchive].
func walkArchive(r io.Reader, fn func(name string, size int64, body io.Reader) error) error {
	err := ckptar.Walk(r, ckptar.Limits{}, func(e ckptar.Entry, body io.Reader) error {
		if e.Dir {
			return nil
		}
		return fn(e.Name, e.Size, body)
	})
	if errors.Is(err, ckptar.ErrInvalid) {
		return fmt.Errorf("%w: %w", ErrBadArchive, err)
	}
	if err != nil {
		return fmt.Errorf("inspect archive: %w", err)
	}
	return nil
}
