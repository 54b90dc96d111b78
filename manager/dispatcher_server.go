package manager

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/dispatcher"
	"github.com/shoalhq/shoal/proto/api"
)

// The error detail that names the leader when a follower refuses an
// Assignments stream (or the leader has just lost its term): an
// errdetails.ErrorInfo with this reason and domain, and the leader's
// address (empty when none is known) under the metadata key. Agents read
// it to open their stream on the leader; keep it in step with the agent
// package.
const (
	notLeaderReason  = "NOT_LEADER"
	notLeaderDomain  = "shoal.dispatcher"
	leaderAddrMetKey = "leader_addr"
)

// dispatcherServer is the agents' service on every manager: heartbeats
// and status reports are forwarded from followers to the leader;
// assignment streams are served by the leader only.
type dispatcherServer struct {
	api.UnimplementedDispatcherServer
	m *Manager
}

// Heartbeat records a node's heartbeat on the leader. The answer names
// the leader's address (leader_addr), where the node opens its
// Assignments stream.
func (s *dispatcherServer) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	m := s.m
	if !m.raft.IsLeader() {
		c, err := m.leaderConn()
		if err != nil {
			return nil, edgeError(err)
		}
		resp, err := api.NewDispatcherClient(c).Heartbeat(ctx, req)
		if err == nil && resp.LeaderAddr == "" {
			_, resp.LeaderAddr = m.raft.Leader()
		}
		return resp, err
	}
	resp, err := m.dispatcher.Heartbeat(ctx, req)
	if err != nil {
		return nil, dispatcherError(err)
	}
	resp.LeaderAddr = s.leaderAddr()
	return resp, nil
}

// Assignments streams a node's assignments from the leader. A follower
// (or a leader whose dispatcher is not running yet, or any more) fails
// with Unavailable naming the leader's address, in the message and in an
// ErrorInfo detail; streams are not forwarded. The stream ends the same
// way when this manager loses its leadership.
func (s *dispatcherServer) Assignments(req *api.AssignmentsRequest, stream api.Dispatcher_AssignmentsServer) error {
	if !s.m.raft.IsLeader() {
		return s.notLeader()
	}
	err := s.m.dispatcher.Assignments(stream.Context(), req.GetNodeId(), stream.Send)
	switch {
	case errors.Is(err, dispatcher.ErrNotRunning):
		return s.notLeader()
	case stream.Context().Err() != nil:
		return status.FromContextError(stream.Context().Err()).Err()
	}
	return dispatcherError(err)
}

// UpdateTaskStatus writes task status reports on the leader (followers
// forward) and answers once they are committed.
func (s *dispatcherServer) UpdateTaskStatus(ctx context.Context, req *api.UpdateTaskStatusRequest) (*api.UpdateTaskStatusResponse, error) {
	m := s.m
	if !m.raft.IsLeader() {
		c, err := m.leaderConn()
		if err != nil {
			return nil, edgeError(err)
		}
		return api.NewDispatcherClient(c).UpdateTaskStatus(ctx, req)
	}
	if err := m.dispatcher.UpdateTaskStatus(ctx, req); err != nil {
		if errors.Is(err, dispatcher.ErrNotRunning) {
			return nil, s.notLeader()
		}
		return nil, dispatcherError(err)
	}
	return &api.UpdateTaskStatusResponse{}, nil
}

// leaderAddr is the leader's address as this manager knows it: its own
// when it leads.
func (s *dispatcherServer) leaderAddr() string {
	if s.m.raft.IsLeader() && s.m.cfg.Addr != "" {
		return s.m.cfg.Addr
	}
	_, addr := s.m.raft.Leader()
	return addr
}

// notLeader is the Unavailable status that sends an agent to the leader.
func (s *dispatcherServer) notLeader() error {
	addr := s.leaderAddr()
	msg := "this manager is not the leader and no leader is known: retry later"
	if addr != "" {
		msg = fmt.Sprintf("this manager is not serving assignments: the leader is at %s", addr)
	}
	st := status.New(codes.Unavailable, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason: notLeaderReason, Domain: notLeaderDomain, Metadata: map[string]string{leaderAddrMetKey: addr},
	}); err == nil {
		st = d
	}
	return st.Err()
}

// dispatcherError maps the dispatcher's errors to gRPC statuses.
func dispatcherError(err error) error {
	switch {
	case err == nil:
		return nil
	case isNodeRemoved(err):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return edgeError(err)
}
