package ckptar

import (
	"encoding/json"
	"time"
)

// Manager is the value of the "io.container.manager" annotation in
// spec.dump, where Podman writes "libpod" and CRI-O "cri-o".
const Manager = "dockercr"

// Container is what config.dump and spec.dump tell about the container
// a checkpoint was made of.
type Container struct {
	ID   string
	Name string
	// Image is the reference the container was created from, ImageID
	// the image's ID.
	Image   string
	ImageID string
	// Created is when the container was created, zero if unknown;
	// Checkpointed is when the checkpoint was made.
	Created      time.Time
	Checkpointed time.Time
	// Mounts are the container's binds and volumes.
	Mounts []Mount
	// Args is the command line of the container's first process.
	Args     []string
	Cwd      string
	Hostname string
}

// Mount is one bind or volume of a container, as spec.dump lists it.
type Mount struct {
	Destination string
	Type        string
	Source      string
	ReadOnly    bool
}

// podmanConfig has the fields and JSON names of Podman's config.dump
// that checkpointctl shows.
type podmanConfig struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	RootfsImage     string    `json:"rootfsImage,omitempty"`
	RootfsImageRef  string    `json:"rootfsImageRef,omitempty"`
	RootfsImageName string    `json:"rootfsImageName,omitempty"`
	Runtime         string    `json:"runtime"`
	CreatedTime     time.Time `json:"createdTime"`
	CheckpointedAt  time.Time `json:"checkpointedTime"`
	RestoredAt      time.Time `json:"restoredTime"`
	Restored        bool      `json:"restored"`
}

// ConfigDump renders config.dump, shaped like Podman's so checkpointctl
// shows the container's name, ID, image and runtime. Docker does not
// hand out the container's creation time with a checkpoint, so
// createdTime is the checkpoint's time too.
func ConfigDump(c Container) ([]byte, error) {
	return json.MarshalIndent(podmanConfig{
		ID:              c.ID,
		Name:            c.Name,
		RootfsImage:     c.ImageID,
		RootfsImageRef:  c.ImageID,
		RootfsImageName: c.Image,
		Runtime:         "runc",
		CreatedTime:     created(c),
		CheckpointedAt:  c.Checkpointed,
	}, "", "  ")
}

// created is the container's creation time, the checkpoint's where the
// metadata has none.
func created(c Container) time.Time {
	if c.Created.IsZero() {
		return c.Checkpointed
	}
	return c.Created
}

// ociSpec is the part of an OCI runtime spec that spec.dump carries.
type ociSpec struct {
	Version     string            `json:"ociVersion"`
	Process     ociProcess        `json:"process"`
	Root        ociRoot           `json:"root"`
	Hostname    string            `json:"hostname,omitempty"`
	Mounts      []ociMount        `json:"mounts,omitempty"`
	Annotations map[string]string `json:"annotations"`
}

type ociMount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type"`
	Source      string   `json:"source"`
	Options     []string `json:"options,omitempty"`
}

type ociProcess struct {
	Args []string `json:"args,omitempty"`
	Cwd  string   `json:"cwd"`
}

type ociRoot struct {
	Path string `json:"path"`
}

// SpecDump renders spec.dump: a minimal OCI runtime spec whose
// annotations name [Manager]. The environment is left out; it may hold
// secrets and checkpoint.json has it for a restore.
func SpecDump(c Container) ([]byte, error) {
	cwd := c.Cwd
	if cwd == "" {
		cwd = "/"
	}
	var mounts []ociMount
	for _, m := range c.Mounts {
		opts := []string{"rbind", "rw"}
		if m.ReadOnly {
			opts[1] = "ro"
		}
		// Docker mounts volumes as binds of their host directories.
		mounts = append(mounts, ociMount{Destination: m.Destination, Type: "bind",
			Source: m.Source, Options: opts})
	}
	return json.MarshalIndent(ociSpec{
		Version:  "1.0.2",
		Process:  ociProcess{Args: c.Args, Cwd: cwd},
		Root:     ociRoot{Path: "rootfs"},
		Hostname: c.Hostname,
		Mounts:   mounts,
		Annotations: map[string]string{
			"io.container.manager": Manager,
			// checkpointctl 1.x takes the name of a container whose
			// manager is neither Podman nor CRI-O from this key.
			"io.kubernetes.cri.container-name": c.Name,
		},
	}, "", "  ")
}
