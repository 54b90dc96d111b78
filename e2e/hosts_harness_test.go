package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/deploy/lab"
	"github.com/shoalhq/shoal/proto/api"
)

// Multi-host tests run each on a lab of their own: hosts as network
// namespaces, each with a containerd and a `shoal daemon`.
const (
	// labBase holds one folder per lab; labs whose test process has
	// exited are swept at the start of the next run.
	labBase = "/tmp/shoal-e2e"
	// labPrefix starts every lab name (and so every namespace name).
	labPrefix = "e2e"
	// keepEnv, when set to 1, keeps the hosts of a failed test up for
	// inspection (until the next run sweeps them).
	keepEnv = "SHOAL_E2E_KEEP"
	// labHeartbeat is the agents' heartbeat period in labs: a node is
	// DOWN after missing heartbeatGrace of them.
	labHeartbeat   = 500 * time.Millisecond
	heartbeatGrace = 3
)

var (
	labsMu sync.Mutex
	labs   = map[*lab.Lab]bool{}
)

// sweepAndTrap removes what crashed runs left behind and tears down the
// running labs on SIGINT or SIGTERM. Called from TestMain.
func sweepAndTrap() {
	if removed, err := lab.Sweep(labBase, labPrefix); err != nil || len(removed) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: removed leftover labs %v (errors: %v)\n", removed, err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		labsMu.Lock()
		for l := range labs {
			_ = l.Down()
		}
		fmt.Fprintf(os.Stderr, "e2e: %v: labs torn down\n", s)
		os.Exit(1)
	}()
}

var (
	labImagesOnce sync.Once
	labImages     map[string]*images.Image
	labImagesErr  error
)

// buildLabImages builds the images every lab gets, once per run.
func buildLabImages() (map[string]*images.Image, error) {
	labImagesOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		labImages = map[string]*images.Image{}
		for _, v := range []string{"v1", "v2"} {
			img, err := images.Build(ctx, images.BuildOptions{
				Ref: "registry.test:5000/web:" + v, Programs: []string{"echo"}, Version: v,
				Entrypoint: []string{"/bin/echo"}, ExposedPorts: []string{"80/tcp"},
			})
			if err != nil {
				labImagesErr = err
				return
			}
			labImages["web:"+v] = img
		}
		// web:bad answers as "bad" but its health check never passes:
		// /healthz fails while $UNHEALTHY_FILE exists.
		img, err := images.Build(ctx, images.BuildOptions{
			Ref: "registry.test:5000/web:bad", Programs: []string{"echo"}, Version: "bad",
			Entrypoint: []string{"/bin/echo"}, ExposedPorts: []string{"80/tcp"}, Env: []string{"UNHEALTHY_FILE=/bin/echo"},
			Healthcheck: &images.Healthcheck{Test: []string{"CMD", "/bin/echo", "probe"}, Interval: 200 * time.Millisecond, Retries: 3},
		})
		if err != nil {
			labImagesErr = err
			return
		}
		labImages["web:bad"] = img
	})
	return labImages, labImagesErr
}

// cluster is a lab under test.
type cluster struct {
	*lab.Lab
	t testing.TB
}

// newCluster builds a lab of hosts hosts, the first managers of them
// managers, with the web:v1, web:v2 and web:bad (never healthy) images
// in its registry.
func newCluster(t testing.TB, hosts, managers int) *cluster {
	t.Helper()
	return newClusterWith(t, hosts, managers, nil)
}

