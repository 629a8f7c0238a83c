// Command inspect shows what a checkpoint holds: the container and
// image it came from, when and with which CRIU and kernel it was made,
// the options of the dump, the process tree with command lines, open
// files and sockets, sizes and CRIU's statistics.
//
// Usage:
//
//	go run ./examples/inspect [-json] DIR-or-ARCHIVE
//
// DIR is a checkpoint directory of dockercr or a bare CRIU images
// directory; anything else is read as a checkpoint archive, without
// unpacking it. The images are validated on the way: a damaged
// checkpoint is refused with an error naming the image, and exit
// status 1. The container's environment is never printed.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker-cr/dockercr"
)

func main() {
	asJSON := flag.Bool("json", false, "print the checkpoint as one JSON object")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: inspect [-json] DIR-or-ARCHIVE\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}

	start := time.Now()
	info, err := inspect(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "inspect:", err)
		os.Exit(1)
	}
	took := time.Since(start)

	if *asJSON {
		err = printJSON(os.Stdout, info)
	} else {
		err = printTable(os.Stdout, flag.Arg(0), info, took)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "inspect:", err)
		os.Exit(1)
	}
}

// inspect reads a directory in place and anything else as an archive.
func inspect(path string) (*dockercr.CheckpointInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return dockercr.InspectCheckpoint(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return dockercr.InspectArchive(f)
}

// printJSON prints info without the container's environment, which
// may hold secrets.
func printJSON(w io.Writer, info *dockercr.CheckpointInfo) error {
	if info.Metadata != nil {
		m := *info.Metadata
		m.Config.Env = nil
		info.Metadata = &m
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(info)
}

func printTable(out io.Writer, path string, info *dockercr.CheckpointInfo, took time.Duration) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(cells ...any) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(w, "\t")
			}
			fmt.Fprint(w, c)
		}
		fmt.Fprintln(w)
	}

	row("checkpoint", path)
	if m := info.Metadata; m != nil {
		row("container", fmt.Sprintf("%s (%s)", m.ContainerName, short(m.ContainerID)))
		row("image", fmt.Sprintf("%s (%s)", m.Image, short(strings.TrimPrefix(m.ImageID, "sha256:"))))
		row("options", options(m.Options))
	}
	row("created", orDash(info.Created.IsZero(), info.Created.Format(time.RFC3339)))
	row("criu", orDash(info.CRIUVersion == "", info.CRIUVersion))
	row("kernel", orDash(info.Kernel == "", info.Kernel))
	row("images", fmt.Sprintf("%s, of which memory pages %s; complete and consistent (checked in %v)",
		size(info.ImagesBytes), size(info.MemoryBytes), took.Round(time.Microsecond)))
	if s := info.Stats; s != nil {
		row("stats", fmt.Sprintf("frozen %v (freezing %v, memdump %v, memwrite %v)",
			s.FrozenTime, s.FreezingTime, s.MemdumpTime, s.MemwriteTime))
		row("pages", fmt.Sprintf("%d scanned, %d written, %d skipped (in parent), %d lazy",
			s.PagesScanned, s.PagesWritten, s.PagesSkippedParent, s.PagesLazy))
	}

	row()
	row("PID", "PPID", "PGID", "SID", "THREADS", "STATE", "COMM", "CMDLINE")
	for _, p := range info.Processes {
		row(p.PID, p.PPID, p.PGID, p.SID, len(p.Threads), p.State, p.Comm, cmdline(p.Cmdline))
	}
	row()
	row("PID", "FD", "TYPE", "PATH")
	for _, f := range info.Files {
		row(f.PID, f.FD, f.Type, f.Path)
	}
	if len(info.Sockets) > 0 {
		row()
		row("PID", "FD", "FAMILY", "TYPE", "PROTO", "STATE", "LOCAL", "REMOTE")
		for _, s := range info.Sockets {
			row(s.PID, s.FD, s.Family, s.Type, orDash(s.Protocol == "", s.Protocol),
				s.State, orDash(s.Local == "", s.Local), orDash(s.Remote == "", s.Remote))
		}
	}
	return w.Flush()
}

// options lists the dump options that are set, by their JSON names.
func options(o dockercr.CheckpointOptions) string {
	var set []string
	v := reflect.ValueOf(o)
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), v.Type().Field(i).Tag.Get("json")
		name, _, _ = strings.Cut(name, ",")
		switch {
		case f.Kind() == reflect.Slice && f.Len() > 0:
			set = append(set, fmt.Sprintf("%s(%d)", name, f.Len()))
		case f.Kind() != reflect.Slice && !f.IsZero():
			if f.Kind() == reflect.Bool {
				set = append(set, name)
			} else {
				set = append(set, fmt.Sprintf("%s=%v", name, f.Interface()))
			}
		}
	}
	return orDash(len(set) == 0, strings.Join(set, " "))
}

// cmdline joins arguments, quoting those a shell would split.
func cmdline(args []string) string {
	if args == nil {
		return "-"
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		unprintable := strings.IndexFunc(a, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0
		if a == "" || unprintable || strings.ContainsAny(a, " \"'\\$&;|<>*?()") {
			q[i] = strconv.Quote(a)
		}
	}
	return strings.Join(q, " ")
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func orDash(empty bool, s string) string {
	if empty {
		return "-"
	}
	return s
}
