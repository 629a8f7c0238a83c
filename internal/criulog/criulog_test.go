package criulog

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRootCauses(t *testing.T) {
	tests := []struct {
		name string
		log  string
		max  int
		want []string
	}{
		{
			name: "harmless rlimit line is skipped",
			log: "(00.038747) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n" +
				"(00.048122) Error (criu/sk-inet.c:137): inet: Unsupported proto 262 for socket 2563\n",
			max:  4,
			want: []string{"inet: Unsupported proto 262 for socket 2563"},
		},
		{
			name: "generic summaries follow real causes and are dropped",
			log: "(00.1) Error (criu/mount.c:1): mnt: ./etc/hosts doesn't have a proper root mount\n" +
				"(00.2) Error (criu/cr-dump.c:1975): Dumping FAILED.\n",
			max:  4,
			want: []string{"mnt: ./etc/hosts doesn't have a proper root mount"},
		},
		{
			name: "generic summary kept when alone",
			log:  "(00.2) Error (criu/cr-dump.c:1975): Dumping FAILED.\n",
			max:  4,
			want: []string{"Dumping FAILED."},
		},
		{
			name: "restore line with pid prefix",
			log:  "(00.381212)   2315: Error (criu/cr-restore.c:1480): Can't fork for 37: File exists\n",
			max:  4,
			want: []string{"Can't fork for 37: File exists"},
		},
		{
			name: "warnings and info are ignored",
			log:  "(00.1) Warn  (criu/kerndat.c:1290): Can't keep kdat cache\n(00.2) pie: 1: Error: not a criu error line\n",
			max:  4,
			want: nil,
		},
		{
			name: "limit is honoured",
			log:  "(0) Error (a.c:1): one\n(0) Error (a.c:2): two\n(0) Error (a.c:3): three\n",
			max:  2,
			want: []string{"one", "two"},
		},
		{
			name: "line without timestamp",
			log:  "Error (criu/crtools.c:1): unknown option\n",
			max:  1,
			want: []string{"unknown option"},
		},
		{name: "zero max", log: "(0) Error (a.c:1): one\n", max: 0, want: nil},
		{name: "empty", log: "", max: 3, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RootCauses(strings.NewReader(tt.log), tt.max)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("RootCauses() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRootCausesRecordedMPTCP reads a dump.log recorded on this project's
// test machine (CRIU 4.2.1, kernel 6.18): a Go program with an MPTCP
// socket, dumped without GODEBUG=multipathtcp=0.
func TestRootCausesRecordedMPTCP(t *testing.T) {
	got := RootCausesFile("testdata/dump-mptcp.log", 3)
	want := []string{
		"inet: Unsupported proto 262 for socket 2563",
		`inet: For Go programs, consider using "GODEBUG=multipathtcp=0" to disable MPTCP`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("RootCausesFile() = %q, want %q", got, want)
	}
}

func TestRootCausesFileMissing(t *testing.T) {
	if got := RootCausesFile(t.TempDir()+"/none.log", 3); got != nil {
		t.Fatalf("missing file gave %q", got)
	}
}

func FuzzRootCauses(f *testing.F) {
	seed, err := os.ReadFile("testdata/dump-mptcp.log")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(seed), 3)
	f.Add("(00.1)  12: Error (x.c:1): boom\n", 1)
	f.Add("Error (", 5)
	f.Add("(((((", 2)
	f.Fuzz(func(t *testing.T, log string, max int) {
		if max > 64 {
			max = 64
		}
		got := RootCauses(strings.NewReader(log), max)
		if max <= 0 && got != nil {
			t.Fatalf("max %d returned %d lines", max, len(got))
		}
		if max > 0 && len(got) > max {
			t.Fatalf("returned %d lines, max %d", len(got), max)
		}
		for _, line := range got {
			if line == "" || len(line) > maxLine || strings.ContainsRune(line, '\n') {
				t.Fatalf("bad line %q", line)
			}
			if utf8.ValidString(log) && !utf8.ValidString(line) {
				t.Fatalf("invalid UTF-8 from valid input: %q", line)
			}
		}
	})
}

func TestHarmless(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted", true},
		{"(00.03) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: x", true},
		{"rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted", true},
		{"Error (criu/sk-inet.c:137): inet: Unsupported proto 262", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := Harmless(tt.line); got != tt.want {
			t.Errorf("Harmless(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}
