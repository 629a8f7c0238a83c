package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []time.Duration
		want time.Duration
	}{
		{"none", nil, 0},
		{"one", []time.Duration{7}, 7},
		{"odd unsorted", []time.Duration{9, 1, 5}, 5},
		{"even takes the middle mean", []time.Duration{4, 1, 3, 2}, 2},
		{"outlier ignored", []time.Duration{1, 2, 1000}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseLog(t *testing.T) {
	tests := []struct {
		name        string
		text        string
		ready, seen int
		verifies    []verifyLine
		failure     string
	}{
		{
			name:  "fresh start",
			text:  "ready mem pid=1 mib=256 seed=1\nmem 0\nmem 1\n",
			ready: 1, seen: 2,
		},
		{
			name: "restored and verified",
			text: "ready mem pid=1 mib=256 seed=1\nmem 0\nmem 1\nmem 2\n" +
				"verify ok mem count=3 mib=256 seed=1\nmem 3\n",
			ready: 1, seen: 4,
			verifies: []verifyLine{{ok: true, count: 3,
				text: "verify ok mem count=3 mib=256 seed=1"}},
		},
		{
			name:  "broken pattern",
			text:  "ready mem pid=1\nverify FAIL mem count=0 offset 4096\n",
			ready: 1,
			verifies: []verifyLine{{ok: false, count: 0,
				text: "verify FAIL mem count=0 offset 4096"}},
		},
		{
			name:    "workload error",
			text:    "error -mib must be > 0, got 0\n",
			failure: "error -mib must be > 0, got 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := parseLog(tt.text)
			if l.ready != tt.ready || l.counted != tt.seen || l.failure != tt.failure {
				t.Errorf("parseLog = ready %d counted %d failure %q, want %d %d %q",
					l.ready, l.counted, l.failure, tt.ready, tt.seen, tt.failure)
			}
			if len(l.verifies) != len(tt.verifies) {
				t.Fatalf("verifies = %+v, want %+v", l.verifies, tt.verifies)
			}
			for i, v := range l.verifies {
				if v != tt.verifies[i] {
					t.Errorf("verify %d = %+v, want %+v", i, v, tt.verifies[i])
				}
			}
		})
	}
}

func TestSummary(t *testing.T) {
	all := series{
		{opCheckpoint, 256, methodRPC}: {
			{total: 110 * time.Millisecond, inner: 100 * time.Millisecond,
				pair: 100 * time.Millisecond},
			{total: 130 * time.Millisecond, inner: 100 * time.Millisecond,
				pair: 100 * time.Millisecond},
			{total: 120 * time.Millisecond, inner: 100 * time.Millisecond,
				pair: 80 * time.Millisecond},
		},
		{opCheckpoint, 256, methodRaw}:    {{total: 100 * time.Millisecond}},
		{opCheckpoint, 256, methodDocker}: {{total: 3 * time.Second}},
	}
	var out bytes.Buffer
	printSummary(&out, report{samples: all})
	for _, want := range []string{
		"checkpoint, 256 MiB workload:",
		"(criu run 0.100s, rest 0.020s)",
		"  lib-rpc / raw-criu             1.20x  (target <= 1.15x: MISSED)\n",
		"  lib-rpc / raw-criu, paired     1.30x  (target <= 1.15x: MISSED)\n",
		"  docker / lib-rpc              25.00x  (target > 20x: met)\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "lib-exec /") {
		t.Errorf("summary shows a ratio of an unmeasured method:\n%s", out.String())
	}

	out.Reset()
	printSummary(&out, report{samples: series{{opCheckpoint, 256, methodExec}: {
		{total: 90 * time.Millisecond, pair: 100 * time.Millisecond}}}})
	want := "  lib-exec / raw-criu, paired    0.90x  (target <= 1.15x: met)\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("summary without the raw benchmark lacks %q:\n%s", want, out.String())
	}

	out.Reset()
	printSummary(&out, report{})
	if out.Len() != 0 {
		t.Errorf("summary of nothing = %q, want empty", out.String())
	}
}