// newClusterWith is newCluster with extra flags for every daemon.
func newClusterWith(t testing.TB, hosts, managers int, daemonArgs []string) *cluster {
	t.Helper()
	imgs, err := buildLabImages()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	rand.Read(b)
	name := labPrefix + hex.EncodeToString(b)
	tools := os.Getenv("SHOAL_TOOLS_DIR")
	if tools == "" {
		tools = "/var/cache/shoal"
	}
	cfg := lab.Config{
		Name: name, Dir: filepath.Join(labBase, name), Hosts: hosts, Managers: managers,
		Shoal: shoalBin, ToolsBin: filepath.Join(tools, "bin"), LogLevel: "debug",
		HeartbeatPeriod: labHeartbeat, DaemonArgs: daemonArgs,
	}
	if err := cfg.SetOwner(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := lab.Up(ctx, cfg, logWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	labsMu.Lock()
	labs[l] = true
	labsMu.Unlock()
	c := &cluster{Lab: l, t: t}
	t.Cleanup(c.cleanup)
	reg := l.Registry()
	for ref, img := range imgs {
		if _, err := reg.Push(ctx, img, c.ref(ref)); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
	}
	t.Logf("lab %s: %d hosts (%d managers) up in %s; folder %s", name, hosts, managers, time.Since(start).Round(time.Millisecond), cfg.Dir)
	return c
}

func (c *cluster) cleanup() {
	t := c.t
	labsMu.Lock()
	delete(labs, c.Lab)
	labsMu.Unlock()
	if t.Failed() {
		for _, h := range c.Hosts {
			t.Logf("---- %s: last lines of %s ----\n%s", h.Name, h.DaemonLog(), h.Tail(40))
		}
		t.Logf("logs of every daemon and containerd: %s/h*/", c.Dir)
		if os.Getenv(keepEnv) == "1" {
			t.Logf("%s=1: hosts kept up. Talk to them with SHOAL_HOST=unix://%s; "+
				"enter one with `ip netns exec %s bash`; the next e2e run removes them", keepEnv, c.Host(1).Socket, c.Host(1).NetNS)
			return
		}
	}
	if err := c.Down(); err != nil {
		t.Errorf("tear down lab %s: %v", c.Name, err)
	}
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ref returns the registry reference of NAME:TAG in the lab's registry.
func (c *cluster) ref(nameTag string) string { return c.RegistryAddr + "/" + nameTag }

// manager returns a manager host whose daemon runs and that is not
// partitioned, preferring the leader.
func (c *cluster) manager() *lab.Host {
	if l := c.leader(); l != nil {
		return l
	}
	for _, h := range c.ManagerHosts() {
		if c.usable(h) {
			return h
		}
	}
	c.t.Fatal("no usable manager")
	return nil
}

func (c *cluster) usable(h *lab.Host) bool {
	if !h.DaemonRunning() {
		return false
	}
	p, err := h.Partitioned()
	return err == nil && !p
}

// leader returns the host whose daemon a usable manager names as leader,
// or nil.
func (c *cluster) leader() *lab.Host {
	for _, h := range c.ManagerHosts() {
		if !c.usable(h) {
			continue
		}
		nodes, err := c.nodesVia(h)
		if err != nil {
			continue
		}
		for _, n := range nodes {
			if n.GetManagerStatus().GetLeader() {
				if lh := c.hostNamed(n.GetDescription().GetHostname()); lh != nil && c.usable(lh) {
					return lh
				}
			}
		}
	}
	return nil
}

// confirmsLeadership reports whether h's manager is the Raft leader and
// confirms it with a quorum (Raft.ReadIndex answers only on the leader).
func (c *cluster) confirmsLeadership(h *lab.Host) bool {
	conn, err := h.Conn()
	if err != nil {
		return false
	}
	ctx, cancel := ctxT(300 * time.Millisecond)
	defer cancel()
	_, err = api.NewRaftClient(conn).ReadIndex(ctx, &api.ReadIndexRequest{})
	return err == nil
}

func (c *cluster) hostNamed(name string) *lab.Host {
	for _, h := range c.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

func (c *cluster) nodesVia(h *lab.Host) ([]*api.Node, error) {
	cc, err := h.Control()
	if err != nil {
		return nil, err
	}
	ctx, cancel := ctxT(3 * time.Second)
	defer cancel()
	resp, err := cc.ListNodes(ctx, &api.ListNodesRequest{})
	return resp.GetNodes(), err
}

// control returns a Control client of a usable manager.
func (c *cluster) control() api.ControlClient {
	cc, err := c.manager().Control()
	if err != nil {
		c.t.Fatal(err)
	}
	return cc
}

// nodeHosts maps node IDs to host names.
func (c *cluster) nodeHosts() (map[string]string, error) {
	nodes, err := c.nodesVia(c.manager())
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, n := range nodes {
		m[n.GetId()] = n.GetDescription().GetHostname()
	}
	return m, nil
}

// nodeState returns the state of the node named host.
func (c *cluster) nodeState(host string) (api.NodeState, error) {
	nodes, err := c.nodesVia(c.manager())
	if err != nil {
		return 0, err
	}
	for _, n := range nodes {
		if n.GetDescription().GetHostname() == host {
			return n.GetStatus().GetState(), nil
		}
	}
	return 0, fmt.Errorf("no node %s", host)
}

// waitNodeState waits until the node named host is in state want.
func (c *cluster) waitNodeState(host string, want api.NodeState, timeout time.Duration) {
	c.t.Helper()
	poll(c.t, timeout, fmt.Sprintf("node %s %v", host, want), func() error {
		st, err := c.nodeState(host)
		if err == nil && st != want {
			err = fmt.Errorf("node is %v", st)
		}
		return err
	})
}

// createService creates a replicated service of the given image and
// replicas, without waiting.
func (c *cluster) createService(name, image string, replicas uint64) *api.Service {
	c.t.Helper()
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: c.ref(image)}},
		Mode:        &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: replicas}}},
	}
	resp, err := c.control().CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		c.t.Fatalf("create service %s: %v", name, err)
	}
	return resp.GetService()
}

