// Package containerd is a runtime.Executor that runs task containers with
// containerd (v2) and runc.
//
// One Executor talks to one containerd daemon, in one containerd
// namespace (Config.Namespace). Several daemons on one machine share runc
// state and cgroup paths named after namespace and container ID, so every
// host must use its own namespace name.
//
// A task's container ID is the task ID. Prepare makes sure the image is
// present (pulling it when it is not), makes the task's network namespace
// (a bind mount under StateDir/netns, holding only a loopback interface
// that is up) and creates the container: an overlayfs snapshot of the
// image and an OCI spec made from the task (see spec.go). Start runs the
// container's task with stdout and stderr captured, line by line with
// timestamps, in StateDir/logs/TASKID.log (rotated; see logs.go and
// ReadLogs). Wait, Shutdown, Terminate and Remove work from
// containerd's own records, found by task ID, so a controller made by a
// new Executor after an agent restart (Reattach) finds a running task
// again instead of starting another.
//
// Errors follow agent/runtime: a task that cannot be prepared here (an
// image that cannot be pulled, a bind mount whose source is missing, an
// invalid mount) wraps runtime.ErrTaskRejected; a daemon that does not
// answer wraps runtime.ErrTemporary; a container that is gone wraps
// runtime.ErrContainerGone. A process killed for exceeding its memory
// limit exits 137 and Wait says so with an error wrapping ErrOOMKilled.
//
// Health checks (the spec's, else the image's HEALTHCHECK) run as exec
// processes in the container; the controller is a runtime.HealthChecker
// (see health.go).
//
// Not done yet: secrets and configs, additional groups, and container networking beyond
// the loopback interface.
package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/platforms"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/proto/api"
)

// DefaultNamespace is the containerd namespace used when Config.Namespace
// is empty.
const DefaultNamespace = "shoal"

// snapshotter is the snapshotter of every container (the only one a
// containerd built without cgo offers besides native).
const snapshotter = "overlayfs"

// connectTimeout bounds New's wait for the daemon to answer.
const connectTimeout = 10 * time.Second

// Config says which containerd daemon an Executor uses and where it keeps
// its own files.
type Config struct {
	// Address is the path of containerd's gRPC socket. Required.
	Address string
	// Namespace is the containerd namespace holding this node's images
	// and containers; DefaultNamespace when empty. Give every node on a
	// machine its own.
	Namespace string
	// StateDir holds the executor's files: netns/ (task network
	// namespaces), logs/ (task output), fifo/ (the FIFOs task output is
	// read from) and volumes/ (named volumes, kept after their tasks).
	// Required; created if missing.
	StateDir string
	// Runc is the absolute path of the runc binary the shim runs; empty
	// means "runc" from the shim's PATH.
	Runc string
	// Shim is the absolute path of containerd-shim-runc-v2; empty means
	// the daemon's default (io.containerd.runc.v2).
	Shim string
	// InsecureRegistries are registry hosts (host:port) pulled from over
	// plain HTTP instead of HTTPS.
	InsecureRegistries []string
	// LogMaxBytes is the size at which a task's log file is rotated
	// (one rotated file, TASKID.log.1, is kept); DefaultLogMaxBytes when
	// zero. See logs.go.
	LogMaxBytes int64
	// InitPath is the absolute path of a statically linked binary whose
	// `init -- COMMAND...` runs COMMAND as a reaping, signal-forwarding
	// PID 1 (the shoal binary built with CGO_ENABLED=0). Empty: tasks that
	// ask for --init are rejected.
	InitPath string
	// Network, when set, attaches each task's network namespace to the
	// task's networks (see runtime.Network); the container then gets the
	// resolv.conf it returns. Nil leaves tasks with loopback only.
	Network runtime.Network
	// Logger receives the executor's log; slog.Default() when nil.
	Logger *slog.Logger
}

// Executor is a runtime.Executor on containerd. It is safe for concurrent
// use; Close closes its connection to the daemon.
type Executor struct {
	cfg    Config
	client *client.Client
	log    *slog.Logger

	// logs holds the open output captures, by task ID (logs.go).
	logsMu sync.Mutex
	logs   map[string]*taskLog
}

var _ runtime.Executor = (*Executor)(nil)

