package ckptar

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
)

// manifestFormat is the version of the manifest and of the layout.
const manifestFormat = 1

// manifest is the content of dockercr.sums, the last entry of an
// archive: the size and SHA-256 of every other regular file, in the
// order they were written. Directories carry no content and are not
// listed.
type manifest struct {
	Format int            `json:"format"`
	Files  []manifestFile `json:"files"`
}

// manifestFile is one file of a manifest.
type manifestFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// SHA256 is the lowercase hex digest of the content.
	SHA256 string `json:"sha256"`
}

func (m *manifest) add(name string, size int64, sum []byte) {
	m.Files = append(m.Files, manifestFile{Name: name, Size: size,
		SHA256: hex.EncodeToString(sum)})
}

func (m *manifest) encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", " ")
	return append(b, '\n'), err
}

// parseManifest decodes a manifest strictly: unknown fields, trailing
// data and other formats are refused, since a later format would say so
// in its number.
func parseManifest(b []byte) (*manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m manifest
	if err := dec.Decode(&m); err != nil {
		return nil, &EntryError{Name: ManifestName, Reason: "not a manifest", Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, reject(ManifestName, "data after the manifest's JSON")
	}
	if m.Format != manifestFormat {
		return nil, reject(ManifestName, "format %d, this reader knows %d",
			m.Format, manifestFormat)
	}
	return &m, nil
}

// fileSum is what a reader measured of one regular file.
type fileSum struct {
	size int64
	sum  string
}

// verify checks that the manifest lists exactly the files seen, in
// any order, with their sizes and digests. order is the archive order,
// so the first file at fault is the one reported.
func (m *manifest) verify(order []string, seen map[string]fileSum) error {
	listed := make(map[string]manifestFile, len(m.Files))
	for _, f := range m.Files {
		if _, dup := listed[f.Name]; dup {
			return reject(ManifestName, "lists %q twice", f.Name)
		}
		listed[f.Name] = f
	}
	for _, name := range order {
		got := seen[name]
		want, ok := listed[name]
		switch {
		case !ok:
			return reject(name, "not listed in the manifest")
		case got.size != want.Size:
			return reject(name, "size %d, the manifest says %d", got.size, want.Size)
		case got.sum != want.SHA256:
			return reject(name, "checksum mismatch: sha256 %s, the manifest says %q",
				got.sum, want.SHA256)
		}
	}
	for _, f := range m.Files {
		if _, ok := seen[f.Name]; !ok {
			return reject(f.Name, "listed in the manifest but not in the archive")
		}
	}
	return nil
}
