package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// shoalBin is the daemon binary the test labs run, built once.
var shoalBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shoal-lab-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shoalBin = filepath.Join(dir, "shoal")
	build := exec.Command("go", "build", "-o", shoalBin, "../../cmd/shoal")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build shoal:", err)
		os.Exit(1)
	}
	if _, err := Sweep(testBase, testPrefix); err != nil {
		fmt.Fprintln(os.Stderr, "sweep leftovers:", err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	testBase   = "/tmp/shoal-labtest"
	testPrefix = "lt"
)

func toolsBin() string {
	if d := os.Getenv("SHOAL_TOOLS_DIR"); d != "" {
		return filepath.Join(d, "bin")
	}
	return "/var/cache/shoal/bin"
}

func testConfig(t *testing.T, hosts, managers int, runtime string) Config {
	b := make([]byte, 4)
	rand.Read(b)
	name := testPrefix + hex.EncodeToString(b)
	cfg := Config{
		Name: name, Dir: filepath.Join(testBase, name), Hosts: hosts, Managers: managers,
		Shoal: shoalBin, ToolsBin: toolsBin(), Runtime: runtime, LogLevel: "debug",
		HeartbeatPeriod: 500 * time.Millisecond,
	}
	if err := cfg.SetOwner(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func upLab(t *testing.T, cfg Config) *Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := Up(ctx, cfg, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range l.Hosts {
				t.Logf("---- %s (%s) ----\n%s", h.Name, h.DaemonLog(), h.Tail(40))
			}
		}
		if err := l.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	return l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Logf("%s", p); return len(p), nil }

// reachable reports whether host h's API port accepts a connection from
// the underlay.
func reachable(l *Lab, h *Host) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c, err := l.DialContext(ctx, "tcp", h.APIAddr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func poll(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nodeState(t *testing.T, l *Lab, name string) api.NodeState {
	c, err := l.Host(1).Control()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := c.ListNodes(ctx, &api.ListNodesRequest{})
	if err != nil {
		return api.NodeState_NODE_STATE_UNKNOWN
	}
	for _, n := range resp.GetNodes() {
		if n.GetDescription().GetHostname() == name {
			return n.GetStatus().GetState()
		}
	}
	return api.NodeState_NODE_STATE_UNKNOWN
}

// TestLabFaults builds three containerd hosts and drives every fault:
// partition and heal, kill and start, freeze and continue.
func TestLabFaults(t *testing.T) {
	l := upLab(t, testConfig(t, 3, 1, RuntimeContainerd))
	for _, h := range l.Hosts {
		if !reachable(l, h) {
			t.Fatalf("%s (%s) unreachable from the underlay", h.Name, h.APIAddr)
		}
	}
	h3 := l.Host(3)

	if err := h3.Partition(); err != nil {
		t.Fatal(err)
	}
	if reachable(l, h3) {
		t.Fatal("partitioned host still reachable")
	}
	poll(t, 10*time.Second, "partitioned node DOWN", func() bool { return nodeState(t, l, "h3") == api.NodeState_NODE_STATE_DOWN })
	if err := h3.Heal(); err != nil {
		t.Fatal(err)
	}
	if p, err := h3.Partitioned(); err != nil || p {
		t.Fatalf("after heal: partitioned=%v err=%v", p, err)
	}
	poll(t, 10*time.Second, "healed node READY", func() bool { return nodeState(t, l, "h3") == api.NodeState_NODE_STATE_READY })

	ctrdPID := h3.ContainerdPID()
	if err := h3.Kill(); err != nil {
		t.Fatal(err)
	}
	if h3.DaemonRunning() || (Proc{PID: ctrdPID}).Alive() {
		t.Fatal("daemon or containerd still running after Kill")
	}
	if reachable(l, h3) {
		t.Fatal("killed host reachable")
	}
	poll(t, 10*time.Second, "killed node DOWN", func() bool { return nodeState(t, l, "h3") == api.NodeState_NODE_STATE_DOWN })
	if err := h3.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitReady(context.Background(), 20*time.Second); err != nil {
		t.Fatal(err)
	}

	if err := h3.StopDaemon(); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "frozen node DOWN", func() bool { return nodeState(t, l, "h3") == api.NodeState_NODE_STATE_DOWN })
	if err := h3.ContinueDaemon(); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "continued node READY", func() bool { return nodeState(t, l, "h3") == api.NodeState_NODE_STATE_READY })
}

// TestSweepRemovesLabOfExitedOwner leaves a lab whose owner has exited
// and checks that Sweep removes its processes, namespaces and folder.
func TestSweepRemovesLabOfExitedOwner(t *testing.T) {
	cfg := testConfig(t, 2, 1, RuntimeSimulated)
	cfg.NoRegistry = true
	owner := exec.Command("true")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	pid := owner.Process.Pid
	start, _, err := startTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Owner, cfg.OwnerStart = pid, start
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := Up(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Down()
	owner.Wait()
	daemon := l.Host(1).daemonProc()

	removed, err := Sweep(testBase, testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != cfg.Name {
		t.Fatalf("removed %v, want [%s]", removed, cfg.Name)
	}
	if daemon.Alive() {
		t.Error("daemon of the swept lab still runs")
	}
	for _, ns := range []string{cfg.hostNS(1), cfg.hostNS(2), cfg.underlayNS()} {
		if nsExists(ns) {
			t.Errorf("namespace %s still exists", ns)
		}
	}
	if _, err := os.Stat(cfg.Dir); !os.IsNotExist(err) {
		t.Errorf("folder %s still there (%v)", cfg.Dir, err)
	}
}

// TestDialIn checks that a connection made in a namespace stays there.
func TestDialIn(t *testing.T) {
	cfg := testConfig(t, 1, 1, RuntimeSimulated)
	cfg.NoRegistry = true
	l := upLab(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := l.DialContext(ctx, "tcp", l.Host(1).APIAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
