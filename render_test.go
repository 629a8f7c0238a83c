package dockercr

import (
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"google.golang.org/protobuf/proto"
)

// The descriptors the RPC rendering tests pass for the directories.
const (
	testImagesFd = 10
	testWorkFd   = 11
)

// baseRequest is the smallest dump request a Checkpointer builds.
func baseRequest(action Action) *Request {
	return &Request{
		Action:    action,
		CriuPath:  "criu",
		PID:       42,
		ImagesDir: "/c/images",
		WorkDir:   "/c",
		LogFile:   DumpLogName,
		LogLevel:  4,
	}
}

// renderCase is one option's rendering in both backends. args and rpc
// are what the option adds to the rendering of baseRequest.
type renderCase struct {
	name string
	set  func(*Request)
	args []string
	rpc  func(*rpc.CriuOpts)
}

func renderCases() []renderCase {
	f := os.Stdin
	return []renderCase{
		{"none", func(*Request) {}, nil, func(*rpc.CriuOpts) {}},
		{"leave running", func(r *Request) { r.LeaveRunning = true },
			[]string{"--leave-running"}, func(o *rpc.CriuOpts) { o.LeaveRunning = proto.Bool(true) }},
		{"tcp established", func(r *Request) { r.TCPEstablished = true },
			[]string{"--tcp-established"}, func(o *rpc.CriuOpts) { o.TcpEstablished = proto.Bool(true) }},
		{"tcp close", func(r *Request) { r.TCPClose = true },
			[]string{"--tcp-close"}, func(o *rpc.CriuOpts) { o.TcpClose = proto.Bool(true) }},
		{"skip in flight", func(r *Request) { r.TCPSkipInFlight = true },
			[]string{"--skip-in-flight"}, func(o *rpc.CriuOpts) { o.TcpSkipInFlight = proto.Bool(true) }},
		{"file locks", func(r *Request) { r.FileLocks = true },
			[]string{"--file-locks"}, func(o *rpc.CriuOpts) { o.FileLocks = proto.Bool(true) }},
		{"shell job", func(r *Request) { r.ShellJob = true },
			[]string{"--shell-job"}, func(o *rpc.CriuOpts) { o.ShellJob = proto.Bool(true) }},
		{"ext unix sk", func(r *Request) { r.ExtUnixSockets = true },
			[]string{"--ext-unix-sk"}, func(o *rpc.CriuOpts) { o.ExtUnixSk = proto.Bool(true) }},
		{"link remap", func(r *Request) { r.LinkRemap = true },
			[]string{"--link-remap"}, func(o *rpc.CriuOpts) { o.LinkRemap = proto.Bool(true) }},
		{"auto dedup", func(r *Request) { r.AutoDedup = true },
			[]string{"--auto-dedup"}, func(o *rpc.CriuOpts) { o.AutoDedup = proto.Bool(true) }},
		{"track mem", func(r *Request) { r.TrackMem = true },
			[]string{"--track-mem"}, func(o *rpc.CriuOpts) { o.TrackMem = proto.Bool(true) }},
		{"mntns compat", func(r *Request) { r.MntnsCompatMode = true },
			[]string{"--mntns-compat-mode"}, func(o *rpc.CriuOpts) { o.MntnsCompatMode = proto.Bool(true) }},
		{"ghost limit", func(r *Request) { r.GhostLimit = 8 << 20 },
			[]string{"--ghost-limit", "8388608"}, func(o *rpc.CriuOpts) { o.GhostLimit = proto.Uint32(8 << 20) }},
		{"cgroups soft", func(r *Request) { r.ManageCgroups = CgroupsSoft },
			[]string{"--manage-cgroups=soft"}, cgroupOpts(rpc.CriuCgMode_SOFT)},
		{"cgroups full", func(r *Request) { r.ManageCgroups = CgroupsFull },
			[]string{"--manage-cgroups=full"}, cgroupOpts(rpc.CriuCgMode_FULL)},
		{"cgroups strict", func(r *Request) { r.ManageCgroups = CgroupsStrict },
			[]string{"--manage-cgroups=strict"}, cgroupOpts(rpc.CriuCgMode_STRICT)},
		{"cgroups ignore", func(r *Request) { r.ManageCgroups = CgroupsIgnore },
			[]string{"--manage-cgroups=ignore"}, cgroupOpts(rpc.CriuCgMode_IGNORE)},
		{"root", func(r *Request) { r.Root = "/rootfs" },
			[]string{"--root", "/rootfs"}, func(o *rpc.CriuOpts) { o.Root = proto.String("/rootfs") }},
		{"freeze cgroup", func(r *Request) { r.FreezeCgroup = "/sys/fs/cgroup/freezer/x" },
			[]string{"--freeze-cgroup", "/sys/fs/cgroup/freezer/x"},
			func(o *rpc.CriuOpts) { o.FreezeCgroup = proto.String("/sys/fs/cgroup/freezer/x") }},
		{"externals in order", func(r *Request) { r.External = []string{"mnt[/a]:a", "veth[e]:h"} },
			[]string{"--external", "mnt[/a]:a", "--external", "veth[e]:h"},
			func(o *rpc.CriuOpts) { o.External = []string{"mnt[/a]:a", "veth[e]:h"} }},
		{"inherit fds in order", func(r *Request) {
			r.InheritFds = []InheritFd{{Key: "tty[88:1]", File: f}, {Key: "pipe:[9]", File: f}}
		},
			// exec: ExtraFiles start at 3; rpc: swrk's socket is 3,
			// so the extra files start at 4.
			[]string{"--inherit-fd", "fd[3]:tty[88:1]", "--inherit-fd", "fd[4]:pipe:[9]"},
			func(o *rpc.CriuOpts) {
				o.InheritFd = []*rpc.InheritFd{
					{Key: proto.String("tty[88:1]"), Fd: proto.Int32(4)},
					{Key: proto.String("pipe:[9]"), Fd: proto.Int32(5)},
				}
			}},
	}
}

