package dockercr

import "testing"

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		v, min Version
		want   bool
	}{
		{Version{4, 2, 1}, Version{4, 0, 0}, true},
		{Version{4, 0, 0}, Version{4, 0, 0}, true},
		{Version{4, 2, 0}, Version{4, 2, 1}, false},
		{Version{4, 2, 1}, Version{4, 2, 1}, true},
		{Version{4, 2, 2}, Version{4, 2, 1}, true},
		{Version{3, 17, 1}, Version{4, 0, 0}, false},
		{Version{3, 99, 99}, Version{4, 0, 0}, false},
		{Version{5, 0, 0}, Version{4, 9, 9}, true},
		{Version{4, 1, 0}, Version{4, 0, 9}, true},
		{Version{}, Version{0, 0, 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.v.String()+" vs "+tt.min.String(), func(t *testing.T) {
			if got := tt.v.AtLeast(tt.min); got != tt.want {
				t.Fatalf("%v.AtLeast(%v) = %v, want %v", tt.v, tt.min, got, tt.want)
			}
		})
	}
}

func TestVersionString(t *testing.T) {
	tests := []struct {
		v    Version
		want string
	}{
		{Version{4, 2, 1}, "4.2.1"},
		{Version{3, 17, 0}, "3.17"},
		{Version{4, 0, 0}, "4.0"},
		{Version{10, 0, 3}, "10.0.3"},
		{Version{}, "0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.v.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			if got := tt.v.IsZero(); got != (tt.v == Version{}) {
				t.Fatalf("IsZero() = %v", got)
			}
		})
	}
}

func TestMinCRIUVersionRefusesDebian12(t *testing.T) {
	// Debian 12's criu 3.17.1 fails `criu check` on kernels that map
	// [vvar_vclock]; the gate must refuse it and accept 4.2.1.
	if (Version{3, 17, 1}).AtLeast(MinCRIUVersion) {
		t.Fatalf("MinCRIUVersion %v accepts 3.17.1", MinCRIUVersion)
	}
	if !(Version{4, 2, 1}).AtLeast(MinCRIUVersion) {
		t.Fatalf("MinCRIUVersion %v refuses 4.2.1", MinCRIUVersion)
	}
}

func TestParseVersionOutput(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    Version
		wantErr bool
	}{
		{"release", "Version: 4.2.1\n", Version{4, 2, 1}, false},
		{"two parts", "Version: 3.17\n", Version{3, 17, 0}, false},
		{"git build", "Version: 4.2\nGitID: v4.2-12-gabcdef\n", Version{4, 2, 0}, false},
		{"no version line", "criu: unknown option\n", Version{}, true},
		{"garbage number", "Version: 4.x\n", Version{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVersionOutput(tt.out)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parse %q = %v, %v; want %v, error %v", tt.out, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
