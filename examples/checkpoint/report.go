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
	Container    string `json:"container"`
	ContainerID  string `json:"containerId"`
	Checkpoint   string `json:"checkpoint"`
	Dir          string `json:"dir"`
	ImagesDir    string `json:"imagesDir"`
	LogPath      string `json:"logPath"`
	Backend      string `json:"backend"`
	CRIUVersion  string `json:"criuVersion"`
	FreezingUs   int64  `json:"freezingUs"`
	FrozenUs     int64  `json:"frozenUs"`
	MemdumpUs    int64  `json:"memdumpUs"`
	MemwriteUs   int64  `json:"memwriteUs"`
	PagesScanned uint64 `json:"pagesScanned"`
	PagesWritten uint64 `json:"pagesWritten"`
	CRIURunUs    int64  `json:"criuRunUs"`
	WallUs       int64  `json:"wallUs"`
}

// report prints res as text or, with asJSON, as one JSON object; wall
// is the time of the whole call, CRIU's run included.
func report(w io.Writer, res *dockercr.ContainerCheckpoint,
	wall time.Duration, asJSON bool,
) error {
	st := res.Stats
	if asJSON {
		return json.NewEncoder(w).Encode(result{
			Container:    res.ContainerName,
			ContainerID:  res.ContainerID,
			Checkpoint:   res.Name,
			Dir:          res.Dir,
			ImagesDir:    res.ImagesDir,
			LogPath:      res.LogPath,
			Backend:      res.Backend,
			CRIUVersion:  res.CRIUVersion.String(),
			FreezingUs:   st.FreezingTime.Microseconds(),
			FrozenUs:     st.FrozenTime.Microseconds(),
			MemdumpUs:    st.MemdumpTime.Microseconds(),
			MemwriteUs:   st.MemwriteTime.Microseconds(),
			PagesScanned: st.PagesScanned,
			PagesWritten: st.PagesWritten,
			CRIURunUs:    res.Duration.Microseconds(),
			WallUs:       wall.Microseconds(),
		})
	}

	_, err := fmt.Fprintf(w, `checkpoint %s of container %s (%.12s)
  dir:      %s
  images:   %s
  log:      %s
  backend:  %s, criu %s
  times:    freezing %v, frozen %v, memdump %v, memwrite %v
  pages:    %d scanned, %d written
  took:     %v criu run, %v wall
`, res.Name, res.ContainerName, res.ContainerID, res.Dir, res.ImagesDir,
		res.LogPath, res.Backend, res.CRIUVersion,
		st.FreezingTime, st.FrozenTime, st.MemdumpTime, st.MemwriteTime,
		st.PagesScanned, st.PagesWritten,
		res.Duration.Round(time.Millisecond), wall.Round(time.Millisecond))
	return err
}

// fail prints err and exits 1. For a CRIU failure the lines of
// [dockercr.CRIUError.Detail] follow the summary, so every root-cause
// line of CRIU's log shows.
func fail(err error) {
	msg := err.Error()
	var ce *dockercr.CRIUError
	if errors.As(err, &ce) {
		msg += strings.TrimPrefix(ce.Detail(), ce.Error())
	}
	fmt.Fprintln(os.Stderr, "checkpoint:", msg)
	os.Exit(1)
}
