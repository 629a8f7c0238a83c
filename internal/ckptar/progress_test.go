package ckptar

import (
	"testing"
	"time"
)

func TestMeter(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		want     int // reports for 5 sets and a final
	}{
		{"every step", 0, 6},
		{"throttled", time.Hour, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Progress
			m := newMeter(func(p Progress) { got = append(got, p) }, 50)
			m.interval = tt.interval
			for i := int64(1); i <= 5; i++ {
				m.set("f", i*10)
			}
			m.final(50)
			if len(got) != tt.want {
				t.Fatalf("%d reports %v, want %d", len(got), got, tt.want)
			}
			if last := got[len(got)-1]; last.Done != 50 || last.Total != 50 {
				t.Errorf("final report %+v, want Done = Total = 50", last)
			}
			if got[0].Done != 10 {
				t.Errorf("first report %+v, want the first step at once", got[0])
			}
		})
	}
}
