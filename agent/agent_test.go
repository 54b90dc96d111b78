package agent

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/proto/api"
)

// dispatcher is a Dispatcher server with scripted answers.
type dispatcher struct {
	api.UnimplementedDispatcherServer
	beats   atomic.Int64
	removed atomic.Bool
	peers   []*api.Peer
}

func (d *dispatcher) Heartbeat(_ context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	d.beats.Add(1)
	if d.removed.Load() {
		return nil, status.Error(codes.NotFound, "removed")
	}
	return &api.HeartbeatResponse{Period: int64(20 * time.Millisecond), DesiredRole: api.NodeRole_NODE_ROLE_MANAGER, Managers: d.peers}, nil
}

func serve(t *testing.T, d *dispatcher) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	api.RegisterDispatcherServer(s, d)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestAgentFailsOverAndLearnsManagers(t *testing.T) {
	live := &dispatcher{}
	addr := serve(t, live)
	dead := deadAddr(t)
	live.peers = []*api.Peer{{NodeId: "m2", Addr: addr}}
	var roles atomic.Int64
	a := New(Config{NodeID: "n1", Managers: []string{dead, addr}, Dial: dial, Period: 50 * time.Millisecond,
		OnResponse: func(r *api.HeartbeatResponse) {
			if r.DesiredRole == api.NodeRole_NODE_ROLE_MANAGER {
				roles.Add(1)
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for live.beats.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if live.beats.Load() < 3 || roles.Load() < 3 {
		t.Fatalf("beats %d, answers seen %d: the agent did not reach the live manager", live.beats.Load(), roles.Load())
	}
	if got := a.Managers(); len(got) != 1 || got[0] != addr {
		t.Fatalf("managers learned: %v, want [%s]", got, addr)
	}
	// A removed node stops with ErrRemoved.
	live.removed.Store(true)
	select {
	case err := <-done:
		if !errors.Is(err, ErrRemoved) {
			t.Fatalf("Run after removal: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("agent kept running after the node was removed")
	}
	cancel()
}
