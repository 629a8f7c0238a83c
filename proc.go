package dockercr

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// procStat is what the package reads from /proc/PID/stat.
type procStat struct {
	// State is the one-letter state: R, S, D, T (stopped), t (traced),
	// Z (zombie) and so on.
	State byte
	// PPID is the parent's PID, 0 if the field does not parse.
	PPID int
}

// readProcStat reads /proc/PID/stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces and parentheses; the fields
	// after its last ')' are state, ppid, ...
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) == 0 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	st := procStat{State: f[0][0]}
	if len(f) > 1 {
		st.PPID, _ = strconv.Atoi(string(f[1]))
	}
	return st, nil
}

// procState returns the one-letter state of pid from /proc/PID/stat.
func procState(pid int) (byte, error) {
	st, err := readProcStat(pid)
	return st.State, err
}
