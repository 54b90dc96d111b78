package manager

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoalhq/shoal/manager/raft"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// TestManager is one manager of a TestManagers cluster: a Manager with its
// own loopback port (gRPC and Raft over TCP) and data directory.
type TestManager struct {
	*Manager
	Addr   string
	Dir    string
	mux    *raft.Mux
	server *grpc.Server
}

// TestManagers is a cluster of managers in one process speaking real gRPC
// and Raft over loopback TCP, with bbolt state on disk.
type TestManagers struct {
	t        testing.TB
	Managers []*TestManager
	Cluster  *api.Cluster
}

// DialInsecure opens a plain gRPC connection (tests and loopback).
func DialInsecure(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// StartTestManagers starts n managers: the first creates the cluster, the
// others join it with the manager token. They stop when the test ends.
func StartTestManagers(t testing.TB, n int) *TestManagers {
	t.Helper()
	tc := &TestManagers{t: t}
	t.Cleanup(tc.Stop)
	first := tc.start(t.TempDir(), store.NewID())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := first.Bootstrap(ctx)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	tc.Cluster = cluster
	for i := 1; i < n; i++ {
		m := tc.start(t.TempDir(), store.NewID())
		if err := tc.join(ctx, m, first.Addr, cluster.JoinTokens.Manager); err != nil {
			t.Fatalf("join manager %d: %v", i, err)
		}
	}
	return tc
}

func (tc *TestManagers) start(dir, id string) *TestManager {
	tc.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tc.t.Fatalf("listen: %v", err)
	}
	return tc.startOn(ln, dir, id, false)
}

func (tc *TestManagers) startOn(ln net.Listener, dir, id string, force bool) *TestManager {
	tc.t.Helper()
	mux := raft.NewMux(ln, nil)
	addr := ln.Addr().String()
	m, err := New(Config{
		NodeID:          id,
		Addr:            addr,
		DataDir:         dir,
		StreamLayer:     mux.StreamLayer(),
		Dial:            DialInsecure,
		Description:     &api.NodeDescription{Hostname: fmt.Sprintf("manager-%d", len(tc.Managers))},
		ForceNewCluster: force,
	})
	if err != nil {
		mux.Close()
		tc.t.Fatalf("start manager: %v", err)
	}
	s := grpc.NewServer()
	Gate(s, &api.Control_ServiceDesc, func() (any, error) { return m.Control(), nil }, m.AroundControl)
	Gate(s, &api.Membership_ServiceDesc, func() (any, error) { return m.Membership(), nil }, nil)
	Gate(s, &api.Raft_ServiceDesc, func() (any, error) { return m.RaftService(), nil }, nil)
	Gate(s, &api.Dispatcher_ServiceDesc, func() (any, error) { return m.Dispatcher(), nil }, nil)
	go s.Serve(mux.GRPCListener())
	tm := &TestManager{Manager: m, Addr: addr, Dir: dir, mux: mux, server: s}
	tc.Managers = append(tc.Managers, tm)
	return tm
}

func (tc *TestManagers) join(ctx context.Context, m *TestManager, via, token string) error {
	c, err := DialInsecure(via)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = api.NewMembershipClient(c).Join(ctx, &api.JoinRequest{Token: token, NodeId: m.NodeID(), Addr: m.Addr})
	return err
}

// NodeID returns the manager's node ID.
func (m *TestManager) NodeID() string { return m.cfg.NodeID }

// Stop stops one manager (its server, Raft and port).
func (m *TestManager) Stop() {
	m.server.Stop()
	_ = m.Manager.Stop()
	m.mux.Close()
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
