package manager

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"

	"github.com/shoalhq/shoal/proto/api"
)

// DialFunc opens a client connection to another node's API address. It is
// the seam for transport credentials (plain now, mutual TLS later).
type DialFunc func(addr string) (*grpc.ClientConn, error)

// peerConns keeps one client connection per address (of managers, or of
// any node for task logs).
type peerConns struct {
	dial  DialFunc
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newPeerConns(dial DialFunc) *peerConns {
	return &peerConns{dial: dial, conns: map[string]*grpc.ClientConn{}}
}

func (p *peerConns) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := p.dial(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

func (p *peerConns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.conns {
		c.Close()
		delete(p.conns, a)
	}
}

// forwarder implements raft.Forwarder over the Raft gRPC service.
type forwarder struct{ peers *peerConns }

func (f forwarder) Propose(ctx context.Context, addr string, cmd *api.Command) (uint64, error) {
	c, err := f.peers.get(addr)
	if err != nil {
		return 0, decodeInternalError(err)
	}
	resp, err := api.NewRaftClient(c).Propose(ctx, &api.ProposeRequest{Command: cmd})
	if err != nil {
		return 0, decodeInternalError(err)
	}
	return resp.Index, nil
}

func (f forwarder) ReadIndex(ctx context.Context, addr string) (uint64, error) {
	c, err := f.peers.get(addr)
	if err != nil {
		return 0, decodeInternalError(err)
	}
	resp, err := api.NewRaftClient(c).ReadIndex(ctx, &api.ReadIndexRequest{})
	if err != nil {
		return 0, decodeInternalError(err)
	}
	return resp.Index, nil
}

// raftServer is the leader's side of forwarded proposals and reads.
type raftServer struct {
	api.UnimplementedRaftServer
	m *Manager
}

func (s *raftServer) Propose(ctx context.Context, req *api.ProposeRequest) (*api.ProposeResponse, error) {
	if req.Command == nil {
		return nil, encodeInternalError(fmt.Errorf("propose: no command"))
	}
	index, err := s.m.raft.ProposeLocal(ctx, req.Command)
	if err != nil {
		return nil, encodeInternalError(err)
	}
	return &api.ProposeResponse{Index: index}, nil
}

func (s *raftServer) ReadIndex(ctx context.Context, _ *api.ReadIndexRequest) (*api.ReadIndexResponse, error) {
	index, err := s.m.raft.ReadIndex(ctx)
	if err != nil {
		return nil, encodeInternalError(err)
	}
	return &api.ReadIndexResponse{Index: index}, nil
}

// Status reports this manager's own Raft progress.
func (s *raftServer) Status(ctx context.Context, _ *api.RaftStatusRequest) (*api.RaftStatusResponse, error) {
	return &api.RaftStatusResponse{NodeId: s.m.cfg.NodeID, AppliedIndex: s.m.store.AppliedIndex()}, nil
}
