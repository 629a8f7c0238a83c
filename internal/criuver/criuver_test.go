package criuver

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Parsed
		wantErr bool
	}{
		{name: "release three parts", in: "Version: 4.2.1\n",
			want: Parsed{Major: 4, Minor: 2, Patch: 1}},
		{name: "release two parts", in: "Version: 3.17\n",
			want: Parsed{Major: 3, Minor: 17}},
		{name: "git build", in: "Version: 4.1\nGitID: v4.1-3-g0123abc\n",
			want: Parsed{Major: 4, Minor: 1, GitID: "v4.1-3-g0123abc"}},
		{name: "leading noise", in: "Warn: x\nVersion: 4.0\n",
			want: Parsed{Major: 4}},
		{name: "first version line wins", in: "Version: 4.2\nVersion: 9.9\n",
			want: Parsed{Major: 4, Minor: 2}},
		{name: "empty", in: "", wantErr: true},
		{name: "no numbers", in: "Version: abc\n", wantErr: true},
		{name: "one part", in: "Version: 4\n", wantErr: true},
		{name: "four parts", in: "Version: 4.2.1.7\n", wantErr: true},
		{name: "negative", in: "Version: 4.-2\n", wantErr: true},
		{name: "huge", in: "Version: 99999999999999999999.1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseNoVersionSentinel(t *testing.T) {
	_, err := Parse("criu: unknown option\n")
	if !errors.Is(err, ErrNoVersion) {
		t.Fatalf("err = %v, want ErrNoVersion", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"Version: 4.2.1\n", "Version: 3.17\nGitID: x\n", "", "Version: 1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		if p.Major < 0 || p.Minor < 0 || p.Patch < 0 {
			t.Fatalf("negative component from %q: %+v", s, p)
		}
	})
}
