package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"golang.org/x/sys/unix"
)

// The Docker tests need, beyond what TestMain probes (root, criu, the
// workload binary), a Docker daemon that answers and the host's static
// busybox to build their image from.
const (
	dockerBusybox = "/bin/busybox"
	dockerImage   = "dockercr-test:integration"
	// dockerImageSumLabel holds the SHA-256 of busybox and workload.
	dockerImageSumLabel = "dockercr.test.sum"
	// dockerNamePrefix starts the name of every container and volume
	// the tests create, so a leftover is easy to tell apart.
	dockerNamePrefix = "dcr-it-"
	// dockerRuncConf is the file the library swaps during a restore,
	// and dockerRuncLock the lock it holds meanwhile (runcconf.go).
	dockerRuncConf = "/etc/criu/runc.conf"
	dockerRuncLock = dockerRuncConf + ".dockercr-lock"
)

// dockerApplets are the busybox applets the image links: enough for a
// shell in the container when a test fails and someone looks inside.
var dockerApplets = []string{"sh", "sleep", "cat", "echo", "ls", "mkdir"}

// dockerEnvironment is what the first Docker test found.
type dockerEnvironment struct {
	// skip says why Docker tests cannot run here, "" when they can.
	skip string
	// err is a failure to set up an environment that is there.
	err error
	// image is the test image's reference.
	image string
	// runcConf is /etc/criu/runc.conf before any Docker test ran.
	runcConf dockerFileState
}

// dockerFileState is a file's content, or its absence.
type dockerFileState struct {
	exists bool
	data   string
}

func (s dockerFileState) String() string {
	if !s.exists {
		return "absent"
	}
	return fmt.Sprintf("%q", s.data)
}

var (
	dockerOnce sync.Once
	dockerEnv  dockerEnvironment
)

// tDockerRequire probes the Docker environment once. It skips with the
// exact reason when root, criu or the daemon is missing, or fails
// instead under DOCKERCR_REQUIRE_INTEGRATION=1; a broken setup of a
// present environment always fails.
func tDockerRequire(t *testing.T) {
	t.Helper()
	dockerOnce.Do(func() { dockerEnv = dockerProbe() })
	if reason := dockerEnv.skip; reason != "" {
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("%s=1 but the Docker tests cannot run: %s", requireEnv, reason)
		}
		t.Skip("docker integration environment missing: " + reason)
	}
	if dockerEnv.err != nil {
		t.Fatalf("docker test setup: %v", dockerEnv.err)
	}
}

