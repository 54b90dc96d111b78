package manager

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/shoalhq/shoal/manager/authz"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// TestManager is one manager of a TestManagers cluster: a Manager with its
// own loopback port (gRPC and Raft over mutual TLS) and data directory.
type TestManager struct {
	*Manager
	Addr  string
	Dir   string
	Creds *ca.Credentials
	t     *Transport
}

// TestManagers is a cluster of managers in one process speaking real gRPC
// and Raft over loopback TCP with TLS, with bbolt state on disk.
type TestManagers struct {
	t        testing.TB
	Managers []*TestManager
	Cluster  *api.Cluster
	// Root is the cluster's root CA, with its key (tests issue
	// certificates with it, see Issue).
	Root *ca.RootCA
	// Tokens are the join tokens after bootstrap.
	Tokens *api.JoinTokens
}

// StartTestManagers starts n managers: the first creates the cluster, the
// others join it with the manager token. They stop when the test ends.
func StartTestManagers(t testing.TB, n int) *TestManagers {
	t.Helper()
	tc := &TestManagers{t: t}
	t.Cleanup(tc.Stop)
	dir := t.TempDir()
	clusterID, nodeID, root, creds, err := NewClusterCredentials(dir, nil, nil)
	if err != nil {
		t.Fatalf("cluster credentials: %v", err)
	}
	tc.Root = root
	first := tc.startOn(tc.listen(), dir, nodeID, creds, false, func(c *Config) { c.ClusterID, c.RootCA = clusterID, root })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := first.Bootstrap(ctx)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	tc.Cluster = cluster
	if tc.Tokens, err = first.JoinTokens(); err != nil {
		t.Fatalf("join tokens: %v", err)
	}
	for i := 1; i < n; i++ {
		if _, err := tc.AddManager(ctx, first.Addr); err != nil {
			t.Fatalf("join manager %d: %v", i, err)
		}
	}
	return tc
}

func (tc *TestManagers) listen() net.Listener {
	tc.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tc.t.Fatalf("listen: %v", err)
	}
	return ln
}

// AddManager joins a new manager through via with the manager token, as
// a daemon does: Join for its certificate, then JoinRaft.
func (tc *TestManagers) AddManager(ctx context.Context, via string) (*TestManager, error) {
	tc.t.Helper()
	ln := tc.listen()
	dir := tc.t.TempDir()
	resp, creds, err := JoinCluster(ctx, via, tc.Tokens.Manager, dir, &api.JoinRequest{Addr: ln.Addr().String()})
	if err != nil {
		ln.Close()
		return nil, err
	}
	m := tc.startOn(ln, dir, resp.NodeId, creds, false, nil)
	c, err := m.Dial(via)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := api.NewMembershipClient(c).JoinRaft(ctx, &api.JoinRaftRequest{Addr: m.Addr}); err != nil {
		return m, err
	}
	return m, nil
}

// Restart starts a stopped manager again from its data directory and
// port; force starts it with ForceNewCluster.
func (tc *TestManagers) Restart(i int, force bool) *TestManager {
	tc.t.Helper()
	old := tc.Managers[i]
	ln, err := net.Listen("tcp", old.Addr)
	if err != nil {
		tc.t.Fatalf("listen again on %s: %v", old.Addr, err)
	}
	creds, err := LoadNodeCredentials(old.Dir)
	if err != nil {
		tc.t.Fatalf("credentials: %v", err)
	}
	m := tc.startOn(ln, old.Dir, old.cfg.NodeID, creds, force, nil)
	// startOn appended it: it takes the old one's place instead.
	tc.Managers = tc.Managers[:len(tc.Managers)-1]
	tc.Managers[i] = m
	return m
}

