package raft

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// TestCluster is a set of Raft nodes in one process over the in-memory
// transport, for tests of the packages above the Raft layer. Each node
// has its own store and, when DataDirs is used, its own bbolt files.
type TestCluster struct {
	t     testing.TB
	mu    sync.Mutex
	Nodes []*Node
	trans []*hraft.InmemTransport
	dirs  []string
	tune  func(*Config)
}

// inprocForwarder forwards to the leader node in the same process.
type inprocForwarder struct{ c *TestCluster }

func (f inprocForwarder) node(addr string) (*Node, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	for _, n := range f.c.Nodes {
		if n != nil && n.Addr() == addr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%w: no node at %s", ErrNoLeader, addr)
}

func (f inprocForwarder) Propose(ctx context.Context, addr string, cmd *api.Command) (uint64, error) {
	n, err := f.node(addr)
	if err != nil {
		return 0, err
	}
	return n.ProposeLocal(ctx, cmd)
}

func (f inprocForwarder) ReadIndex(ctx context.Context, addr string) (uint64, error) {
	n, err := f.node(addr)
	if err != nil {
		return 0, err
	}
	return n.ReadIndex(ctx)
}

// MakeTestCluster starts n nodes connected by in-memory transports, each
// with data in a directory of its own under t.TempDir() (bbolt log, file
// snapshots), bootstraps them as one group, and waits for a leader. The
// nodes are shut down when the test ends.
func MakeTestCluster(t testing.TB, n int) *TestCluster {
	t.Helper()
	return MakeTestClusterWith(t, n, nil)
}

// MakeTestClusterWith is MakeTestCluster with a hook that adjusts each
// node's configuration before it starts (timings, snapshot threshold).
func MakeTestClusterWith(t testing.TB, n int, tune func(*Config)) *TestCluster {
	t.Helper()
	c := &TestCluster{t: t, tune: tune}
	servers := make([]hraft.Server, n)
	for i := 0; i < n; i++ {
		addr, tr := hraft.NewInmemTransport(hraft.ServerAddress(fmt.Sprintf("mem-%d", i)))
		c.trans = append(c.trans, tr)
		c.dirs = append(c.dirs, t.TempDir())
		servers[i] = hraft.Server{Suffrage: hraft.Voter, ID: hraft.ServerID(fmt.Sprintf("node-%d", i)), Address: addr}
	}
	c.connectAll()
	c.Nodes = make([]*Node, n)
	for i := 0; i < n; i++ {
		c.Nodes[i] = c.start(i, false)
	}
	if err := c.Nodes[0].raft.BootstrapCluster(hraft.Configuration{Servers: servers}).Error(); err != nil {
		t.Fatalf("bootstrap test cluster: %v", err)
	}
	t.Cleanup(c.Shutdown)
	c.WaitForLeader(10 * time.Second)
	return c
}

func (c *TestCluster) connectAll() {
	for i, a := range c.trans {
		for j, b := range c.trans {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
}

func (c *TestCluster) start(i int, force bool) *Node {
	cfg := Config{
		NodeID:    fmt.Sprintf("node-%d", i),
		Addr:      string(c.trans[i].LocalAddr()),
		DataDir:   c.dirs[i],
		Store:     store.New(nil),
		Transport: c.trans[i],
		Forwarder: inprocForwarder{c},
		// Tighter than production so tests run fast on a loaded machine,
		// but wide enough to avoid spurious elections.
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	var n *Node
	var err error
	if force {
		n, err = ForceNewCluster(cfg)
	} else {
		n, err = New(cfg)
	}
	if err != nil {
		c.t.Fatalf("start raft node %d: %v", i, err)
	}
	cfg.Store.SetProposer(n)
	return n
}

// Stop shuts node i down, keeping its data directory.
func (c *TestCluster) Stop(i int) {
	c.mu.Lock()
	n := c.Nodes[i]
	c.Nodes[i] = nil
	c.mu.Unlock()
	if n == nil {
		return
	}
	_ = n.Shutdown()
	// Other nodes see the stopped node as unreachable.
	for j, tr := range c.trans {
		if j != i {
			tr.Disconnect(c.trans[i].LocalAddr())
		}
	}
	c.trans[i].DisconnectAll()
}

// Restart starts node i again from its data directory.
func (c *TestCluster) Restart(i int) *Node {
	_, tr := hraft.NewInmemTransport(c.trans[i].LocalAddr())
	c.trans[i] = tr
	c.connectAll()
	n := c.start(i, false)
	c.mu.Lock()
	c.Nodes[i] = n
	c.mu.Unlock()
	return n
}

// ForceNewCluster restarts stopped node i as the only member of a new
// configuration, keeping its committed state.
func (c *TestCluster) ForceNewCluster(i int) *Node {
	_, tr := hraft.NewInmemTransport(c.trans[i].LocalAddr())
	c.trans[i] = tr
	n := c.start(i, true)
	c.mu.Lock()
	c.Nodes[i] = n
	c.mu.Unlock()
	return n
}

// Leader returns the ready leader, or nil.
func (c *TestCluster) Leader() *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.Nodes {
		if n != nil && n.IsLeader() {
			return n
		}
	}
	return nil
}

// WaitForLeader polls until a ready leader exists or fails the test after
// timeout.
func (c *TestCluster) WaitForLeader(timeout time.Duration) *Node {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l != nil {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no raft leader within %s", timeout)
	return nil
}

// Shutdown stops every node.
func (c *TestCluster) Shutdown() {
	for i := range c.Nodes {
		c.Stop(i)
	}
}
