package dockercr

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzReadMetadata gives ReadMetadata arbitrary bytes as checkpoint.json.
// It must not panic; it either returns metadata of the format it reads,
// decoded from valid JSON, or an error and no metadata.
func FuzzReadMetadata(f *testing.F) {
	valid := tMetaSample(f)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	for _, s := range []string{"", "{}", "null", "[]", `{"format":1}`, `{"format":2}`,
		`{"format":1,"config":{"env":["A=1",7]}}`, `{"format":1,"stats":{"frozenTime":-1}}`,
		`{"format":1,"created":"not a time"}`, `{"format":1e400}`, "\xef\xbb\xbf{}"} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, MetadataName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := ReadMetadata(dir)
		if err != nil {
			if m != nil {
				t.Fatalf("error %v with metadata %+v", err, m)
			}
			return
		}
		if m == nil || m.Format != metadataFormat || !json.Valid(data) {
			t.Fatalf("accepted %q as %+v", data, m)
		}
	})
}

// tMetaSample returns the checkpoint.json of a filled-in Metadata.
func tMetaSample(f *testing.F) []byte {
	f.Helper()
	m := &Metadata{
		Format: metadataFormat, ContainerID: "0123abcd", ContainerName: "web",
		Image: "busybox", Checkpoint: "cp", Created: time.Unix(1700000000, 0).UTC(),
		Options:     CheckpointOptions{TCPEstablished: true, External: []string{"mnt[/data]:/data"}},
		Descriptors: []string{"/dev/null", "pipe:[1]", "pipe:[2]"},
		Config: ContainerConfig{Cmd: []string{"/bin/sh"}, Env: []string{"A=1"},
			Labels: map[string]string{"k": "v"},
			Mounts: []ContainerMount{{Type: "bind", Source: "/src", Destination: "/data"}}},
	}
	b, err := json.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
