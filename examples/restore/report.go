package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/docker-cr/dockercr"
)

// result is the -json output. Durations are in microseconds, the unit
// CRIU measures in.
type result struct {
	Container     string `json:"container"`
	ContainerID   string `json:"containerId"`
	Clone         bool   `json:"clone"`
	PID           int    `json:"pid"`
	Dir           string `json:"dir"`
	LogPath       string `json:"logPath"`
	ForkingUs     int64  `json:"forkingUs"`
	RestoreUs     int64  `json:"restoreUs"`
	PagesRestored uint64 `json:"pagesRestored"`
	DockerStartUs int64  `json:"dockerStartUs"`
	LockWaitUs    int64  `json:"lockWaitUs"`
	WallUs        int64  `json:"wallUs"`
}

// report prints res as text or, with asJSON, as one JSON object; wall
// is the time of the whole call, Docker's start included.
func report(w io.Writer, res *dockercr.ContainerRestore, clone bool,
	wall time.Duration, asJSON bool,
) error {
	st := res.Stats
	if asJSON {
		return json.NewEncoder(w).Encode(result{
			Container:     res.ContainerName,
			ContainerID:   res.ContainerID,
			Clone:         clone,
			PID:           res.PID,
			Dir:           res.Dir,
			LogPath:       res.LogPath,
			ForkingUs:     st.ForkingTime.Microseconds(),
			RestoreUs:     st.RestoreTime.Microseconds(),
			PagesRestored: st.PagesRestored,
			DockerStartUs: res.Duration.Microseconds(),
			LockWaitUs:    res.LockWait.Microseconds(),
			WallUs:        wall.Microseconds(),
		})
	}

	how := "in place"
	if clone {
		how = "as a new container"
	}
	_, err := fmt.Fprintf(w, `restored container %s (%.12s) %s, init pid %d
  from:     %s
  log:      %s
  times:    forking %v, restore %v
  pages:    %d restored
  took:     %v docker start, %v waiting for other restores, %v wall
`, res.ContainerName, res.ContainerID, how, res.PID, res.Dir, res.LogPath,
		st.ForkingTime, st.RestoreTime, st.PagesRestored,
		res.Duration.Round(time.Millisecond), res.LockWait.Round(time.Millisecond),
		wall.Round(time.Millisecond))
	return err
}

// fail prints err and exits 1. For a CRIU failure the lines of
// [dockercr.CRIUError.Detail] follow the summary, so the root-cause
// lines of CRIU's restore log show.
func fail(err error) {
	msg := err.Error()
	var ce *dockercr.CRIUError
	if errors.As(err, &ce) {
		msg += strings.TrimPrefix(ce.Detail(), ce.Error())
	}
	fmt.Fprintln(os.Stderr, "restore:", msg)
	os.Exit(1)
}
