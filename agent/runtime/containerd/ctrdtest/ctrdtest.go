// Package ctrdtest runs a private containerd daemon for one test.
//
// Start launches the containerd v2.4.2 daemon that deploy/tools.sh runtime
// installs into $SHOAL_TOOLS_DIR/bin (default /var/cache/shoal/bin), with
// its own root, state and sockets in a fresh temporary folder, and its own
// containerd namespace, so that several daemons (in one test binary or in
// several) can run side by side on one machine. Everything it starts is
// stopped, and the folder removed, when the test ends.
//
// The daemon needs root (it mounts snapshots and runs runc). A missing
// installation fails the test: it is never skipped.
package ctrdtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

const (
	// DefaultToolsDir is where deploy/tools.sh installs tools when
	// SHOAL_TOOLS_DIR is not set.
	DefaultToolsDir = "/var/cache/shoal"

	// startTimeout bounds the wait for the daemon to answer on its socket.
	startTimeout = 20 * time.Second
	// stopGrace is how long the daemon gets after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// reapTimeout bounds the removal of containers a test left behind.
	reapTimeout = 15 * time.Second
	// logTailLines is how many lines of the daemon log a failure shows.
	logTailLines = 40
	// maxSocketPath is the longest unix socket path Linux accepts
	// (sun_path is 108 bytes including the terminating NUL).
	maxSocketPath = 107
)

// Daemon is a running containerd daemon private to one test. Its fields
// are fixed once Start returns.
type Daemon struct {
	// Socket is the absolute path of the daemon's gRPC socket (the
	// address for client.New; ttrpc listens on Socket + ".ttrpc").
	Socket string
	// Namespace is a containerd namespace name unique to this Daemon
	// ("shoaltest-" and random hex). Tests should put everything in it:
	// runc state and cgroup paths are named after namespace and container
	// ID and are shared by every daemon on the machine.
	Namespace string
	// Dir is the daemon's private folder: config, root, state, sockets
	// and log. It is removed at cleanup.
	Dir string
	// LogPath is the daemon's log file (stdout and stderr), inside Dir.
	LogPath string
	// Bin is the folder holding containerd and containerd-shim-runc-v2;
	// it comes first in the daemon's PATH.
	Bin string

	cmd       *exec.Cmd
	done      chan struct{} // closed when the daemon process has exited
	tailShown bool          // Start already showed the log tail
}

// ToolsBin returns the folder that deploy/tools.sh installs binaries into:
// $SHOAL_TOOLS_DIR/bin, or /var/cache/shoal/bin.
func ToolsBin() string {
	dir := os.Getenv("SHOAL_TOOLS_DIR")
	if dir == "" {
		dir = DefaultToolsDir
	}
	return filepath.Join(dir, "bin")
}

// Start starts a private containerd daemon and returns once it answers
// on its socket. It fails the test (t.Fatalf, never t.Skip) when
// containerd, its runc shim or runc is not installed ("containerd is not
// installed: run deploy/tools.sh runtime"), or when the daemon does not
// answer within 20 s; the failure message carries the end of the daemon
// log. At cleanup it logs the end of the daemon log if the test failed,
// kills and deletes the tasks and containers left in Namespace, stops the
// daemon (SIGTERM, then SIGKILL after 5 s; only the process it started),
// removes the empty runc state and cgroup folders named after Namespace,
// and removes Dir.
//
// If the test binary itself dies (a panic, a -timeout), the daemon is
// killed with it (parent death signal), but Dir and any containers it
// ran (with their shims) are left behind.
func Start(t testing.TB) *Daemon {
	t.Helper()
	bin := ToolsBin()
	containerd := filepath.Join(bin, "containerd")
	for _, p := range []string{containerd, filepath.Join(bin, "containerd-shim-runc-v2")} {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			t.Fatalf("containerd is not installed: run deploy/tools.sh runtime (%s missing)", p)
		}
	}
	// The shim runs "runc" from PATH; Debian puts it in /usr/sbin, which
	// a non-login PATH may lack.
	path := strings.Join([]string{bin, os.Getenv("PATH"), "/usr/local/sbin", "/usr/sbin", "/sbin"}, string(os.PathListSeparator))
	if _, err := lookPath("runc", path); err != nil {
		t.Fatalf("containerd is not installed: run deploy/tools.sh runtime (runc not in PATH)")
	}

	dir, err := shortTempDir()
	if err != nil {
		t.Fatalf("ctrdtest: %v", err)
	}
	d := &Daemon{
		Socket:    filepath.Join(dir, "containerd.sock"),
		Namespace: "shoaltest-" + randomHex(6),
		Dir:       dir,
		LogPath:   filepath.Join(dir, "containerd.log"),
		Bin:       bin,
		done:      make(chan struct{}),
	}
	config := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config, []byte(configTOML(dir, d.Socket)), 0o600); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("ctrdtest: write config: %v", err)
	}
	logFile, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("ctrdtest: create log: %v", err)
	}

	cmd := exec.Command(containerd, "--config", config)
	// The daemon looks for the shim in its working folder first, then in
	// PATH: run it in Dir (no shim there) with our bin first in PATH, so
	// an old shim elsewhere (Debian's, in /usr/bin) is never picked.
	cmd.Dir = dir
	cmd.Env = append(withoutEnv(os.Environ(), "PATH"), "PATH="+path)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d.cmd = cmd

	// The parent death signal fires when the forking OS thread exits, so
	// fork from a locked thread that stays alive until the daemon exits.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(d.done)
		defer logFile.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		os.RemoveAll(dir)
		t.Fatalf("ctrdtest: start %s: %v", containerd, err)
	}
	t.Cleanup(func() { d.stop(t) })

	if err := d.waitReady(startTimeout); err != nil {
		d.tailShown = true
		t.Fatalf("ctrdtest: containerd did not become ready: %v\n--- last lines of %s ---\n%s",
			err, d.LogPath, d.LogTail(logTailLines))
	}
	return d
}

