package dockercr

import (
	"os"
	"testing"
)

func TestReadProcStat(t *testing.T) {
	st, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The reading thread runs; another may sleep.
	if st.State != 'R' && st.State != 'S' {
		t.Errorf("state of this process = %q, want R or S", st.State)
	}
	if st.PPID != os.Getppid() {
		t.Errorf("ppid = %d, want %d", st.PPID, os.Getppid())
	}
	if _, err := readProcStat(-1); err == nil {
		t.Error("readProcStat(-1): no error")
	}
}
