package ckptar

import (
	"path"
	"regexp"
	"strings"
)

// Names of the archive layout (format 1).
const (
	MetadataName     = "checkpoint.json"
	ConfigDumpName   = "config.dump"
	SpecDumpName     = "spec.dump"
	DumpLogName      = "dump.log"
	RestoreLogName   = "restore.log"
	StatsDumpName    = "stats-dump"
	StatsRestoreName = "stats-restore"
	DeletedFilesName = "deleted.files"
	RootfsDiffName   = "rootfs-diff.tar"
	ManifestName     = "dockercr.sums"

	// ImagesDir is the archive's folder of CRIU images, named as in
	// Podman's export; DiskImagesDir is the folder it maps to in a
	// checkpoint directory.
	ImagesDir     = "checkpoint"
	DiskImagesDir = "images"
	// VolumesDir holds one NAME.tar per named volume, in the archive
	// and on disk alike.
	VolumesDir = "volumes"

	// InventoryName is the image every CRIU dump writes first; an
	// archive without it holds no checkpoint.
	InventoryName = "inventory.img"
	pagesPrefix   = "pages-"
)

// maxElemLen bounds one element of a name, as Linux file systems do.
const maxElemLen = 255

var (
	// imageElem is what CRIU names its images: "core-12.img",
	// "tmpfs-dev-68.tar.gz.img", "irmap-cache", "descriptors.json".
	imageElem = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)
	// volumeElem is a Docker volume name with ".tar" appended.
	volumeElem = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*\.tar$`)
)

// topOrder lists the top-level files in the order they are written.
var topOrder = [...]string{
	MetadataName, ConfigDumpName, SpecDumpName,
	DumpLogName, RestoreLogName, StatsDumpName, StatsRestoreName,
	DeletedFilesName,
}

// required are the entries without which an archive holds no
// checkpoint a restore could use.
var required = []string{MetadataName, ImagesDir + "/" + InventoryName}

// Ranks after the top-level files, in writing order.
const (
	rankImagesDir = len(topOrder) + iota
	rankInventory
	rankImage
	rankPages
	rankRootfs
	rankVolumesDir
	rankVolume
	rankManifest
)

// rank returns where name goes in the archive, and whether it belongs
// to the layout at all. dir says whether the entry is a directory.
func rank(name string, dir bool) (int, bool) {
	if dir {
		switch name {
		case ImagesDir:
			return rankImagesDir, true
		case VolumesDir:
			return rankVolumesDir, true
		}
		return 0, false
	}
	for i, n := range topOrder {
		if name == n {
			return i, true
		}
	}
	switch name {
	case RootfsDiffName:
		return rankRootfs, true
	case ManifestName:
		return rankManifest, true
	}
	folder, elem := path.Split(name)
	switch {
	case len(elem) > maxElemLen:
		return 0, false
	case folder == ImagesDir+"/" && elem == InventoryName:
		return rankInventory, true
	case folder == ImagesDir+"/" && imageElem.MatchString(elem):
		if strings.HasPrefix(elem, pagesPrefix) {
			return rankPages, true
		}
		return rankImage, true
	case folder == VolumesDir+"/" && volumeElem.MatchString(elem):
		return rankVolume, true
	}
	return 0, false
}

// checkName fails unless name is a clean relative name of the layout.
// Directory names come without their trailing slash.
func checkName(name string, dir bool) error {
	switch {
	case name == "":
		return reject(name, "empty name")
	case strings.HasPrefix(name, "/"):
		return reject(name, "absolute name")
	case hasDotDot(name):
		return reject(name, `name contains ".."`)
	case path.Clean(name) != name:
		return reject(name, "name is not clean")
	}
	if _, ok := rank(name, dir); ok {
		return nil
	}
	if _, ok := rank(name, !dir); ok {
		if dir {
			return reject(name, "must be a regular file")
		}
		return reject(name, "must be a directory")
	}
	return reject(name, "not part of the checkpoint layout")
}

func hasDotDot(name string) bool {
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return true
		}
	}
	return false
}

// diskPath maps an archive name to its slash-separated path in a
// checkpoint directory, or "" for entries that are not stored there
// (config.dump and spec.dump derive from checkpoint.json; the manifest
// is consumed by the reader).
func diskPath(name string) string {
	switch name {
	case ConfigDumpName, SpecDumpName, ManifestName:
		return ""
	case ImagesDir:
		return DiskImagesDir
	}
	if rest, ok := strings.CutPrefix(name, ImagesDir+"/"); ok {
		return DiskImagesDir + "/" + rest
	}
	return name
}