// running returns the service's tasks that are RUNNING and meant to run,
// by task ID.
func (c *cluster) running(serviceID string) (map[string]*api.Task, error) {
	ctx, cancel := ctxT(3 * time.Second)
	defer cancel()
	cc, err := c.manager().Control()
	if err != nil {
		return nil, err
	}
	resp, err := cc.ListTasks(ctx, &api.ListTasksRequest{ServiceIds: []string{serviceID}})
	if err != nil {
		return nil, err
	}
	out := map[string]*api.Task{}
	for _, t := range resp.GetTasks() {
		if t.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING && t.GetDesiredState() == api.TaskState_TASK_STATE_RUNNING {
			out[t.GetId()] = t
		}
	}
	return out, nil
}

// waitRunning waits until exactly n tasks of the service run, one per
// slot, and returns them.
func (c *cluster) waitRunning(serviceID string, n int, timeout time.Duration) map[string]*api.Task {
	c.t.Helper()
	var tasks map[string]*api.Task
	poll(c.t, timeout, fmt.Sprintf("%d tasks running", n), func() error {
		var err error
		if tasks, err = c.running(serviceID); err != nil {
			return err
		}
		if len(tasks) != n {
			return fmt.Errorf("%d running", len(tasks))
		}
		return checkSlots(tasks)
	})
	return tasks
}

// checkSlots fails when two running tasks share a slot (a node, for
// global tasks).
func checkSlots(tasks map[string]*api.Task) error {
	seen := map[string]string{}
	for id, t := range tasks {
		slot := fmt.Sprintf("slot %d", t.GetSlot())
		if t.GetSlot() == 0 { // a global task: its node is its slot
			slot = "node " + t.GetNodeId()
		}
		if other, ok := seen[slot]; ok {
			return fmt.Errorf("%s runs twice: tasks %s and %s", slot, other, id)
		}
		seen[slot] = id
	}
	return nil
}

// containers returns the IDs of the containers whose task runs in the
// host's containerd (container IDs are task IDs).
func (c *cluster) containers(h *lab.Host) (map[string]bool, error) {
	cl, err := client.New(h.ContainerdSocket, client.WithTimeout(2*time.Second))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, h.NetNS)
	list, err := cl.Containers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, ctr := range list {
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			continue
		}
		st, err := task.Status(ctx)
		if err == nil && st.Status == client.Running {
			out[ctr.ID()] = true
		}
	}
	return out, nil
}

// runningContainers returns the running containers of every host whose
// containerd answers, by host name.
func (c *cluster) runningContainers() (map[string]map[string]bool, error) {
	out := map[string]map[string]bool{}
	for _, h := range c.Hosts {
		ids, err := c.containers(h)
		if err != nil {
			continue // a killed host: nothing runs there
		}
		out[h.Name] = ids
	}
	return out, nil
}

// checkContainersMatch fails unless the running containers across the
// hosts are exactly the given tasks, each on its task's node.
func (c *cluster) checkContainersMatch(tasks map[string]*api.Task) error {
	hosts, err := c.nodeHosts()
	if err != nil {
		return err
	}
	ctrs, err := c.runningContainers()
	if err != nil {
		return err
	}
	var extra []string
	for host, ids := range ctrs {
		for id := range ids {
			t, ok := tasks[id]
			if !ok {
				extra = append(extra, host+"/"+id)
				continue
			}
			if hosts[t.GetNodeId()] != host {
				return fmt.Errorf("task %s runs on %s, but the store places it on %s", id, host, hosts[t.GetNodeId()])
			}
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("containers running that are no running task: %v", extra)
	}
	for id, t := range tasks {
		if !ctrs[hosts[t.GetNodeId()]][id] {
			return fmt.Errorf("task %s is RUNNING on %s but has no running container there", id, hosts[t.GetNodeId()])
		}
	}
	return nil
}

// perHost counts tasks by host name.
func (c *cluster) perHost(tasks map[string]*api.Task) map[string]int {
	hosts, err := c.nodeHosts()
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]int{}
	for _, t := range tasks {
		out[hosts[t.GetNodeId()]]++
	}
	return out
}
