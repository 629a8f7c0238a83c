package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// Timings of the workload and of waiting for its lines.
const (
	// countInterval is how often the workload prints a count line;
	// slower than its default, so that long runs keep short logs.
	countInterval = "500ms"
	// lineTimeout bounds waiting for the ready line (1 GiB must be
	// filled first) and for the answer to SIGUSR1.
	lineTimeout = 2 * time.Minute
	pollEvery   = 200 * time.Millisecond
)

// benchContainer is the one container of a size that every method of
// that size checkpoints and restores.
type benchContainer struct {
	env  *benchEnv
	mib  int
	id   string
	name string
}

func startContainer(ctx context.Context, e *benchEnv, mib int) (*benchContainer, error) {
	name := fmt.Sprintf("%s%s-%dmib", namePrefix, e.run, mib)
	cfg := &container.Config{
		Image: e.image,
		Cmd: []string{workloadPath, "mem", "-mib", strconv.Itoa(mib),
			"-interval", countInterval},
	}
	hc := &container.HostConfig{NetworkMode: "none"}
	resp, err := e.cli.ContainerCreate(ctx, cfg, hc, nil, nil, name)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	c := &benchContainer{env: e, mib: mib, id: resp.ID, name: name}
	if err := e.cli.ContainerStart(ctx, c.id, container.StartOptions{}); err != nil {
		return c, fmt.Errorf("start %s: %w", name, err)
	}
	_, err = c.waitLog(ctx, "ready line", func(l workloadLog) bool { return l.ready > 0 })
	return c, err
}

func (c *benchContainer) remove(ctx context.Context) error {
	err := c.env.cli.ContainerRemove(ctx, c.id, container.RemoveOptions{Force: true})
	if err != nil {
		return fmt.Errorf("remove %s: %w", c.name, err)
	}
	return nil
}

// workloadLog is what the container's log says so far.
type workloadLog struct {
	// ready counts ready lines: one per fresh start, none per restore.
	ready int
	// counted is the number of count lines printed, as seen.
	counted  int
	verifies []verifyLine
	// failure is an error line of the workload, "" if none.
	failure string
}

// verifyLine is one answer to SIGUSR1.
type verifyLine struct {
	ok    bool
	count int
	text  string
}

// parseLog reads the workload's protocol (see internal/testworkload).
func parseLog(text string) workloadLog {
	var l workloadLog
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "ready" && f[1] == "mem":
			l.ready++
		case len(f) == 2 && f[0] == "mem":
			if n, err := strconv.Atoi(f[1]); err == nil {
				l.counted = max(l.counted, n+1)
			}
		case len(f) >= 4 && f[0] == "verify":
			v := verifyLine{ok: f[1] == "ok", count: -1, text: line}
			if s, ok := strings.CutPrefix(f[3], "count="); ok {
				v.count, _ = strconv.Atoi(s)
			}
			l.verifies = append(l.verifies, v)
		case len(f) >= 1 && f[0] == "error":
			l.failure = line
		}
	}
	return l
}

func (c *benchContainer) log(ctx context.Context) (workloadLog, error) {
	rc, err := c.env.cli.ContainerLogs(ctx, c.id,
		container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return workloadLog{}, fmt.Errorf("logs of %s: %w", c.name, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return workloadLog{}, fmt.Errorf("logs of %s: %w", c.name, err)
	}
	return parseLog(out.String()), nil
}

// logCondition says whether a log shows what is waited for.
type logCondition func(workloadLog) bool

// waitLog polls the log until done holds, the workload reports an
// error, or lineTimeout passes.
func (c *benchContainer) waitLog(ctx context.Context, what string,
	done logCondition) (workloadLog, error) {
	ctx, cancel := context.WithTimeout(ctx, lineTimeout)
	defer cancel()
	for {
		l, err := c.log(ctx)
		if err != nil {
			return l, err
		}
		if l.failure != "" {
			return l, fmt.Errorf("%s: workload failed: %s", c.name, l.failure)
		}
		if done(l) {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return l, fmt.Errorf("%s: no %s after %v", c.name, what, lineTimeout)
		case <-time.After(pollEvery):
		}
	}
}

// verifyRestored proves that the running container was restored, not
// started afresh, and that its memory is intact: no ready line beyond
// the ready lines of before the dump, a count that goes on from at least
// the lines printed before it, and "verify ok" for SIGUSR1, which checks
// every byte of the pattern.
func (c *benchContainer) verifyRestored(ctx context.Context, atDump workloadLog) error {
	before, err := c.log(ctx)
	if err != nil {
		return err
	}
	if err := c.env.cli.ContainerKill(ctx, c.id, "USR1"); err != nil {
		return fmt.Errorf("signal %s: %w", c.name, err)
	}
	l, err := c.waitLog(ctx, "verify line", func(l workloadLog) bool {
		return len(l.verifies) > len(before.verifies)
	})
	if err != nil {
		return err
	}

	v := l.verifies[len(before.verifies)]
	switch {
	case !v.ok:
		return fmt.Errorf("%s: memory pattern broken after restore: %s", c.name, v.text)
	case l.ready != atDump.ready:
		return fmt.Errorf("%s: a new ready line: the workload started afresh, it was not restored",
			c.name)
	case v.count < atDump.counted:
		return fmt.Errorf("%s: count %d after restore, below the %d printed before the dump",
			c.name, v.count, atDump.counted)
	}
	return nil
}

// ensureRunning starts the container afresh if an earlier method left
// it stopped (a failed restore), so that each method measures on its
// own.
func (c *benchContainer) ensureRunning(ctx context.Context) error {
	if done, err := c.env.stopped(ctx, c.id); err != nil || !done {
		return err
	}
	before, err := c.log(ctx)
	if err != nil {
		return err
	}
	if err := c.env.cli.ContainerStart(ctx, c.id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start %s again: %w", c.name, err)
	}
	_, err = c.waitLog(ctx, "ready line", func(l workloadLog) bool {
		return l.ready > before.ready
	})
	return err
}