func cgroupOpts(mode rpc.CriuCgMode) func(*rpc.CriuOpts) {
	return func(o *rpc.CriuOpts) {
		o.ManageCgroups = proto.Bool(true)
		o.ManageCgroupsMode = mode.Enum()
	}
}

// TestExecArgs checks the criu argv of each option, exactly.
func TestExecArgs(t *testing.T) {
	dump := []string{"dump", "--images-dir", "/c/images", "--work-dir", "/c",
		"-v4", "--log-file", "dump.log", "--tree", "42"}
	for _, tc := range renderCases() {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest(ActionDump)
			tc.set(req)
			want := append(slices.Clone(dump), tc.args...)
			if got := execArgs(req); !slices.Equal(got, want) {
				t.Fatalf("argv\n got %q\nwant %q", got, want)
			}
		})
	}

	t.Run("restore", func(t *testing.T) {
		req := baseRequest(ActionRestore)
		req.LogFile, req.LogLevel = RestoreLogName, 0
		want := []string{"restore", "--images-dir", "/c/images", "--work-dir", "/c",
			"-v0", "--log-file", "restore.log",
			"--restore-detached", "--pidfile", restorePIDFile}
		if got := execArgs(req); !slices.Equal(got, want) {
			t.Fatalf("argv\n got %q\nwant %q", got, want)
		}
	})

	t.Run("no log file", func(t *testing.T) {
		req := baseRequest(ActionDump)
		req.LogFile = ""
		if got := execArgs(req); slices.Contains(got, "--log-file") {
			t.Fatalf("argv %q has --log-file for an empty LogFile", got)
		}
	})
}

// TestRPCOpts checks the RPC options of each option, exactly.
func TestRPCOpts(t *testing.T) {
	dump := func() *rpc.CriuOpts {
		return &rpc.CriuOpts{
			ImagesDirFd: proto.Int32(testImagesFd),
			WorkDirFd:   proto.Int32(testWorkFd),
			LogLevel:    proto.Int32(4),
			LogFile:     proto.String("dump.log"),
			Pid:         proto.Int32(42),
		}
	}
	for _, tc := range renderCases() {
		t.Run(tc.name, func(t *testing.T) {
			req := baseRequest(ActionDump)
			tc.set(req)
			want := dump()
			tc.rpc(want)
			if got := rpcOpts(req, testImagesFd, testWorkFd); !proto.Equal(got, want) {
				t.Fatalf("opts\n got %v\nwant %v", got, want)
			}
		})
	}

	t.Run("restore has no pid", func(t *testing.T) {
		req := baseRequest(ActionRestore)
		req.LogFile = RestoreLogName
		want := &rpc.CriuOpts{
			ImagesDirFd: proto.Int32(testImagesFd),
			WorkDirFd:   proto.Int32(testWorkFd),
			LogLevel:    proto.Int32(4),
			LogFile:     proto.String("restore.log"),
		}
		if got := rpcOpts(req, testImagesFd, testWorkFd); !proto.Equal(got, want) {
			t.Fatalf("opts\n got %v\nwant %v", got, want)
		}
	})
}

