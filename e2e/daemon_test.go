package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/local"

	"github.com/shoalhq/shoal/proto/api"
)

// daemon is one `shoal daemon` process on a loopback port.
type daemon struct {
	t       *testing.T
	name    string
	dir     string
	addr    string
	logPath string
	// logOffset is the log's size when the current run started.
	logOffset int64
	cmd       *exec.Cmd
	exited    chan struct{}
	conn      *grpc.ClientConn
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newDaemon(t *testing.T, name string) *daemon {
	d := &daemon{t: t, name: name, dir: t.TempDir(), addr: freePort(t)}
	d.logPath = filepath.Join(d.dir, "daemon.log")
	t.Cleanup(func() {
		d.kill()
		// A killed daemon leaves its tasks' network namespaces mounted
		// under its data dir: unmount them so the dir can be removed.
		unmountUnder(d.dir)
		if d.conn != nil {
			d.conn.Close()
		}
		if t.Failed() {
			b, _ := os.ReadFile(d.logPath)
			t.Logf("---- log of %s (%s) ----\n%s", d.name, d.logPath, lastLines(string(b), 60))
		}
	})
	return d
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// start runs the daemon with extra flags and waits until its API answers.
func (d *daemon) start(extra ...string) {
	d.t.Helper()
	args := append([]string{"daemon", "--data-dir", d.dir, "--listen-addr", d.addr, "--hostname", d.name,
		"--heartbeat-period", "500ms", "--log-level", "debug"}, extra...)
	if !slices.Contains(extra, "--runtime") {
		// Control-plane tests need no containers.
		args = append(args, "--runtime", "simulated")
	}
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	// The log is appended to across restarts: only lines after this
	// offset tell that this run is serving.
	if st, err := logf.Stat(); err == nil {
		d.logOffset = st.Size()
	}
	d.cmd = exec.Command(shoalBin, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start %s: %v", d.name, err)
	}
	d.exited = make(chan struct{})
	go func() { d.cmd.Wait(); logf.Close(); close(d.exited) }()
	if d.conn == nil {
		d.conn, err = grpc.NewClient(d.sock(), grpc.WithTransportCredentials(local.NewCredentials()))
		if err != nil {
			d.t.Fatal(err)
		}
	}
	d.waitServing(30 * time.Second)
}

// waitServing polls the node's unix socket file and TCP port.
func (d *daemon) waitServing(timeout time.Duration) {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			b, _ := os.ReadFile(d.logPath)
			d.t.Fatalf("%s exited during start:\n%s", d.name, lastLines(string(b), 30))
		default:
		}
		if b, _ := os.ReadFile(d.logPath); int64(len(b)) > d.logOffset && bytes.Contains(b[d.logOffset:], []byte("is serving on")) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("%s not serving within %s", d.name, timeout)
}

// kill sends SIGKILL and waits for the process to end.
func (d *daemon) kill() { d.signal(syscall.SIGKILL) }

// stop sends SIGTERM and waits for the process to end.
func (d *daemon) stop() { d.signal(syscall.SIGTERM) }

func (d *daemon) signal(sig syscall.Signal) {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

func (d *daemon) control() api.ControlClient { return api.NewControlClient(d.conn) }

// sock is the daemon's local API socket as --host takes it (the TCP port
// needs a client certificate).
func (d *daemon) sock() string { return "unix://" + filepath.Join(d.dir, "shoal.sock") }

// tcpCLI runs the shoal command line against this daemon's TCP port, as
// an admin client: the first call has the node issue the client
// certificate (through its local socket) into the test's folder.
func (d *daemon) tcpCLI(args ...string) (string, error) {
	d.t.Helper()
	certs := filepath.Join(d.dir, "admin-certs")
	if _, err := os.Stat(filepath.Join(certs, "cert.pem")); err != nil {
		if out, err := d.cli("cluster", "ca", "issue-client", "--name", "e2e-admin", "--out", certs); err != nil {
			d.t.Fatalf("issue a client certificate: %v\n%s", err, out)
		}
	}
	return runShoal(60*time.Second, append([]string{"--host", d.addr,
		"--tlscacert", filepath.Join(certs, "ca.pem"), "--tlscert", filepath.Join(certs, "cert.pem"), "--tlskey", filepath.Join(certs, "key.pem")}, args...)...)
}

// cli runs the shoal command line against this daemon.
func (d *daemon) cli(args ...string) (string, error) {
	cmd := exec.Command(shoalBin, append([]string{"--host", d.sock()}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// poll calls f until it returns nil or the deadline passes.
func poll(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
}

func ctxT(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func svcSpec(name string) *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "registry.test:5000/web:v1"}},
		Mode:        &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 2}}},
	}
}

// runShoal runs the binary to completion (bounded) and returns its output.
func runShoal(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := ctxT(timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, shoalBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// unmountUnder detaches every mount below dir (lazily), as a killed
// daemon leaves its tasks' network namespace bind mounts behind.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
}
