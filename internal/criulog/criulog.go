// Package criulog scans CRIU's log for the lines that say why a run
// failed.
//
// CRIU writes one line per event, prefixed with a timestamp and, in
// restore logs, the PID of the task that logged it:
//
//	(00.048606) Error (criu/sk-inet.c:139): inet: Unsupported proto 262
//	(00.381212)   2315: Error (criu/files.c:1234): Can't open file
//
// The first "Error (" lines name the socket, file or mount that blocked
// the run; later ones ("Dumping FAILED.") only repeat that it failed.
package criulog

import (
	"bufio"
	"io"
	"os"
	"strings"
)

// harmless are Error lines CRIU prints on runs that succeed.
var harmless = []string{
	// CRIU 4.x tries to raise its own RLIMIT_NOFILE to the kernel's
	// nr_open and logs an Error when the hard limit forbids it; the
	// run goes on regardless.
	"rlimit: Can't setup RLIMIT_NOFILE for self",
}

// generic are the summary lines CRIU prints after a real cause; they
// are kept only when no other Error line exists.
var generic = []string{
	"Dumping FAILED.",
	"Pre-dumping FAILED.",
	"Restoring FAILED.",
	"Dump files (pid:",
	"Dumping finished with error",
}

// maxLine bounds the length of one kept line.
const maxLine = 512

// RootCauses returns up to max Error messages from r, in log order,
// without the timestamp, PID and source-location prefix. Harmless lines
// are dropped; generic summaries are returned only if nothing else was
// found. A read error ends the scan with what was found so far.
func RootCauses(r io.Reader, max int) []string {
	if max <= 0 {
		return nil
	}
	var causes, summaries []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		msg, ok := errorMessage(sc.Text())
		if !ok || isOneOf(msg, harmless) {
			continue
		}
		if isOneOf(msg, generic) {
			summaries = append(summaries, msg)
			continue
		}
		causes = append(causes, msg)
		if len(causes) == max {
			break
		}
	}
	if len(causes) == 0 {
		causes = summaries
	}
	if len(causes) > max {
		causes = causes[:max]
	}
	return causes
}

// RootCausesFile is [RootCauses] on the file at path; a missing or
// unreadable file yields nil.
func RootCausesFile(path string, max int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	return RootCauses(f, max)
}

// Harmless reports whether line, a whole log line or just its message
// (such as the cr_errmsg of an RPC reply), is an Error CRIU prints on
// runs that succeed.
func Harmless(line string) bool {
	if msg, ok := errorMessage(line); ok {
		line = msg
	}
	return isOneOf(strings.TrimSpace(line), harmless)
}

// errorMessage extracts the message of an "Error (...)" line.
func errorMessage(line string) (string, bool) {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "(") {
		end := strings.IndexByte(line, ')')
		if end < 0 {
			return "", false
		}
		line = strings.TrimSpace(line[end+1:])
	}
	line = trimPIDPrefix(line)
	rest, ok := strings.CutPrefix(line, "Error (")
	if !ok {
		return "", false
	}
	_, msg, ok := strings.Cut(rest, "):")
	if !ok {
		return "", false
	}
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return "", false
	}
	if len(msg) > maxLine {
		msg = msg[:maxLine]
	}
	return msg, true
}

// trimPIDPrefix removes a leading "1234: " written by restore logs.
func trimPIDPrefix(line string) string {
	i := 0
	for i < len(line) && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(line) || line[i] != ':' {
		return line
	}
	return strings.TrimSpace(line[i+1:])
}

func isOneOf(msg string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
