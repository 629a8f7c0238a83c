package ckptar

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name   string
		dir    bool
		reason string // "" when the name is accepted
	}{
		{MetadataName, false, ""},
		{ConfigDumpName, false, ""},
		{ManifestName, false, ""},
		{"checkpoint/pages-1.img", false, ""},
		{"checkpoint/tmpfs-dev-68.tar.gz.img", false, ""},
		{"checkpoint/descriptors.json", false, ""},
		{"volumes/data.tar", false, ""},
		{ImagesDir, true, ""},
		{VolumesDir, true, ""},
		{"", false, "empty"},
		{"/etc/passwd", false, "absolute"},
		{"../evil", false, `".."`},
		{"checkpoint/../../x", false, `".."`},
		{"checkpoint/..", true, `".."`},
		{"./checkpoint.json", false, "not clean"},
		{"checkpoint//core-1.img", false, "not clean"},
		{"checkpoint", false, "must be a directory"},
		{MetadataName, true, "must be a regular file"},
		{"images/core-1.img", false, "not part"},
		{"checkpoint/sub/core-1.img", false, "not part"},
		{"checkpoint/.hidden", false, "not part"},
		{"checkpoint/a\x1b[2Jb", false, "not part"},
		{"checkpoint/" + strings.Repeat("a", 256), false, "not part"},
		{"volumes/data", false, "not part"},
		{"volumes/../x.tar", false, `".."`},
		{"evil.sh", false, "not part"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkName(tt.name, tt.dir)
			if tt.reason == "" {
				if err != nil {
					t.Errorf("checkName(%q): %v, want accepted", tt.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("checkName(%q): %v, want %q", tt.name, err, tt.reason)
			}
		})
	}
}

func TestDiskPath(t *testing.T) {
	tests := []struct{ name, want string }{
		{MetadataName, MetadataName},
		{ImagesDir, DiskImagesDir},
		{"checkpoint/core-1.img", "images/core-1.img"},
		{"volumes/data.tar", "volumes/data.tar"},
		{RootfsDiffName, RootfsDiffName},
		{ConfigDumpName, ""},
		{SpecDumpName, ""},
		{ManifestName, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := diskPath(tt.name); got != tt.want {
				t.Errorf("diskPath(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}
