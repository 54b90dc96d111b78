// Package integration runs whole clusters in one process for tests and
// benchmarks: real managers (gRPC and Raft over loopback TCP, bbolt on
// disk) and real agents with the simulated executor, so behaviour that
// spans the orchestrator, placement, the dispatcher and the agents is
// tested without containers, at scales no machine could hold with real
// ones.
package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/shoalhq/shoal/agent"
	"github.com/shoalhq/shoal/agent/runtime/simulated"
	"github.com/shoalhq/shoal/manager"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// Options shape a Cluster.
type Options struct {
	Managers int
	Agents   int
	// HeartbeatPeriod is written into the cluster spec (grace = 3 periods).
	HeartbeatPeriod time.Duration
	// InMemoryAgents keeps agents' assignments in memory (scale runs);
	// otherwise each agent has a worker.db in a temporary directory.
	InMemoryAgents bool
	// Simulated configures every agent's executor.
	Simulated simulated.Config
}

// Agent is one simulated node.
type Agent struct {
	ID       string
	Hostname string
	Dir      string
	Exec     *simulated.Executor
	Creds    *ca.Credentials
	agent    *agent.Agent
	cancel   context.CancelFunc
	done     chan error
	managers []string
	opts     Options
}

// Cluster is managers plus agents in this process.
type Cluster struct {
	t        testing.TB
	Managers *manager.TestManagers
	Agents   []*Agent
	opts     Options
	admin    *ca.Credentials
	mu       sync.Mutex
	conns    map[string]*grpc.ClientConn
}

// Start brings up the managers, sets the heartbeat period, joins and
// starts the agents, and waits until every node is READY. Everything
// stops when the test ends.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: opts, conns: map[string]*grpc.ClientConn{}}
	c.Managers = manager.StartTestManagers(t, opts.Managers)
	c.admin = c.Managers.Admin()
	t.Cleanup(c.stop)
	c.Managers.WaitForLeader(10 * time.Second)
	if opts.HeartbeatPeriod > 0 {
		c.setHeartbeat(opts.HeartbeatPeriod)
	}
	// Managers run no agent here: drain them so nothing is placed there.
	for _, m := range c.Managers.Managers {
		c.drain(m.NodeID())
	}
	for i := 0; i < opts.Agents; i++ {
		c.Agents = append(c.Agents, c.startAgent(fmt.Sprintf("node-%03d", i)))
	}
	c.WaitFor(60*time.Second, "all nodes ready", func() error {
		resp, err := c.Control().ListNodes(context.Background(), &api.ListNodesRequest{})
		if err != nil {
			return err
		}
		ready := 0
		for _, n := range resp.Nodes {
			if n.GetRole() == api.NodeRole_NODE_ROLE_WORKER && n.GetStatus().GetState() == api.NodeState_NODE_STATE_READY {
				ready++
			}
		}
		if want := opts.Agents; ready < want {
			return fmt.Errorf("%d of %d nodes ready", ready, want)
		}
		return nil
	})
	return c
}

// managerAddrs lists the live managers' addresses.
func (c *Cluster) managerAddrs() []string {
	var out []string
	for _, m := range c.Managers.Managers {
		if m != nil {
			out = append(out, m.Addr)
		}
	}
	return out
}

// Conn returns a cached client connection to addr, as an admin client.
func (c *Cluster) Conn(addr string) *grpc.ClientConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[addr]; ok {
		return cc
	}
	cc, err := manager.Dialer(c.admin, ca.ExpectManager)(addr)
	if err != nil {
		c.t.Fatalf("dial %s: %v", addr, err)
	}
	c.conns[addr] = cc
	return cc
}

// Control returns a Control client of the current leader (any manager
// would do; the leader avoids a forwarding hop).
func (c *Cluster) Control() api.ControlClient {
	l := c.Managers.WaitForLeader(10 * time.Second)
	return api.NewControlClient(c.Conn(l.Addr))
}

func (c *Cluster) setHeartbeat(p time.Duration) {
	c.WaitFor(10*time.Second, "set heartbeat period", func() error {
		cc := c.Control()
		info, err := cc.GetClusterInfo(context.Background(), &api.GetClusterInfoRequest{})
		if err != nil {
			return err
		}
		spec := info.Cluster.Spec
		period := int64(p)
		spec.HeartbeatPeriod = &period
		_, err = cc.UpdateCluster(context.Background(), &api.UpdateClusterRequest{ClusterId: info.Cluster.Id, Version: info.Cluster.Meta.Version, Spec: spec})
		return err
	})
}

