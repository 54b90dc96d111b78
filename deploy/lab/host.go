package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/local"

	"github.com/shoalhq/shoal/proto/api"
)

// Host is one namespace host of a lab.
type Host struct {
	// Index is the host's number, from 1.
	Index int
	// Name is the node's hostname in the cluster: hN.
	Name string
	// NetNS is the host's network namespace (under /run/netns), and its
	// containerd namespace.
	NetNS string
	// Addr is the host's underlay address.
	Addr string
	// APIAddr is its daemon's API and Raft address, Addr:APIPort.
	APIAddr string
	// Manager tells whether the host was started as a manager.
	Manager bool
	// Dir is the host's folder: data/ (the daemon's), containerd/,
	// daemon.log and containerd.log.
	Dir string
	// Socket is the daemon's API unix socket, reachable from the machine:
	// SHOAL_HOST=unix://SOCKET.
	Socket string
	// ContainerdSocket is the host's containerd socket.
	ContainerdSocket string

	lab        *Lab
	mu         sync.Mutex
	daemon     Proc
	containerd Proc
	conn       *grpc.ClientConn
}

// hostState is a host's part of the lab description.
type hostState struct {
	Name       string `json:"name"`
	NetNS      string `json:"netns"`
	Addr       string `json:"addr"`
	Manager    bool   `json:"manager"`
	Socket     string `json:"socket"`
	Daemon     Proc   `json:"daemon"`
	Containerd Proc   `json:"containerd"`
}

func newHost(l *Lab, n int) *Host {
	dir := filepath.Join(l.Dir, fmt.Sprintf("h%d", n))
	addr := l.hostAddr(n).String()
	return &Host{
		Index:            n,
		Name:             fmt.Sprintf("h%d", n),
		NetNS:            l.hostNS(n),
		Addr:             addr,
		APIAddr:          net.JoinHostPort(addr, strconv.Itoa(APIPort)),
		Manager:          n <= l.Config.Managers,
		Dir:              dir,
		Socket:           filepath.Join(dir, "data", "shoal.sock"),
		ContainerdSocket: filepath.Join(dir, "containerd", "containerd.sock"),
		lab:              l,
	}
}

func (h *Host) state() hostState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return hostState{Name: h.Name, NetNS: h.NetNS, Addr: h.Addr, Manager: h.Manager, Socket: h.Socket, Daemon: h.daemon, Containerd: h.containerd}
}

// DaemonLog and ContainerdLog are the paths of the host's logs.
func (h *Host) DaemonLog() string     { return filepath.Join(h.Dir, "daemon.log") }
func (h *Host) ContainerdLog() string { return filepath.Join(h.Dir, "containerd.log") }

// DaemonPID returns the PID of the host's daemon (0 if none ran).
func (h *Host) DaemonPID() int { h.mu.Lock(); defer h.mu.Unlock(); return h.daemon.PID }

// ContainerdPID returns the PID of the host's containerd (0 if none).
func (h *Host) ContainerdPID() int { h.mu.Lock(); defer h.mu.Unlock(); return h.containerd.PID }

// DaemonRunning reports whether the host's daemon process is alive.
func (h *Host) DaemonRunning() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.daemon.Alive() }

