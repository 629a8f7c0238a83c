package bench

import (
	"bytes"
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
	printSummary(&out, all)
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
	printSummary(&out, series{{opCheckpoint, 256, methodExec}: {
		{total: 90 * time.Millisecond, pair: 100 * time.Millisecond}}})
	want := "  lib-exec / raw-criu, paired    0.90x  (target <= 1.15x: met)\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("summary without the raw benchmark lacks %q:\n%s", want, out.String())
	}

	out.Reset()
	printSummary(&out, nil)
	if out.Len() != 0 {
		t.Errorf("summary of nothing = %q, want empty", out.String())
	}
}