func dockerProbe() dockerEnvironment {
	if env.skip != "" {
		return dockerEnvironment{skip: env.skip}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cli, err := dockerClient()
	if err != nil {
		return dockerEnvironment{skip: err.Error()}
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx); err != nil {
		return dockerEnvironment{skip: "docker daemon not answering: " + err.Error()}
	}

	conf, err := dockerLockedState()
	if err != nil {
		return dockerEnvironment{err: err}
	}
	ref, err := dockerEnsureImage(ctx, cli)
	return dockerEnvironment{image: ref, runcConf: conf, err: err}
}

func dockerClient() (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return cli, nil
}

// tDockerClient returns a client of its own for the test. Each test
// closes its client, so no connection to the daemon outlives the tests
// (TestMain counts descriptors).
func tDockerClient(t *testing.T) *client.Client {
	t.Helper()
	cli, err := dockerClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// dockerEnsureImage imports the test image unless the tag already
// holds a build of the same busybox and workload. The content's hash
// is a label, not the tag: the workload binary carries the VCS state,
// so a tag per hash would leave an image behind for every commit. The
// image a new import replaces is removed, unless a container uses it.
func dockerEnsureImage(ctx context.Context, cli *client.Client) (string, error) {
	busybox, err := os.ReadFile(dockerBusybox)
	if err != nil {
		return "", fmt.Errorf("the test image needs a static busybox: %w", err)
	}
	workload, err := os.ReadFile(env.workload)
	if err != nil {
		return "", err
	}
	sum := sha256.New()
	sum.Write(busybox)
	sum.Write(workload)
	want := hex.EncodeToString(sum.Sum(nil))

	old, err := cli.ImageInspect(ctx, dockerImage)
	if err == nil && old.Config != nil && old.Config.Labels[dockerImageSumLabel] == want {
		return dockerImage, nil
	}
	if err := dockerImport(ctx, cli, busybox, workload, want); err != nil {
		return "", err
	}
	if old.ID != "" {
		_, _ = cli.ImageRemove(ctx, old.ID, image.RemoveOptions{})
	}
	return dockerImage, nil
}

func dockerImport(ctx context.Context, cli *client.Client, busybox, workload []byte,
	sum string) error {
	layer, err := dockerRootfsTar(busybox, workload)
	if err != nil {
		return err
	}
	src := image.ImportSource{Source: bytes.NewReader(layer), SourceName: "-"}
	rc, err := cli.ImageImport(ctx, src, dockerImage, image.ImportOptions{
		Message: "dockercr integration tests",
		Changes: []string{"LABEL " + dockerImageSumLabel + "=" + sum},
	})
	if err != nil {
		return fmt.Errorf("import %s: %w", dockerImage, err)
	}
	progress, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("import %s: %w", dockerImage, err)
	}
	info, err := cli.ImageInspect(ctx, dockerImage)
	if err != nil || info.Config == nil || info.Config.Labels[dockerImageSumLabel] != sum {
		return fmt.Errorf("import %s: %v; daemon said %s", dockerImage, err, progress)
	}
	return nil
}

// dockerRootfsTar writes the image's only layer: busybox with a few
// applet links, the static workload, and the directories a container
// needs.
func dockerRootfsTar(busybox, workload []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dirs := map[string]int64{"bin/": 0o755, "tmp/": 0o1777, "dev/": 0o755,
		"proc/": 0o555, "sys/": 0o555, "etc/": 0o755}
	for _, name := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/"} {
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: dirs[name], ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
	}
	files := []struct {
		name string
		data []byte
	}{{"bin/busybox", busybox}, {"testworkload", workload}}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o755,
			Size: int64(len(f.data)), ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	for _, a := range dockerApplets {
		hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a,
			Linkname: "busybox", Mode: 0o777, ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func dockerReadState(path string) (dockerFileState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return dockerFileState{}, nil
	}
	if err != nil {
		return dockerFileState{}, err
	}
	return dockerFileState{exists: true, data: string(b)}, nil
}

// dockerWithRuncLock runs f holding the library's runc.conf swap lock,
// so that a restore running in another test, or in another process on
// the host, cannot be caught halfway. f must not restore: the lock is
// an flock, which the library's own open of the file would wait for.
func dockerWithRuncLock(f func() error) error {
	lock, err := dockerLock(dockerRuncLock, unix.LOCK_EX, 2*time.Minute)
	if err != nil {
		return err
	}
	defer lock.Close()
	return f()
}

// dockerLockedState reads runc's CRIU configuration while no library
// restore swaps it and no test of another run has replaced it.
func dockerLockedState() (dockerFileState, error) {
	host, err := dockerLock(dockerHostLock, unix.LOCK_SH, 5*time.Minute)
	if err != nil {
		return dockerFileState{}, err
	}
	defer host.Close()
	var st dockerFileState
	err = dockerWithRuncLock(func() error {
		var err error
		st, err = dockerReadState(dockerRuncConf)
		return err
	})
	return st, err
}

// tDockerRuncConfIs fails unless runc's CRIU configuration is want and
// the library left none of its swap files beside it.
func tDockerRuncConfIs(t *testing.T, want dockerFileState) {
	t.Helper()
	var got dockerFileState
	var left []string
	err := dockerWithRuncLock(func() error {
		var err error
		got, err = dockerReadState(dockerRuncConf)
		for _, suffix := range []string{".dockercr-saved", ".dockercr-absent"} {
			if _, err := os.Lstat(dockerRuncConf + suffix); err == nil {
				left = append(left, dockerRuncConf+suffix)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("%s is %s after a restore, want %s", dockerRuncConf, got, want)
	}
	if len(left) > 0 {
		t.Errorf("swap files left behind: %q", left)
	}
}

// tDockerRuncConfUnchanged fails unless runc's CRIU configuration is
// what it was before the Docker tests.
func tDockerRuncConfUnchanged(t *testing.T) {
	t.Helper()
	tDockerRuncConfIs(t, dockerEnv.runcConf)
}

// dockerName returns a fresh name for a container or volume of t.
func dockerName(t *testing.T, role string) string {
	var b strings.Builder
	for _, r := range t.Name() {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !ok {
			r = '-'
		}
		b.WriteRune(r)
	}
	name := strings.TrimPrefix(b.String(), "TestDocker")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return dockerNamePrefix + strings.Trim(name, "-") + "-" + role + "-" + dockerRandom()
}