// New connects to the containerd daemon at cfg.Address and returns an
// executor using cfg.Namespace. It fails (wrapping runtime.ErrTemporary)
// with an error naming the socket when the daemon does not answer within
// 10 s or before ctx ends, and fails when StateDir cannot be made.
func New(ctx context.Context, cfg Config) (*Executor, error) {
	if cfg.Address == "" {
		return nil, errors.New("containerd executor: no containerd socket address")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("containerd executor: no state directory")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, p := range []string{cfg.Runc, cfg.Shim} {
		if p != "" && !filepath.IsAbs(p) {
			return nil, fmt.Errorf("containerd executor: %q is not an absolute path", p)
		}
	}
	abs, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("containerd executor: state directory: %w", err)
	}
	cfg.StateDir = abs
	for _, d := range []string{netnsDir(cfg.StateDir), logsDir(cfg.StateDir), volumesDir(cfg.StateDir), fifoDir(cfg.StateDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("containerd executor: %w", err)
		}
	}
	timeout := connectTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(dl)), time.Millisecond)
	}
	c, err := client.New(cfg.Address, client.WithDefaultNamespace(cfg.Namespace), client.WithTimeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("%w: containerd does not answer on %s: %v", runtime.ErrTemporary, cfg.Address, err)
	}
	vctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := c.Version(vctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: containerd does not answer on %s: %v", runtime.ErrTemporary, cfg.Address, err)
	}
	return &Executor{
		cfg: cfg, client: c, log: cfg.Logger.With("component", "containerd-executor", "namespace", cfg.Namespace),
		logs: map[string]*taskLog{},
	}, nil
}

// Client returns the executor's containerd client (default namespace
// Config.Namespace), for callers that inspect containers themselves.
func (e *Executor) Client() *client.Client { return e.client }

// Close closes the connection to the daemon and stops capturing task
// output (a later executor's controllers attach again on Reattach).
// Containers keep running.
func (e *Executor) Close() error { return errors.Join(e.closeTaskLogs(), e.client.Close()) }

// Describe implements runtime.Executor: the machine's CPU count, memory,
// OS and architecture, its hostname, and the containerd version as the
// engine label "containerd.version".
func (e *Executor) Describe(ctx context.Context) (*api.NodeDescription, error) {
	p := platforms.DefaultSpec()
	d := &api.NodeDescription{
		Platform:  &api.Platform{Os: p.OS, Architecture: p.Architecture},
		Resources: &api.Resources{NanoCpus: int64(goruntime.NumCPU()) * 1e9},
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err == nil {
		d.Resources.MemoryBytes = int64(si.Totalram) * int64(si.Unit)
	}
	if h, err := os.Hostname(); err == nil {
		d.Hostname = h
	}
	v, err := e.client.Version(ctx)
	if err != nil {
		return nil, classify(err, "containerd version")
	}
	d.EngineLabels = map[string]string{"containerd.version": v.Version}
	return d, nil
}

// Controller implements runtime.Executor. It does no work on containerd;
// a task without an ID or a container spec is rejected.
func (e *Executor) Controller(t *api.Task) (runtime.Controller, error) {
	if t.GetId() == "" {
		return nil, fmt.Errorf("%w: task has no ID", runtime.ErrTaskRejected)
	}
	if t.GetSpec().GetContainer().GetImage() == "" {
		return nil, fmt.Errorf("%w: task %s has no container image", runtime.ErrTaskRejected, t.GetId())
	}
	return &Controller{e: e, task: t, id: t.GetId()}, nil
}

// runtimeOpt is the container's runtime: Config.Shim and Config.Runc when
// set, else the daemon's default runc shim.
func (e *Executor) runtimeOpt() client.NewContainerOpts {
	name := "io.containerd.runc.v2"
	if e.cfg.Shim != "" {
		name = e.cfg.Shim
	}
	var opts any
	if e.cfg.Runc != "" {
		opts = &runcoptions.Options{BinaryName: e.cfg.Runc}
	}
	return client.WithRuntime(name, opts)
}

// LogPath returns the file a task's stdout and stderr go to.
func (e *Executor) LogPath(taskID string) string {
	return filepath.Join(logsDir(e.cfg.StateDir), taskID+".log")
}

// NetNSPath returns the path of a task's network namespace (a bind mount
// that exists between Prepare and Remove).
func (e *Executor) NetNSPath(taskID string) string {
	return filepath.Join(netnsDir(e.cfg.StateDir), taskID)
}

func netnsDir(state string) string   { return filepath.Join(state, "netns") }
func logsDir(state string) string    { return filepath.Join(state, "logs") }
func volumesDir(state string) string { return filepath.Join(state, "volumes") }