// exemption is a Request field that is not rendered as an option: the
// test still checks that each rendering changes exactly as stated.
type exemption struct {
	reason    string
	exec, rpc bool
}

var renderExemptions = map[string]exemption{
	"CriuPath": {"is the program the backend starts, not an argument", false, false},
	// Both are always rendered: as paths in argv and as descriptors in
	// RPC, so the RPC options cannot change with the path itself.
	"ImagesDir": {"exec renders the path, RPC the images_dir_fd the backend opens", true, false},
	"WorkDir":   {"exec renders the path, RPC the work_dir_fd the backend opens", true, false},
}

// TestBackendsRenderEveryField sets each field of Request in turn and
// requires that both renderings change from the zero request's, for
// both actions alike. A field added to Request and mapped by one
// backend only fails here; a field of a new kind fails until the test
// learns a value for it.
func TestBackendsRenderEveryField(t *testing.T) {
	typ := reflect.TypeFor[Request]()
	for i := range typ.NumField() {
		field := typ.Field(i)
		t.Run(field.Name, func(t *testing.T) {
			if field.Name == "Action" {
				tActionRendered(t)
				return
			}
			ex, exempt := renderExemptions[field.Name]
			rendered := false
			for _, action := range []Action{ActionDump, ActionRestore} {
				base := &Request{Action: action}
				req := &Request{Action: action}
				setNonZero(t, reflect.ValueOf(req).Elem().Field(i))

				execChanged := !slices.Equal(execArgs(base), execArgs(req))
				rpcChanged := !proto.Equal(rpcOpts(base, 0, 0), rpcOpts(req, 0, 0))
				switch {
				case exempt && (execChanged != ex.exec || rpcChanged != ex.rpc):
					t.Errorf("%s: %s changes exec argv: %v, RPC options: %v; "+
						"want %v, %v because it %s", action, field.Name,
						execChanged, rpcChanged, ex.exec, ex.rpc, ex.reason)
				case !exempt && execChanged != rpcChanged:
					t.Errorf("%s: %s changes exec argv: %v, RPC options: %v",
						action, field.Name, execChanged, rpcChanged)
				}
				rendered = rendered || (execChanged && rpcChanged)
			}
			if !exempt && !rendered {
				t.Errorf("%s does not reach both backends; render it in both "+
					"or add it to renderExemptions with a reason", field.Name)
			}
		})
	}
}

// tActionRendered checks that the action selects a different CRIU call
// in both renderings: argv[0] for exec, the tree PID for RPC (whose
// request type is set outside rpcOpts).
func tActionRendered(t *testing.T) {
	t.Helper()
	dump, restore := &Request{Action: ActionDump}, &Request{Action: ActionRestore}
	if slices.Equal(execArgs(dump), execArgs(restore)) {
		t.Error("exec argv is the same for dump and restore")
	}
	if proto.Equal(rpcOpts(dump, 0, 0), rpcOpts(restore, 0, 0)) {
		t.Error("RPC options are the same for dump and restore")
	}
}

// setNonZero gives v a non-zero value a backend must render.
func setNonZero(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Type() {
	case reflect.TypeFor[CgroupMode]():
		v.Set(reflect.ValueOf(CgroupsFull))
		return
	case reflect.TypeFor[[]InheritFd]():
		v.Set(reflect.ValueOf([]InheritFd{{Key: "pipe:[1]", File: os.Stdin}}))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(3)
	case reflect.Uint32, reflect.Uint64:
		v.SetUint(3)
	case reflect.String:
		v.SetString("/x")
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			t.Fatalf("no test value for %s; teach setNonZero", v.Type())
		}
		v.Set(reflect.ValueOf([]string{"x"}).Convert(v.Type()))
	default:
		t.Fatalf("no test value for %s; teach setNonZero", v.Type())
	}
}