// Client returns a client connected to the daemon, with Namespace as its
// default namespace; it is closed when the test ends. It fails the test
// if the client cannot be created.
func (d *Daemon) Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(d.Socket, client.WithDefaultNamespace(d.Namespace))
	if err != nil {
		t.Fatalf("ctrdtest: connect to %s: %v", d.Socket, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Context returns ctx carrying the daemon's Namespace, for calls through
// a client that was not made by Client.
func (d *Daemon) Context(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, d.Namespace)
}

// LogTail returns at most the last n lines of the daemon log.
func (d *Daemon) LogTail(n int) string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// exited reports whether the daemon process has exited.
func (d *Daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitReady polls the socket until Version answers, the daemon exits, or
// the timeout passes.
func (d *Daemon) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	lastErr := errors.New("socket not created")
	for {
		if d.exited() {
			return fmt.Errorf("daemon exited: %v", d.cmd.ProcessState)
		}
		if _, err := os.Stat(d.Socket); err == nil {
			if lastErr = d.ping(time.Until(deadline)); lastErr == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer on %s after %v: %v", d.Socket, timeout, lastErr)
		}
		select {
		case <-d.done:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ping calls Version once, within at most timeout (capped at 2 s).
func (d *Daemon) ping(timeout time.Duration) error {
	timeout = min(max(timeout, 100*time.Millisecond), 2*time.Second)
	c, err := client.New(d.Socket, client.WithTimeout(timeout))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err = c.Version(ctx)
	return err
}

// stop is the cleanup registered by Start.
func (d *Daemon) stop(t testing.TB) {
	if t.Failed() && !d.tailShown {
		t.Logf("ctrdtest: last lines of %s:\n%s", d.LogPath, d.LogTail(logTailLines))
	}
	if !d.exited() {
		if err := d.reap(); err != nil {
			t.Logf("ctrdtest: removing leftover containers: %v", err)
		}
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(stopGrace):
			t.Logf("ctrdtest: containerd (pid %d) ignored SIGTERM for %v: killing it", d.cmd.Process.Pid, stopGrace)
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	}
	removeEmptyDirs(d.Namespace)
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Errorf("ctrdtest: remove %s: %v", d.Dir, err)
	}
}

// reap kills and deletes the tasks and containers left in Namespace, so
// that no shim or container outlives the test.
func (d *Daemon) reap() error {
	ctx, cancel := context.WithTimeout(context.Background(), reapTimeout)
	defer cancel()
	c, err := client.New(d.Socket, client.WithDefaultNamespace(d.Namespace))
	if err != nil {
		return err
	}
	defer c.Close()
	containers, err := c.Containers(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, ctr := range containers {
		if task, err := ctr.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
				errs = append(errs, fmt.Errorf("task %s: %w", ctr.ID(), err))
			}
		}
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", ctr.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// removeEmptyDirs removes the empty folders named after ns that runc and
// the shims leave in fixed places shared by all daemons. Only empty
// folders go (rmdir), and the name is unique to one Daemon.
func removeEmptyDirs(ns string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns))
	dirs = append(dirs, filepath.Join("/sys/fs/cgroup", ns), filepath.Join("/run/containerd/runc", ns))
	for _, dir := range dirs {
		_ = syscall.Rmdir(dir)
	}
}

// configTOML is the version-4 daemon config: private root, state and
// sockets; the CRI and NRI plugins are disabled.
func configTOML(dir, socket string) string {
	return fmt.Sprintf(`version = 4
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime", "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.nri.v1.nri"]

[plugins."io.containerd.server.v1.grpc"]
  address = %q

[plugins."io.containerd.server.v1.ttrpc"]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), socket, socket+".ttrpc")
}

// shortTempDir makes a folder whose socket paths fit in sun_path: under
// $TMPDIR when that is short enough, else under /tmp.
func shortTempDir() (string, error) {
	const longest = "/containerd.sock.ttrpc"
	var firstErr error
	for _, parent := range []string{os.TempDir(), "/tmp"} {
		dir, err := os.MkdirTemp(parent, "ctrd-")
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if abs, err := filepath.Abs(dir); err == nil && len(abs)+len(longest) <= maxSocketPath {
			return abs, nil
		}
		os.RemoveAll(dir)
	}
	if firstErr == nil {
		firstErr = errors.New("temporary folder path too long for a unix socket")
	}
	return "", fmt.Errorf("make daemon folder: %w", firstErr)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// lookPath finds an executable named file in the folders of path.
func lookPath(file, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}