func TestArchiveSummary(t *testing.T) {
	const mib = 1 << 20
	all := series{
		{opArchive, 256, methodExportZstd}: {{total: 2 * time.Second}},
		{opArchive, 256, methodExportNone}: {{total: 1 * time.Second}, {total: 3 * time.Second},
			{total: 1 * time.Second}},
		{opArchive, 256, methodTarC}:       {{total: 500 * time.Millisecond}},
		{opArchive, 256, methodTarX}:       {{total: 400 * time.Millisecond}},
		{opArchive, 256, methodImportZstd}: {{total: 1200 * time.Millisecond}},
	}
	sizes := map[key]int64{
		{opArchive, 256, sizeDir}:          300 * mib,
		{opArchive, 256, methodExportNone}: 301 * mib,
		{opArchive, 256, methodExportZstd}: 43 * mib,
	}
	var out bytes.Buffer
	printSummary(&out, report{samples: all, bytes: sizes})
	for _, want := range []string{
		"archive, 256 MiB workload:\n",
		"  checkpoint directory 300.0 MiB; archive none 301.0 MiB, zstd 43.0 MiB" +
			" (compression 7.00x)\n",
		// MiB/s are of the directory, not of the workload's 256 MiB.
		"  export-zstd     2.000s  n=1     150.0 MiB/s\n",
		"  export-none     1.000s  n=3     300.0 MiB/s\n",
		"  tar-c           0.500s  n=1     600.0 MiB/s\n",
		"  export-zstd / tar-c            4.00x\n",
		"  export-none / tar-c            2.00x\n",
		"  import-zstd / tar-x            3.00x\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	_, body, _ := strings.Cut(out.String(), "archive, 256 MiB")
	for _, unwanted := range []string{"import-none /", "tar-x-sync", "paired"} {
		if strings.Contains(body, unwanted) {
			t.Errorf("summary shows %q, which was not measured:\n%s", unwanted, out.String())
		}
	}
}

func TestDirBytes(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{"a": 3, "sub/b": 5, "sub/deeper/c": 0}
	for name, n := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A link counts as nothing, whatever it points at.
	if err := os.Symlink("a", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want int64
	}{
		{"whole tree", dir, 8},
		{"subtree", filepath.Join(dir, "sub"), 5},
		{"empty file only", filepath.Join(dir, "sub", "deeper"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dirBytes(tt.dir)
			if err != nil || got != tt.want {
				t.Errorf("dirBytes = %d, %v; want %d", got, err, tt.want)
			}
			if err := checkDirBytes(tt.dir, tt.want+1); err == nil {
				t.Errorf("checkDirBytes accepted %d bytes for %d", tt.want+1, got)
			}
		})
	}
	if _, err := dirBytes(filepath.Join(dir, "missing")); err == nil {
		t.Error("dirBytes of a missing directory: no error")
	}
}

func TestRemoveNewCtrdCopies(t *testing.T) {
	// A folder of its own stands for /tmp, whose real copies may be in
	// use by a restore running in another test package.
	tmp := t.TempDir()
	glob := filepath.Join(tmp, "ctrd-checkpoint*")
	old := filepath.Join(tmp, "ctrd-checkpoint-old")
	other := filepath.Join(tmp, "other")
	for _, d := range []string{old, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	before, err := ctrdCopies(glob)
	if err != nil || len(before) != 1 || !before[old] {
		t.Fatalf("ctrdCopies = %v, %v; want only %s", before, err, old)
	}
	made := filepath.Join(tmp, "ctrd-checkpoint-new")
	if err := os.Mkdir(made, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(made, "pages-1.img"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := removeNewCtrdCopies(glob, before); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(made); !os.IsNotExist(err) {
		t.Errorf("new copy %s still there: %v", made, err)
	}
	for _, d := range []string{old, other} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s, not new or not a copy, was touched: %v", d, err)
		}
	}
}
