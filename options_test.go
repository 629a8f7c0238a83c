package dockercr

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestOptionsRejectBadValues checks that every option refuses values
// CRIU cannot take, and that New reports which option it was.
func TestOptionsRejectBadValues(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		// want must appear in the error so the caller sees the option.
		want string
	}{
		{"zero ghost limit", []Option{WithGhostLimit(0)}, "WithGhostLimit"},
		{"unknown cgroup mode", []Option{WithManageCgroups("loose")}, `"loose"`},
		{"empty cgroup mode", []Option{WithManageCgroups("")}, "WithManageCgroups"},
		{"log level below 0", []Option{WithLogLevel(-1)}, "WithLogLevel: -1"},
		{"log level above 4", []Option{WithLogLevel(5)}, "WithLogLevel: 5"},
		{"empty work dir", []Option{WithWorkDir("")}, "WithWorkDir"},
		{"empty root", []Option{WithRoot("")}, "WithRoot"},
		{"empty external", []Option{WithExternal("")}, "WithExternal"},
		{"external with NUL", []Option{WithExternal("mnt[/a]:b\x00c")}, "WithExternal"},
		{"external mount without key", []Option{WithExternalMount("/data", "")}, "WithExternalMount"},
		{"external mount with bracket", []Option{WithExternalMount("/a]b", "k")}, "WithExternalMount"},
		{"external source without source", []Option{WithExternalMountSource("k", "")}, "WithExternalMountSource"},
		{"inherit fd without key", []Option{WithInheritFd("", os.Stdin)}, "WithInheritFd"},
		{"inherit fd without file", []Option{WithInheritFd("pipe:[1]", nil)}, "WithInheritFd"},
		{"zero timeout", []Option{WithTimeout(0)}, "WithTimeout"},
		{"negative timeout", []Option{WithTimeout(-time.Second)}, "WithTimeout"},
		{"empty criu path", []Option{WithCriuPath("")}, "WithCriuPath"},
		{"nil backend", []Option{WithBackend(nil)}, "WithBackend"},
		{"nil logger", []Option{WithLogger(nil)}, "WithLogger"},
		{"tcp established and close", []Option{WithTCPEstablished(), WithTCPClose()}, "exclude"},
		{"first bad option stops New", []Option{WithLogLevel(9), WithCriuPath("")}, "WithLogLevel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts...)
			if err == nil {
				t.Fatalf("New accepted the options, config %+v", c.cfg)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestDefaults checks the documented defaults on the Request that a
// Checkpointer built without options sends to its backend.
func TestDefaults(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.cfg.backend.Name(); got != "auto" {
		t.Errorf("default backend %q, want auto", got)
	}

	for _, action := range []Action{ActionDump, ActionRestore} {
		t.Run(string(action), func(t *testing.T) {
			req := c.request(action, "/ckpt/images", "/ckpt")
			want := &Request{
				Action:     action,
				CriuPath:   "criu",
				ImagesDir:  "/ckpt/images",
				WorkDir:    "/ckpt",
				LogFile:    map[Action]string{ActionDump: DumpLogName, ActionRestore: RestoreLogName}[action],
				LogLevel:   4,
				GhostLimit: 1 << 20,
			}
			if !reflect.DeepEqual(req, want) {
				t.Fatalf("request\n got %+v\nwant %+v", req, want)
			}
			// Spelled out: these four change what CRIU agrees to dump
			// and must stay off unless the caller asks.
			if req.TCPEstablished || req.FileLocks || req.ShellJob || req.ManageCgroups != "" {
				t.Fatalf("a resource option is on by default: %+v", req)
			}
		})
	}
}

// TestOptionsReachRequest checks that each option sets its field of the
// Request, and only for the actions where CRIU takes it.
func TestOptionsReachRequest(t *testing.T) {
	dir := t.TempDir()
	stdin := []InheritFd{{Key: "pipe:[7]", File: os.Stdin}}
	tests := []struct {
		name  string
		opt   Option
		field string
		want  any
		// only, if set, is the one action the option reaches.
		only Action
	}{
		{"leave running", WithLeaveRunning(), "LeaveRunning", true, ActionDump},
		{"track mem", WithTrackMem(), "TrackMem", true, ActionDump},
		{"tcp established", WithTCPEstablished(), "TCPEstablished", true, ""},
		{"tcp close", WithTCPClose(), "TCPClose", true, ""},
		{"skip in flight", WithTCPSkipInFlight(), "TCPSkipInFlight", true, ""},
		{"file locks", WithFileLocks(), "FileLocks", true, ""},
		{"shell job", WithShellJob(), "ShellJob", true, ""},
		{"ext unix sockets", WithExtUnixSockets(), "ExtUnixSockets", true, ""},
		{"link remap", WithLinkRemap(), "LinkRemap", true, ""},
		{"auto dedup", WithAutoDedup(), "AutoDedup", true, ""},
		{"ghost limit", WithGhostLimit(8 << 20), "GhostLimit", uint32(8 << 20), ""},
		{"cgroups", WithManageCgroups(CgroupsStrict), "ManageCgroups", CgroupsStrict, ""},
		{"log level", WithLogLevel(1), "LogLevel", 1, ""},
		{"criu path", WithCriuPath("/opt/criu"), "CriuPath", "/opt/criu", ""},
		{"work dir", WithWorkDir(dir), "WorkDir", dir, ""},
		{"root", WithRoot(dir), "Root", dir, ""},
		{"external", WithExternal("veth[eth0]:h0"), "External", []string{"veth[eth0]:h0"}, ""},
		{"external mount", WithExternalMount("/data", "d"), "External", []string{"mnt[/data]:d"}, ""},
		{"external source", WithExternalMountSource("d", "/srv"), "External", []string{"mnt[d]:/srv"}, ""},
		{"inherit fd", WithInheritFd("pipe:[7]", os.Stdin), "InheritFds", stdin, ActionRestore},
	}
	base, err := New()
	if err != nil {
		t.Fatal(err)
	}
	field := func(r *Request, name string) any {
		return reflect.ValueOf(r).Elem().FieldByName(name).Interface()
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			for _, action := range []Action{ActionDump, ActionRestore} {
				got, want := field(c.request(action, "/i", "/w"), tt.field), tt.want
				if tt.only != "" && action != tt.only {
					want = field(base.request(action, "/i", "/w"), tt.field)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %s is %v, want %v", action, tt.field, got, want)
				}
			}
		})
	}
}

// TestOptionsMisc covers option behaviour beyond one field.
func TestOptionsMisc(t *testing.T) {
	t.Run("external appends across calls", func(t *testing.T) {
		c, err := New(WithExternal("a"), WithExternalMount("/m", "k"), WithExternal("b", "c"))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a", "mnt[/m]:k", "b", "c"}
		if got := c.request(ActionDump, "/i", "/w").External; !reflect.DeepEqual(got, want) {
			t.Fatalf("External %q, want %q", got, want)
		}
	})

	t.Run("relative dirs are made absolute", func(t *testing.T) {
		c, err := New(WithWorkDir("rel"), WithRoot("./r/../root"))
		if err != nil {
			t.Fatal(err)
		}
		cwd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		req := c.request(ActionDump, "/i", "/w")
		if want := filepath.Join(cwd, "rel"); req.WorkDir != want {
			t.Errorf("WorkDir %q, want %q", req.WorkDir, want)
		}
		if want := filepath.Join(cwd, "root"); req.Root != want {
			t.Errorf("Root %q, want %q", req.Root, want)
		}
	})

	t.Run("request does not share slices with the config", func(t *testing.T) {
		c, err := New(WithExternal("a"), WithInheritFd("k", os.Stdin))
		if err != nil {
			t.Fatal(err)
		}
		req := c.request(ActionRestore, "/i", "/w")
		req.External[0] = "changed"
		req.InheritFds[0].Key = "changed"
		again := c.request(ActionRestore, "/i", "/w")
		if again.External[0] != "a" || again.InheritFds[0].Key != "k" {
			t.Fatalf("a backend changing its request changed the config: %+v", again)
		}
	})

	t.Run("later scalar option wins", func(t *testing.T) {
		c, err := New(WithLogLevel(1), WithLogLevel(3), WithGhostLimit(5), WithGhostLimit(6))
		if err != nil {
			t.Fatal(err)
		}
		req := c.request(ActionDump, "/i", "/w")
		if req.LogLevel != 3 || req.GhostLimit != 6 {
			t.Fatalf("LogLevel %d GhostLimit %d, want 3 and 6", req.LogLevel, req.GhostLimit)
		}
	})

	t.Run("backend and logger are kept", func(t *testing.T) {
		l := slog.New(slog.DiscardHandler)
		c, err := New(WithBackend(ExecBackend()), WithLogger(l), WithTimeout(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if c.cfg.backend.Name() != "exec" || c.cfg.logger != l || c.cfg.timeout != time.Minute {
			t.Fatalf("config %+v", c.cfg)
		}
	})
}