// Conn returns a gRPC connection to the daemon's unix socket, made once
// and kept for the life of the Host.
func (h *Host) Conn() (*grpc.ClientConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn != nil {
		return h.conn, nil
	}
	c, err := grpc.NewClient("unix://"+h.Socket, grpc.WithTransportCredentials(local.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("lab: connect to %s: %w", h.Name, err)
	}
	h.conn = c
	return c, nil
}

// Control returns a Control API client for this host's daemon.
func (h *Host) Control() (api.ControlClient, error) {
	c, err := h.Conn()
	if err != nil {
		return nil, err
	}
	return api.NewControlClient(c), nil
}

// CLI runs `shoal --host unix://SOCKET ARGS...` and returns its combined
// output.
func (h *Host) CLI(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, h.lab.Shoal, append([]string{"--host", "unix://" + h.Socket}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("shoal %s on %s: %w: %s", strings.Join(args, " "), h.Name, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// buildNetwork creates the host's namespace and its link to the underlay.
func (h *Host) buildNetwork() error {
	if err := os.MkdirAll(filepath.Join(h.Dir, "data"), 0o700); err != nil {
		return fmt.Errorf("lab: create host folder: %w", err)
	}
	if err := addNS(h.NetNS); err != nil {
		return err
	}
	ul, port := h.lab.underlayNS(), h.port()
	bits := strconv.Itoa(h.lab.Underlay.Bits())
	for _, args := range [][]string{
		{"-n", ul, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NetNS},
		{"-n", ul, "link", "set", port, "master", "br0", "up"},
		{"-n", h.NetNS, "addr", "add", h.Addr + "/" + bits, "dev", "eth0"},
		{"-n", h.NetNS, "link", "set", "eth0", "up"},
	} {
		if err := ip(args...); err != nil {
			return err
		}
	}
	return nil
}

// port is the name of the host's port on the underlay bridge.
func (h *Host) port() string { return fmt.Sprintf("u%d", h.Index) }

// startContainerd starts the host's containerd and waits until it answers.
func (h *Host) startContainerd(ctx context.Context) error {
	dir := filepath.Join(h.Dir, "containerd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(containerdConfig(dir, h.ContainerdSocket)), 0o644); err != nil {
		return err
	}
	_ = os.Remove(h.ContainerdSocket)
	// The shim is looked up in the working folder, then PATH: the tools
	// folder goes first, so that no other shim on the machine is taken.
	env := append(withoutEnv(os.Environ(), "PATH"), "PATH="+h.lab.ToolsBin+":"+os.Getenv("PATH"))
	p, err := spawn(h.NetNS, h.ContainerdLog(), dir, env, filepath.Join(h.lab.ToolsBin, "containerd"), "--config", cfgPath)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.containerd = p
	h.mu.Unlock()
	if err := h.lab.save(); err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, "containerd on "+h.Name, h.ContainerdLog(), p, func() bool {
		c, err := net.DialTimeout("unix", h.ContainerdSocket, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// containerdConfig is a version-4 config with private root, state and
// sockets; CRI and NRI are off.
func containerdConfig(dir, socket string) string {
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

// daemonArgs returns the `shoal daemon` command line; join holds
// --init or --join ADDR --token T on a first start, nothing after.
func (h *Host) daemonArgs(join []string) []string {
	l := h.lab
	args := []string{l.Shoal, "daemon",
		"--data-dir", filepath.Join(h.Dir, "data"),
		"--listen-addr", h.APIAddr,
		"--hostname", h.Name,
		"--log-level", l.LogLevel,
		"--runtime", l.Runtime,
	}
	if l.Runtime == RuntimeContainerd {
		args = append(args, "--containerd", h.ContainerdSocket, "--containerd-namespace", h.NetNS)
	}
	if l.RegistryAddr != "" {
		args = append(args, "--insecure-registry", l.RegistryAddr)
	}
	if l.HeartbeatPeriod > 0 {
		args = append(args, "--heartbeat-period", l.HeartbeatPeriod.String())
	}
	args = append(args, l.DaemonArgs...)
	return append(args, join...)
}

// startDaemon starts `shoal daemon` in the host's namespace and waits
// until it serves. join is as for daemonArgs.
func (h *Host) startDaemon(ctx context.Context, join ...string) error {
	var offset int64
	if fi, err := os.Stat(h.DaemonLog()); err == nil {
		offset = fi.Size()
	}
	p, err := spawn(h.NetNS, h.DaemonLog(), h.Dir, nil, h.daemonArgs(join)...)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.daemon = p
	h.mu.Unlock()
	if err := h.lab.save(); err != nil {
		return err
	}
	return waitFor(ctx, 60*time.Second, "shoal daemon on "+h.Name, h.DaemonLog(), p, func() bool {
		b, _ := os.ReadFile(h.DaemonLog())
		return int64(len(b)) > offset && bytes.Contains(b[offset:], []byte("is serving on"))
	})
}

// waitFor polls ready until it holds, p exits, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what, logPath string, p Proc, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ready() {
		if !p.Alive() {
			return fmt.Errorf("lab: %s exited during start; last lines of %s:\n%s", what, logPath, tail(logPath, 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s not ready within %s; see %s", what, timeout, logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Tail returns the last n lines of the host's daemon log.
func (h *Host) Tail(n int) string { return tail(h.DaemonLog(), n) }

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// powerOff kills the host's daemon, containerd, its shims and containers,
// and unmounts what they left below the host's folder.
func (h *Host) powerOff() error {
	h.mu.Lock()
	daemon, ctrd := h.daemon, h.containerd
	h.mu.Unlock()
	var errs []error
	if err := daemon.Terminate(syscall.SIGKILL, 0); err != nil {
		errs = append(errs, err)
	}
	if err := ctrd.Terminate(syscall.SIGKILL, 0); err != nil {
		errs = append(errs, err)
	}
	// Shims run in sessions of their own, named by their containerd
	// namespace; containers sit in cgroups named after it.
	for _, pid := range processesMatching("-namespace", h.NetNS) {
		if p, err := procOf(pid); err == nil {
			_ = p.Terminate(syscall.SIGKILL, 0)
		}
	}
	killCgroupTree(h.NetNS)
	_ = syscall.Rmdir(filepath.Join("/run/containerd/runc", h.NetNS))
	unmountUnder(h.Dir)
	return errors.Join(errs...)
}

// procOf names the running process pid.
func procOf(pid int) (Proc, error) {
	start, _, err := startTime(pid)
	return Proc{PID: pid, Start: start}, err
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
