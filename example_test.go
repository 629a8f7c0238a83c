package dockercr_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"syscall"

	"github.com/docker-cr/dockercr"
)

func ExampleVersion_String() {
	fmt.Println(dockercr.Version{Major: 4, Minor: 2, Patch: 1})
	fmt.Println(dockercr.Version{Major: 3, Minor: 17})
	// Output:
	// 4.2.1
	// 3.17
}

func ExampleVersion_AtLeast() {
	found := dockercr.Version{Major: 3, Minor: 17, Patch: 1}
	fmt.Println(found.AtLeast(dockercr.Version{Major: 3, Minor: 17}))
	fmt.Println(found.AtLeast(dockercr.Version{Major: 4, Minor: 0}))
	// Output:
	// true
	// false
}

// A failed dump leads with the first root cause from CRIU's log, then
// CRIU's hint; the errno maps to a broad kind for errors.Is.
func ExampleCRIUError() {
	var err error = &dockercr.CRIUError{
		Action:  "dump",
		Backend: "rpc",
		Errno:   syscall.EPERM,
		Causes: []string{
			"inet: Unsupported proto 262 for socket 2563",
			`inet: For Go programs, consider using "GODEBUG=multipathtcp=0" to disable MPTCP`,
		},
		LogPath: "/srv/ckpt/.web.failed/dump.log",
	}
	err = fmt.Errorf("checkpoint web: %w", err)

	fmt.Println(err)
	fmt.Println(errors.Is(err, dockercr.ErrNotPermitted))
	var ce *dockercr.CRIUError
	if errors.As(err, &ce) {
		fmt.Println(ce.LogPath)
	}
	// Output:
	// checkpoint web: criu dump failed (rpc): inet: Unsupported proto 262 for socket 2563; inet: For Go programs, consider using "GODEBUG=multipathtcp=0" to disable MPTCP; log: /srv/ckpt/.web.failed/dump.log
	// true
	// /srv/ckpt/.web.failed/dump.log
}

func ExampleVersionError() {
	err := fmt.Errorf("check: %w", &dockercr.VersionError{
		Path:  "/usr/sbin/criu",
		Found: dockercr.Version{Major: 3, Minor: 17, Patch: 1},
		Min:   dockercr.Version{Major: 4, Minor: 0},
	})
	fmt.Println(errors.Is(err, dockercr.ErrCRIUTooOld))
	fmt.Println(err)
	// Output:
	// true
	// check: criu 3.17.1 at /usr/sbin/criu is older than the supported minimum 4.0
}

// Checkpoint a process tree with its TCP connections and restore it.
// Not run: it needs root and CRIU.
func ExampleCheckpointer_Checkpoint() {
	ctx := context.Background()
	c, err := dockercr.New(dockercr.WithTCPEstablished())
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Checkpoint(ctx, 1234, "/srv/ckpt/web")
	if err != nil {
		var ce *dockercr.CRIUError
		if errors.As(err, &ce) {
			log.Fatal(ce.Detail())
		}
		log.Fatal(err)
	}
	fmt.Println("dumped with", res.Backend, "in", res.Duration)

	rres, err := c.Restore(ctx, res.Dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("restored as pid", rres.PID)
}
