// Package ckptar writes and reads checkpoint archives: one tar stream,
// compressed with zstd, gzip or not at all, that carries a checkpoint
// directory from one host to another.
//
// The layout inside follows Podman's checkpoint export, so that
// checkpointctl can show an archive: checkpoint.json, config.dump and
// spec.dump first, then CRIU's logs and statistics, then the images
// under checkpoint/ (page images last, so a streaming reader sees the
// process tree and memory maps before the pages), then the container's
// filesystem changes and volumes, and last the manifest dockercr.sums,
// which holds the size and SHA-256 of every other file.
//
// [Write] streams a checkpoint directory into an archive, hashing each
// file as it goes, and refuses a directory that holds anything outside
// the layout.
//
// Reading is built for archives from strangers. [Extract] unpacks one
// into a staging directory; [Walk] hands each entry to a function
// without unpacking, so an inspector can read the small files and skip
// the pages. Both accept only regular files and the two directories of
// the layout, under clean relative names; they bound the number of
// entries, each file's size, the total size and the expansion over the
// compressed input ([Limits]), and they check every file against the
// manifest once the stream ends. Every rejection matches [ErrInvalid] and names
// the entry at fault ([*EntryError]).
//
// The package knows the layout but nothing of the library above it: it
// never parses checkpoint.json, and the caller supplies config.dump and
// spec.dump when writing (see [ConfigDump] and [SpecDump]).
package ckptar
