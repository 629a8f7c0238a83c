package bench

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/image"
)

// busyboxPath is the static busybox of Debian's busybox-static package.
const busyboxPath = "/bin/busybox"

// workloadPath is where the image holds the test workload.
const workloadPath = "/testworkload"

// applets are the busybox commands the image links, enough for a shell
// in the container when a run has to be inspected by hand.
var applets = []string{"sh", "ls", "cat", "ps", "sleep"}

// importImage builds the workload and imports an image of it and the
// static busybox, one layer written as a tar here.
func (e *benchEnv) importImage(ctx context.Context) error {
	bin, err := buildWorkload(e.tmp)
	if err != nil {
		return err
	}
	tarPath := filepath.Join(e.tmp, "image.tar")
	if err := writeImageTar(tarPath, bin); err != nil {
		return fmt.Errorf("write image tar: %w", err)
	}
	f, err := os.Open(tarPath)
	if err != nil {
		return err
	}
	defer f.Close()

	ref := "dockercr-bench:" + e.run
	out, err := e.cli.ImageImport(ctx, image.ImportSource{Source: f, SourceName: "-"},
		ref, image.ImportOptions{})
	if err != nil {
		return fmt.Errorf("import image: %w", err)
	}
	defer out.Close()
	if err := importError(out); err != nil {
		return fmt.Errorf("import image: %w", err)
	}
	e.image = ref
	return nil
}

// buildWorkload builds internal/testworkload without cgo, so that it
// runs in an image without libc. go test puts its own go first on PATH.
func buildWorkload(dir string) (string, error) {
	bin := filepath.Join(dir, "testworkload")
	cmd := exec.Command("go", "build", "-o", bin,
		"github.com/docker-cr/dockercr/internal/testworkload")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build testworkload: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

func writeImageTar(path, workload string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = writeImageEntries(tw, workload)
	return errors.Join(err, tw.Close(), f.Close())
}

func writeImageEntries(tw *tar.Writer, workload string) error {
	for _, dir := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		mode := int64(0o755)
		if dir == "tmp" {
			mode = 0o1777
		}
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: mode}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	}
	if err := addFile(tw, busyboxPath, "bin/busybox"); err != nil {
		return err
	}
	for _, a := range applets {
		hdr := &tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a,
			Linkname: "busybox", Mode: 0o777}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	}
	return addFile(tw, workload, strings.TrimPrefix(workloadPath, "/"))
}

// addFile copies the executable src into the tar as name.
func addFile(tw *tar.Writer, src, name string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: st.Size()}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// importError reads the daemon's JSON progress stream to its end and
// returns the error it reports, if any.
func importError(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		err := dec.Decode(&msg)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

func randomTag() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