// drain sets a node's availability to DRAIN.
func (c *Cluster) drain(id string) {
	c.WaitFor(10*time.Second, "drain "+id, func() error {
		cc := c.Control()
		n, err := cc.GetNode(context.Background(), &api.GetNodeRequest{NodeId: id})
		if err != nil {
			return err
		}
		spec := n.Node.Spec
		spec.Availability = api.NodeAvailability_NODE_AVAILABILITY_DRAIN
		_, err = cc.UpdateNode(context.Background(), &api.UpdateNodeRequest{NodeId: id, Version: n.Node.Meta.Version, Spec: spec})
		return err
	})
}

// startAgent joins a new worker and runs its agent.
func (c *Cluster) startAgent(hostname string) *Agent {
	c.t.Helper()
	a := &Agent{Hostname: hostname, opts: c.opts}
	if !c.opts.InMemoryAgents {
		a.Dir = c.t.TempDir()
	}
	l := c.Managers.WaitForLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, creds, err := manager.JoinCluster(ctx, l.Addr, c.Managers.Tokens.Worker, "", &api.JoinRequest{
		Addr: "127.0.0.1:1", Description: a.description(),
	})
	if err != nil {
		c.t.Fatalf("join %s: %v", hostname, err)
	}
	a.ID, a.Creds = resp.NodeId, creds
	a.managers = c.managerAddrs()
	a.run(simulated.New(c.opts.Simulated))
	return a
}

func (a *Agent) description() *api.NodeDescription {
	return &api.NodeDescription{Hostname: a.Hostname, Platform: &api.Platform{Os: "linux", Architecture: "amd64"}}
}

// run starts the agent with exec as its runtime.
func (a *Agent) run(exec *simulated.Executor) {
	a.Exec = exec
	a.agent = agent.New(agent.Config{
		NodeID:      a.ID,
		Addr:        "127.0.0.1:1",
		Description: a.description(),
		Managers:    a.managers,
		Dial:        manager.Dialer(a.Creds, ca.ExpectManager),
		Executor:    exec,
		StateDir:    a.Dir,
		Period:      a.opts.HeartbeatPeriod,
	})
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.done = make(chan error, 1)
	go func() { a.done <- a.agent.Run(ctx) }()
}

// Stop ends the agent (its simulated containers keep running, as real
// ones outlive their agent).
func (a *Agent) Stop() {
	if a.cancel == nil {
		return
	}
	a.cancel()
	<-a.done
	a.cancel = nil
}

// Restart stops the agent and starts a new one on the same state
// directory with a fresh executor that keeps the old one's containers
// (an agent process restart on a host whose containers live on).
func (a *Agent) Restart() {
	a.Stop()
	a.run(a.Exec)
}

// Kill stops the agent for good: the host is gone.
func (a *Agent) Kill() { a.Stop() }

// Alive reports whether the agent runs.
func (a *Agent) Alive() bool { return a.cancel != nil }

// WaitFor polls f until it returns nil or fails the test after timeout.
func (c *Cluster) WaitFor(timeout time.Duration, what string, f func() error) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("%s: not within %s: %v", what, timeout, err)
}

// Tasks returns a service's tasks from the leader.
func (c *Cluster) Tasks(serviceID string) ([]*api.Task, error) {
	resp, err := c.Control().ListTasks(context.Background(), &api.ListTasksRequest{ServiceIds: []string{serviceID}})
	if err != nil {
		return nil, err
	}
	return resp.Tasks, nil
}

// Running counts a service's tasks that run and should.
func Running(tasks []*api.Task) int {
	n := 0
	for _, t := range tasks {
		if t.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING && t.DesiredState == api.TaskState_TASK_STATE_RUNNING {
			n++
		}
	}
	return n
}

// WaitRunning waits until exactly n tasks of the service run.
func (c *Cluster) WaitRunning(serviceID string, n int, timeout time.Duration) {
	c.t.Helper()
	c.WaitFor(timeout, fmt.Sprintf("%d tasks running", n), func() error {
		tasks, err := c.Tasks(serviceID)
		if err != nil {
			return err
		}
		if r := Running(tasks); r != n {
			return fmt.Errorf("%d running", r)
		}
		return nil
	})
}

func (c *Cluster) stop() {
	for _, a := range c.Agents {
		a.Stop()
	}
	c.mu.Lock()
	for _, cc := range c.conns {
		cc.Close()
	}
	c.mu.Unlock()
}
