package manager

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/proto/api"
)

// dispatcherServer forwards heartbeats to the leader's dispatcher.
type dispatcherServer struct {
	api.UnimplementedDispatcherServer
	m *Manager
}

// Heartbeat records a node's heartbeat on the leader.
func (s *dispatcherServer) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	m := s.m
	if !m.raft.IsLeader() {
		c, err := m.leaderConn()
		if err != nil {
			return nil, edgeError(err)
		}
		return api.NewDispatcherClient(c).Heartbeat(ctx, req)
	}
	resp, err := m.dispatcher.Heartbeat(ctx, req)
	if err != nil {
		if isNodeRemoved(err) {
			return nil, status.Error(codes.NotFound, err.Error())
		}
		return nil, edgeError(err)
	}
	return resp, nil
}
