package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/docker-cr/dockercr"
)

// namePrefix starts the name of every container the benchmark creates.
const namePrefix = "dcr-bench-"

// setupTimeout bounds building the workload, importing the image and
// probing CRIU.
const setupTimeout = 5 * time.Minute

// benchEnv is what every benchmark shares: set up once by the first one
// that needs it, torn down by TestMain.
type benchEnv struct {
	once sync.Once
	err  error

	// tmp holds the workload build, the image tar and the checkpoints.
	tmp   string
	criu  string
	cli   *client.Client
	image string
	// run is a random tag in the names of this run's image and
	// containers.
	run string
	// lib holds one Docker integration per backend, each with its own
	// Checkpointer (leave-running), already probed.
	lib map[string]*dockercr.Docker

	mu         sync.Mutex
	containers map[int]*benchContainer
}

var env benchEnv

// tRequireEnv sets the environment up on first use and fails b if root,
// criu or an experimental dockerd is missing.
func tRequireEnv(b *testing.B) *benchEnv {
	b.Helper()
	env.once.Do(func() { env.err = env.setup() })
	if env.err != nil {
		b.Fatalf("bench environment: %v", env.err)
	}
	return &env
}

func (e *benchEnv) setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("needs root, running as uid %d", uid)
	}
	criu, err := exec.LookPath("criu")
	if err != nil {
		return fmt.Errorf("criu not on PATH: %w", err)
	}
	if e.criu, err = filepath.Abs(criu); err != nil {
		return err
	}
	if err := e.connectDocker(ctx); err != nil {
		return err
	}

	e.run = randomTag()
	if e.tmp, err = os.MkdirTemp("", "dockercr-bench-"); err != nil {
		return err
	}
	if err := e.importImage(ctx); err != nil {
		return err
	}
	return e.newLibs(ctx)
}

// connectDocker pings the daemon and insists on experimental features:
// `docker checkpoint` and `docker start --checkpoint` need them.
func (e *benchEnv) connectDocker(ctx context.Context) error {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	e.cli = cli
	ping, err := cli.Ping(ctx)
	if err != nil {
		return fmt.Errorf("docker daemon: %w", err)
	}
	if !ping.Experimental {
		return errors.New("dockerd runs without --experimental; docker checkpoint needs it")
	}
	return nil
}

// newLibs makes the library's Docker integration once per backend and
// probes each Checkpointer, so that no measured checkpoint pays for the
// probe (it is cached per Checkpointer).
func (e *benchEnv) newLibs(ctx context.Context) error {
	backends := map[string]dockercr.Backend{
		methodRPC:  dockercr.RPCBackend(),
		methodExec: dockercr.ExecBackend(),
	}
	e.lib = make(map[string]*dockercr.Docker)
	for name, backend := range backends {
		cp, err := dockercr.New(dockercr.WithLeaveRunning(),
			dockercr.WithBackend(backend), dockercr.WithCriuPath(e.criu))
		if err != nil {
			return err
		}
		if _, err := cp.Check(ctx); err != nil {
			return fmt.Errorf("probe criu through %s: %w", name, err)
		}
		d, err := dockercr.NewDocker(cp, dockercr.WithDockerClient(e.cli),
			dockercr.WithCheckpointBase(filepath.Join(e.tmp, "lib")))
		if err != nil {
			return err
		}
		e.lib[name] = d
	}
	return nil
}

// close removes the containers and the image and the temporary files,
// whatever part of the setup ran.
func (e *benchEnv) close() error {
	if e.cli == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	var errs []error
	for _, c := range e.containers {
		errs = append(errs, c.remove(ctx))
	}
	if e.image != "" {
		_, err := e.cli.ImageRemove(ctx, e.image, image.RemoveOptions{Force: true})
		errs = append(errs, err)
	}
	for _, d := range e.lib {
		errs = append(errs, d.Close())
	}
	if e.tmp != "" {
		errs = append(errs, os.RemoveAll(e.tmp))
	}
	errs = append(errs, e.cli.Close())
	return errors.Join(errs...)
}

// container returns the running container of the mem workload with mib
// MiB, starting it on first use.
func (e *benchEnv) container(ctx context.Context, mib int) (*benchContainer, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.containers[mib]; ok {
		return c, nil
	}
	c, err := startContainer(ctx, e, mib)
	if c != nil {
		if e.containers == nil {
			e.containers = make(map[int]*benchContainer)
		}
		e.containers[mib] = c
	}
	return c, err
}

// stopped reports whether Docker no longer runs the container id.
func (e *benchEnv) stopped(ctx context.Context, id string) (bool, error) {
	info, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return false, err
	}
	return info.State == nil || !info.State.Running, nil
}

// stop stops the container id unless it is stopped already.
func (e *benchEnv) stop(ctx context.Context, id string) error {
	if done, err := e.stopped(ctx, id); err != nil || done {
		return err
	}
	return e.cli.ContainerStop(ctx, id, container.StopOptions{})
}
