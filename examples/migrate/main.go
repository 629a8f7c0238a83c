// Command migrate moves a running Docker container into a new container
// through one archive file, the way it would travel to another host:
// checkpoint, export, import into a separate checkpoint store, and
// restore as a new container. It prints the time of each step.
//
// Usage:
//
//	go run ./examples/migrate [flags] CONTAINER NEWNAME
//
// The import goes to -to (a checkpoint base of its own), so the restore
// reads only what travelled in the archive: the images, the metadata
// and the container's writable layer. With -remove-original the source
// container and its checkpoint are removed before the import, as if the
// archive had been carried to another host. On failure it prints the
// library's error, with CRIU's root-cause lines, and exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker-cr/dockercr"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func main() {
	name := flag.String("name", "migrate1", "checkpoint `name`")
	from := flag.String("from", dockercr.DefaultCheckpointBase, "checkpoint base `directory` of the source")
	to := flag.String("to", "/tmp/docker-checkpoints-imported", "checkpoint base `directory` the archive is imported into")
	archive := flag.String("archive", "", "archive `file` (default: a temporary file, removed at the end)")
	comp := flag.String("compression", "zstd", "archive compression: zstd, gzip or none")
	leave := flag.Bool("leave-running", false, "keep the source container running")
	tcp := flag.Bool("tcp-established", false, "dump established TCP connections")
	removeOrig := flag.Bool("remove-original", false, "remove the source container and its checkpoint before the import")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: migrate [flags] CONTAINER NEWNAME")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var opts []dockercr.Option
	if *leave {
		opts = append(opts, dockercr.WithLeaveRunning())
	}
	if *tcp {
		opts = append(opts, dockercr.WithTCPEstablished())
	}
	m := migration{container: flag.Arg(0), newName: flag.Arg(1), name: *name,
		from: *from, to: *to, archive: *archive,
		compression: dockercr.Compression(*comp), removeOriginal: *removeOrig}
	if err := m.run(ctx, opts); err != nil {
		fail(err)
	}
}

type migration struct {
	container, newName, name string
	from, to, archive        string
	compression              dockercr.Compression
	removeOriginal           bool
}

func (m *migration) run(ctx context.Context, opts []dockercr.Option) error {
	cp, err := dockercr.New(opts...)
	if err != nil {
		return err
	}
	src, err := dockercr.NewDocker(cp, dockercr.WithCheckpointBase(m.from))
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := dockercr.NewDocker(cp, dockercr.WithCheckpointBase(m.to))
	if err != nil {
		return err
	}
	defer dst.Close()

	if m.archive == "" {
		f, err := os.CreateTemp("", "dockercr-migrate-*.tar.zst")
		if err != nil {
			return err
		}
		f.Close()
		m.archive = f.Name()
		defer os.Remove(m.archive)
	}

	cc, err := step("checkpoint", func() (string, error) {
		cc, err := src.Checkpoint(ctx, m.container, m.name)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s, frozen %v", cc.Dir, cc.Frozen.Round(time.Millisecond)), nil
	})
	if err != nil {
		return err
	}
	_ = cc
	if _, err := step("export", func() (string, error) { return m.export(ctx, src) }); err != nil {
		return err
	}
	if m.removeOriginal {
		if _, err := step("remove original", func() (string, error) { return m.removeSource(ctx, src) }); err != nil {
			return err
		}
	}
	if _, err := step("import", func() (string, error) {
		f, err := os.Open(m.archive)
		if err != nil {
			return "", err
		}
		defer f.Close()
		sc, err := dst.Import(ctx, f)
		if err != nil {
			return "", err
		}
		return sc.Dir, nil
	}); err != nil {
		return err
	}
	_, err = step("restore", func() (string, error) {
		r, err := dst.RestoreAs(ctx, m.container, m.name, m.newName)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("container %s (%.12s), init pid %d", r.ContainerName, r.ContainerID, r.PID), nil
	})
	return err
}

// export writes the archive with a progress bar on stderr.
func (m *migration) export(ctx context.Context, d *dockercr.Docker) (string, error) {
	f, err := os.OpenFile(m.archive, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	// A progress bar only where someone watches it. The bar is made
	// once: an unbounded one starts drawing a spinner as soon as it
	// exists.
	var bar *progressbar.ProgressBar
	if term.IsTerminal(int(os.Stderr.Fd())) {
		bar = progressbar.DefaultBytes(-1, "export")
	} else {
		bar = progressbar.DefaultBytesSilent(-1, "export")
	}
	sum, err := d.Export(ctx, m.container, m.name, f,
		dockercr.WithCompression(m.compression),
		dockercr.WithProgress(func(p dockercr.Progress) {
			bar.ChangeMax64(p.Total)
			_ = bar.Set64(p.Done)
		}))
	_ = bar.Finish()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: %d files, %s -> %s (%s)", m.archive, sum.Files,
		mib(sum.Bytes), mib(sum.Compressed), sum.Compression), nil
}

// removeSource removes the source container and its checkpoint, so the
// restore can only use what the archive carried.
func (m *migration) removeSource(ctx context.Context, d *dockercr.Docker) (string, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return "", err
	}
	defer cli.Close()
	if err := cli.ContainerRemove(ctx, m.container, container.RemoveOptions{Force: true}); err != nil {
		return "", err
	}
	if err := d.RemoveCheckpoint(m.container, m.name); err != nil {
		return "", err
	}
	return "container " + m.container + " and " + filepath.Join(m.from, m.container, m.name), nil
}

// step runs fn and prints its name, duration and what it returned.
func step(name string, fn func() (string, error)) (string, error) {
	start := time.Now()
	out, err := fn()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		fmt.Printf("%-16s failed after %v\n", name, took)
		return "", err
	}
	fmt.Printf("%-16s %8v  %s\n", name, took, out)
	return out, nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// fail prints err and exits 1. For a CRIU failure the lines of
// [dockercr.CRIUError.Detail] follow the summary, which they would
// otherwise repeat.
func fail(err error) {
	msg := err.Error()
	var ce *dockercr.CRIUError
	if errors.As(err, &ce) {
		msg += strings.TrimPrefix(ce.Detail(), ce.Error())
	}
	fmt.Fprintln(os.Stderr, "migrate:", msg)
	os.Exit(1)
}
