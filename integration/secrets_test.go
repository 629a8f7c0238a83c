package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docker-cr/dockercr"
)

// TestSecretsFileModes walks everything the library wrote for a
// container checkpoint, with its writable layer and a named volume
// captured: after the checkpoint, after a restore in place, and after
// the checkpoint was exported and imported into another base. Every
// directory must be 0700 and every file 0600, the bases included.
func TestSecretsFileModes(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	c := f.tRun(t, dockerVolumeSpec(t, f))
	c.tWaitCount(t, 3)
	d := tSecretsDocker(t, f, f.base, tNew(t, nil), dockercr.WithVolumeCapture())

	res, err := d.Checkpoint(f.ctx, c.Name, "cp")
	if err != nil {
		t.Fatal(err)
	}
	tSecretsHas(t, res.Dir, dockercr.MetadataName, dockercr.RootfsDiffName, dockercr.DeletedFilesName,
		dockercr.DumpLogName, "images/descriptors.json", "images/inventory.img", "volumes/*.tar")
	tModes(t, f.base)

	c.tWaitStopped(t)
	last := c.tLastCount(t)
	if _, err := d.Restore(f.ctx, c.Name, "cp"); err != nil {
		t.Fatal(err)
	}
	tDockerRuncConfUnchanged(t)
	c.tResumed(t, last)
	c.tVerify(t)
	tSecretsHas(t, res.Dir, dockercr.RestoreLogName, "stats-restore")
	tModes(t, f.base)

	var archive bytes.Buffer
	if _, err := d.Export(f.ctx, c.Name, "cp", &archive); err != nil {
		t.Fatal(err)
	}
	base2 := filepath.Join(t.TempDir(), "imported")
	d2 := tSecretsDocker(t, f, base2, tNew(t, nil))
	st, err := d2.Import(f.ctx, &archive)
	if err != nil {
		t.Fatal(err)
	}
	tSecretsHas(t, st.Dir, dockercr.MetadataName, dockercr.RootfsDiffName,
		"images/inventory.img", "volumes/*.tar")
	tModes(t, base2)
}

// TestSecretsNotPrinted gives a container a random SECRET_TOKEN and
// runs, with a debug logger writing to a buffer, a checkpoint that
// fails (an established TCP connection without WithTCPEstablished), one
// that succeeds, and a restore that fails (the metadata altered to drop
// tcp-established). The value must appear in no log line, in no
// returned error's Error() or Detail(), in CRIU's logs, nor in what
// examples/inspect prints of the checkpoint and of its archive. It is in
// checkpoint.json, which a clone needs, and that file is 0600.
func TestSecretsNotPrinted(t *testing.T) {
	tDockerRequire(t)
	t.Parallel()
	f := tDockerFixture(t)
	secret := tSecretsRandom(t)
	c := f.tRun(t, dockerSpec{Args: []string{"tcp", "-interval", "50ms"},
		Env: []string{"GODEBUG=multipathtcp=0", "SECRET_TOKEN=" + secret}})
	c.tWaitCount(t, 3)
	var logs secretsBuffer
	logger := dockercr.WithLogger(slog.New(slog.NewTextHandler(&logs,
		&slog.HandlerOptions{Level: slog.LevelDebug})))
	plain := tSecretsDocker(t, f, f.base, tNew(t, nil, logger))
	tcp := tSecretsDocker(t, f, f.base, tNew(t, nil, logger, dockercr.WithTCPEstablished(),
		dockercr.WithLeaveRunning()))

	_, err := plain.Checkpoint(f.ctx, c.Name, "bad")
	tCausesMention(t, tCRIUError(t, err), "TCP")
	tSecretsNotIn(t, secret, "failed checkpoint", err)
	c.tRunningThawed(t)

	res, err := tcp.Checkpoint(f.ctx, c.Name, "cp")
	if err != nil {
		t.Fatal(err)
	}
	tSecretsInMetadataOnly(t, res.Dir, secret)
	tSecretsDropTCP(t, res.Dir)
	clone := tDockerName(t, f.cli, "clone")
	_, err = plain.RestoreAs(f.ctx, c.Name, "cp", clone)
	tCRIUError(t, err)
	tSecretsNotIn(t, secret, "failed restore", err)
	tDockerRuncConfUnchanged(t)
	f.tNoContainer(t, clone)

	if !strings.Contains(logs.String(), "container checkpoint") {
		t.Fatalf("the debug logger recorded no checkpoint:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the debug log holds the secret:\n%s", logs.String())
	}
	for _, log := range []string{
		filepath.Join(filepath.Dir(res.Dir), ".bad.failed", dockercr.DumpLogName),
		filepath.Join(res.Dir, dockercr.DumpLogName),
		filepath.Join(res.Dir, dockercr.RestoreLogName),
	} {
		tSecretsFileLacks(t, log, secret)
	}
	tModes(t, f.base)
	tSecretsInspect(t, tcp, c.Name, res.Dir, secret)
	c.tRunningThawed(t)
}

