package modes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestViolations(t *testing.T) {
	tests := []struct {
		name    string
		dirMode os.FileMode
		file    os.FileMode
		want    []string // substrings of the lines, in walk order
	}{
		{"all private", 0o700, 0o600, nil},
		{"readable file", 0o700, 0o644, []string{"f has mode -rw-r--r--, want -rw-------"}},
		{"open dir", 0o755, 0o600, []string{"sub has mode -rwxr-xr-x, want -rwx------"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.Chmod(root, 0o700); err != nil {
				t.Fatal(err)
			}
			sub := filepath.Join(root, "sub")
			if err := os.Mkdir(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(sub, "f")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("f", filepath.Join(sub, "link")); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, tt.file); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(sub, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			got, err := Violations(root)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Violations = %q, want %d lines like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasSuffix(got[i], w) {
					t.Errorf("line %d = %q, want it to end in %q", i, got[i], w)
				}
			}
		})
	}
	if _, err := Violations(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Violations of a missing directory: no error")
	}
}
