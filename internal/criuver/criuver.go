// Package criuver parses the version text printed by `criu --version`.
package criuver

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Parsed is a version read from CRIU's output.
type Parsed struct {
	Major, Minor, Patch int
	// GitID is the "GitID:" line of a build from a git tree, if any.
	GitID string
}

// ErrNoVersion means the text holds no "Version:" line.
var ErrNoVersion = errors.New("no \"Version:\" line in criu output")

// maxComponent bounds each number, so hostile text cannot overflow.
const maxComponent = 1 << 20

// Parse reads text such as
//
//	Version: 4.2.1
//	GitID: v4.2-12-gabcdef
//
// Releases print two or three components ("3.17", "4.2.1").
func Parse(text string) (Parsed, error) {
	var p Parsed
	found := false
	for _, line := range strings.Split(text, "\n") {
		key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Version":
			if found {
				continue
			}
			v, err := parseNumbers(val)
			if err != nil {
				return Parsed{}, err
			}
			p.Major, p.Minor, p.Patch = v[0], v[1], v[2]
			found = true
		case "GitID":
			p.GitID = val
		}
	}
	if !found {
		return Parsed{}, ErrNoVersion
	}
	return p, nil
}

func parseNumbers(s string) ([3]int, error) {
	var out [3]int
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return out, fmt.Errorf("empty criu version")
	}
	parts := strings.Split(fields[0], ".")
	if len(parts) < 2 || len(parts) > 3 {
		return out, fmt.Errorf("criu version %q: want MAJOR.MINOR[.PATCH]", s)
	}
	for i, part := range parts {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 || n > maxComponent {
			return out, fmt.Errorf("criu version %q: bad number %q", s, part)
		}
		out[i] = n
	}
	return out, nil
}