// secretsBuffer is a bytes.Buffer a logger may write to from several
// goroutines.
type secretsBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *secretsBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *secretsBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tSecretsDocker returns a Docker on cp, the fixture's client and base,
// with opts.
func tSecretsDocker(t *testing.T, f *dockerFixture, base string, cp *dockercr.Checkpointer,
	opts ...dockercr.DockerOption) *dockercr.Docker {
	t.Helper()
	opts = append([]dockercr.DockerOption{dockercr.WithDockerClient(f.cli),
		dockercr.WithCheckpointBase(base)}, opts...)
	d, err := dockercr.NewDocker(cp, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// tSecretsHas fails unless dir holds a file matching each pattern: the
// mode walk that follows must have these to look at.
func tSecretsHas(t *testing.T, dir string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if m, _ := filepath.Glob(filepath.Join(dir, p)); len(m) == 0 {
			t.Errorf("%s holds no %s", dir, p)
		}
	}
}

func tSecretsRandom(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "dcr-secret-" + hex.EncodeToString(b)
}

// tSecretsNotIn fails if the secret is in the text of err or of any
// error it wraps, or in the Detail of a CRIUError among them.
func tSecretsNotIn(t *testing.T, secret, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	for _, e := range secretsChain(err) {
		texts := []string{e.Error(), fmt.Sprintf("%+v", e)}
		var ce *dockercr.CRIUError
		if errors.As(e, &ce) {
			texts = append(texts, ce.Detail())
		}
		for _, s := range texts {
			if strings.Contains(s, secret) {
				t.Errorf("%s: the error (%T) shows the secret: %s", what, e, s)
				return
			}
		}
	}
}

// secretsChain lists err and every error it wraps, through Join too.
func secretsChain(err error) []error {
	out := []error{err}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if next := u.Unwrap(); next != nil {
			out = append(out, secretsChain(next)...)
		}
	case interface{ Unwrap() []error }:
		for _, next := range u.Unwrap() {
			out = append(out, secretsChain(next)...)
		}
	}
	return out
}

// tSecretsInMetadataOnly checks that checkpoint.json carries the
// secret, as it must to recreate the container, and is 0600.
func tSecretsInMetadataOnly(t *testing.T, dir, secret string) {
	t.Helper()
	path := filepath.Join(dir, dockercr.MetadataName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("SECRET_TOKEN="+secret)) {
		t.Fatalf("%s lacks the container's SECRET_TOKEN; a clone would lose it", path)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600: it holds the environment", path, st.Mode().Perm())
	}
}

// tSecretsDropTCP rewrites the checkpoint's metadata without
// tcp-established, so that a restore of its connection fails in CRIU.
func tSecretsDropTCP(t *testing.T, dir string) {
	t.Helper()
	meta, err := dockercr.ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !meta.Options.TCPEstablished {
		t.Fatalf("metadata options %+v: the dump had tcp-established", meta.Options)
	}
	meta.Options.TCPEstablished = false
	b, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, dockercr.MetadataName), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func tSecretsFileLacks(t *testing.T, path, secret string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(secret)) {
		t.Errorf("%s holds the secret", path)
	}
}

// tSecretsInspect runs examples/inspect, as text and as JSON, on the
// checkpoint directory and on an archive of it: each must show the
// container and never the secret.
func tSecretsInspect(t *testing.T, d *dockercr.Docker, container, dir, secret string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "inspect")
	build := exec.Command("go", "build", "-o", bin, "github.com/docker-cr/dockercr/examples/inspect")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build examples/inspect: %v\n%s", err, out)
	}
	archive := filepath.Join(t.TempDir(), "cp.tar.zst")
	out, err := os.OpenFile(archive, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Export(tContext(t), container, filepath.Base(dir), out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	for _, target := range []string{dir, archive} {
		for _, args := range [][]string{{target}, {"-json", target}} {
			cmd := exec.Command(bin, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("inspect %q: %v\n%s", args, err, stderr.String())
			}
			got := stdout.String() + stderr.String()
			if !strings.Contains(got, container) || !strings.Contains(got, "testworkload") {
				t.Errorf("inspect %q shows neither container %s nor its command:\n%s", args, container, got)
			}
			if strings.Contains(got, secret) {
				t.Errorf("inspect %q shows the secret:\n%s", args, got)
			}
		}
	}
}
