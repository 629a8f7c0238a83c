package dockercr

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// MetadataName is the file beside the images that describes a container
// checkpoint. descriptorsName is the file in the images folder that
// runc's restore reads: the targets of the init process's descriptors
// 0, 1 and 2 at dump time, such as "pipe:[12345]".
const (
	MetadataName    = "checkpoint.json"
	descriptorsName = "descriptors.json"
)

// metadataFormat is the version of the metadata layout.
const metadataFormat = 1

// Metadata describes a container checkpoint: where it came from, how
// CRIU dumped it, and what is needed to recreate the container.
// It holds the container's environment, which may carry secrets: the
// file is 0600 and the library never logs it.
type Metadata struct {
	Format        int    `json:"format"`
	ContainerID   string `json:"containerId"`
	ContainerName string `json:"containerName"`
	Image         string `json:"image"`
	ImageID       string `json:"imageId"`
	Checkpoint    string `json:"checkpoint"`
	// Created is when the checkpoint was made, ContainerCreated when
	// the container was.
	Created          time.Time `json:"created"`
	ContainerCreated time.Time `json:"containerCreated,omitzero"`
	CRIUVersion      string    `json:"criuVersion"`
	Kernel           string    `json:"kernel"`
	Backend          string    `json:"backend"`

	// Options are the CRIU options the dump used; a restore must use
	// the same.
	Options CheckpointOptions `json:"options"`
	// Mounts are the container's mounts as classified for CRIU.
	Mounts []Mount `json:"mounts"`
	// Descriptors are the stdio targets written to descriptors.json.
	Descriptors []string  `json:"descriptors"`
	Stats       DumpStats `json:"stats"`

	Config ContainerConfig `json:"config"`
}

// CheckpointOptions are the CRIU options of a dump that its restore
// must repeat.
type CheckpointOptions struct {
	LeaveRunning    bool       `json:"leaveRunning,omitempty"`
	TCPEstablished  bool       `json:"tcpEstablished,omitempty"`
	TCPClose        bool       `json:"tcpClose,omitempty"`
	TCPSkipInFlight bool       `json:"tcpSkipInFlight,omitempty"`
	FileLocks       bool       `json:"fileLocks,omitempty"`
	ShellJob        bool       `json:"shellJob,omitempty"`
	ExtUnixSockets  bool       `json:"extUnixSockets,omitempty"`
	LinkRemap       bool       `json:"linkRemap,omitempty"`
	GhostLimit      uint32     `json:"ghostLimit,omitempty"`
	ManageCgroups   CgroupMode `json:"manageCgroups,omitempty"`
	MntnsCompatMode bool       `json:"mntnsCompatMode,omitempty"`
	External        []string   `json:"external,omitempty"`
}

// ContainerConfig is what is needed to create the container anew.
type ContainerConfig struct {
	Cmd        []string          `json:"cmd,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Env        []string          `json:"env,omitempty"`
	WorkingDir string            `json:"workingDir,omitempty"`
	User       string            `json:"user,omitempty"`
	Hostname   string            `json:"hostname,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	StopSignal string            `json:"stopSignal,omitempty"`
	Tty        bool              `json:"tty,omitempty"`
	OpenStdin  bool              `json:"openStdin,omitempty"`

	NetworkMode    string            `json:"networkMode,omitempty"`
	IpcMode        string            `json:"ipcMode,omitempty"`
	ShmSize        int64             `json:"shmSize,omitempty"`
	Init           bool              `json:"init,omitempty"`
	ReadonlyRootfs bool              `json:"readonlyRootfs,omitempty"`
	Tmpfs          map[string]string `json:"tmpfs,omitempty"`
	CapAdd         []string          `json:"capAdd,omitempty"`
	CapDrop        []string          `json:"capDrop,omitempty"`
	SecurityOpt    []string          `json:"securityOpt,omitempty"`
	// Mounts are the container's bind mounts and volumes, with their
	// sources on the host at dump time.
	Mounts []ContainerMount `json:"mounts,omitempty"`
}

// ContainerMount is one bind mount or volume of a container.
type ContainerMount struct {
	// Type is "bind" or "volume".
	Type string `json:"type"`
	// Source is the host path of a bind, or the volume name.
	Source string `json:"source"`
	// Destination is the path inside the container.
	Destination string `json:"destination"`
	ReadOnly    bool   `json:"readOnly,omitempty"`
}

func writeMetadata(dir string, m *Metadata) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeNewFile(filepath.Join(dir, MetadataName), append(b, '\n'))
}

// ReadMetadata reads the metadata of the container checkpoint in dir.
func ReadMetadata(dir string) (*Metadata, error) {
	b, err := os.ReadFile(filepath.Join(dir, MetadataName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s in %s", ErrCheckpointNotFound, MetadataName, dir)
	}
	if err != nil {
		return nil, err
	}
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, &ImageError{File: filepath.Join(dir, MetadataName), Reason: err.Error(), Err: err}
	}
	if m.Format != metadataFormat {
		return nil, fmt.Errorf("%s in %s: format %d, this library reads %d",
			MetadataName, dir, m.Format, metadataFormat)
	}
	return &m, nil
}

// writeNewFile writes data to a new 0600 file. Like CRIU's images, it
// is not synced: a checkpoint is made durable by nothing but the
// kernel's writeback, and one cut short by a host crash is refused by
// ValidateImages at restore.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Close())
}