func (tc *TestManagers) startOn(ln net.Listener, dir, id string, creds *ca.Credentials, force bool, tune func(*Config)) *TestManager {
	tc.t.Helper()
	addr := ln.Addr().String()
	var m *Manager
	tr := NewTransport(ln, nil, creds, func() authz.Membership {
		if m == nil {
			return nil
		}
		return m
	})
	cfg := Config{
		NodeID:          id,
		Addr:            addr,
		DataDir:         dir,
		StreamLayer:     tr.Mux.StreamLayer(),
		Dial:            Dialer(creds, ca.ExpectManager),
		DialNode:        Dialer(creds, ca.ExpectNode),
		Description:     &api.NodeDescription{Hostname: fmt.Sprintf("manager-%d", len(tc.Managers))},
		ForceNewCluster: force,
		CutNode:         tr.Mux.Cut,
	}
	if tune != nil {
		tune(&cfg)
	}
	var err error
	m, err = New(cfg)
	if err != nil {
		tr.Close()
		tc.t.Fatalf("start manager: %v", err)
	}
	m.Register(tr.GRPC)
	go tr.GRPC.Serve(tr.Mux.GRPCListener())
	tm := &TestManager{Manager: m, Addr: addr, Dir: dir, Creds: creds, t: tr}
	tc.Managers = append(tc.Managers, tm)
	return tm
}

// Register puts the manager's services on a gRPC server (the node's, in
// tests, where no role change swaps the manager out).
func (m *Manager) Register(s *grpc.Server) {
	Gate(s, &api.Control_ServiceDesc, func() (any, error) { return m.Control(), nil }, m.AroundControl)
	Gate(s, &api.Membership_ServiceDesc, func() (any, error) { return m.Membership(), nil }, nil)
	Gate(s, &api.Raft_ServiceDesc, func() (any, error) { return m.RaftService(), nil }, nil)
	Gate(s, &api.Dispatcher_ServiceDesc, func() (any, error) { return m.Dispatcher(), nil }, nil)
	Gate(s, &api.NodeCA_ServiceDesc, func() (any, error) { return m.NodeCA(), nil }, nil)
}

// Dial connects to addr with this manager's certificate.
func (m *TestManager) Dial(addr string) (*grpc.ClientConn, error) {
	return Dialer(m.Creds, ca.ExpectManager)(addr)
}

// Issue returns credentials for id with role, signed by the cluster's
// root directly (the store is not told: for admin clients, or to forge
// what a node could hold).
func (tc *TestManagers) Issue(id string, role ca.Role, lifetime time.Duration) *ca.Credentials {
	tc.t.Helper()
	key, csr, err := ca.NewKeyAndCSR(id)
	if err != nil {
		tc.t.Fatal(err)
	}
	leaf, err := tc.Root.Sign(csr, ca.Identity{ClusterID: tc.Cluster.Id, ID: id, Role: role}, lifetime, time.Now())
	if err != nil {
		tc.t.Fatal(err)
	}
	creds, err := ca.NewCredentials(leaf, key, tc.Root.CertPEM)
	if err != nil {
		tc.t.Fatal(err)
	}
	return creds
}

// Admin returns admin client credentials of the cluster.
func (tc *TestManagers) Admin() *ca.Credentials {
	return tc.Issue("test-admin", ca.RoleAdmin, time.Hour)
}

// JoinNode joins a node with the token for role through via and returns
// its ID and credentials (nothing runs for it: the test speaks for it).
func (tc *TestManagers) JoinNode(ctx context.Context, via string, role api.NodeRole, addr string) (string, *ca.Credentials, error) {
	token := tc.Tokens.Worker
	if role == api.NodeRole_NODE_ROLE_MANAGER {
		token = tc.Tokens.Manager
	}
	resp, creds, err := JoinCluster(ctx, via, token, "", &api.JoinRequest{Addr: addr})
	if err != nil {
		return "", nil, err
	}
	return resp.NodeId, creds, nil
}

// NodeID returns the manager's node ID.
func (m *TestManager) NodeID() string { return m.cfg.NodeID }

// Stop stops one manager (its server, Raft and port).
func (m *TestManager) Stop() {
	m.t.GRPC.Stop()
	_ = m.Manager.Stop()
	m.t.Mux.Close()
}

// Leader returns the ready leader, or nil.
func (tc *TestManagers) Leader() *TestManager {
	for _, m := range tc.Managers {
		if m != nil && m.raft.IsLeader() {
			return m
		}
	}
	return nil
}

// WaitForLeader polls for a ready leader until timeout.
func (tc *TestManagers) WaitForLeader(timeout time.Duration) *TestManager {
	tc.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := tc.Leader(); l != nil {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
	tc.t.Fatalf("no leader within %s", timeout)
	return nil
}

// Stop stops every manager.
func (tc *TestManagers) Stop() {
	for _, m := range tc.Managers {
		if m != nil {
			m.Stop()
		}
	}
}
