package manager

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/proto/api"
)

// leaderNamed returns the leader address a NOT_LEADER refusal names.
func leaderNamed(err error) (string, bool) {
	st := status.Convert(err)
	if st.Code() != codes.Unavailable {
		return "", false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Reason == notLeaderReason && info.Domain == notLeaderDomain {
			return info.Metadata[leaderAddrMetKey], true
		}
	}
	return "", false
}

// TestDispatcherServedByTheLeader checks the manager's dispatcher edge on
// real managers: heartbeats name the leader, followers refuse streams
// naming it, status reports are forwarded, and a stream ends with its
// leader's term.
func TestDispatcherServedByTheLeader(t *testing.T) {
	tc := StartTestManagers(t, 3)
	leader := tc.WaitForLeader(10 * time.Second)
	follower := followersOf(tc)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w1, _, err := tc.JoinNode(ctx, leader.Addr, api.NodeRole_NODE_ROLE_WORKER, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}

	for _, m := range []*TestManager{leader, follower} {
		resp, err := api.NewDispatcherClient(client(t, m)).Heartbeat(ctx, &api.HeartbeatRequest{NodeId: w1})
		if err != nil || resp.LeaderAddr != leader.Addr {
			t.Fatalf("heartbeat via %s: leader_addr %q, %v; want %s", m.Addr, resp.GetLeaderAddr(), err, leader.Addr)
		}
	}

	// A follower refuses the stream and names the leader.
	s, err := api.NewDispatcherClient(client(t, follower)).Assignments(ctx, &api.AssignmentsRequest{NodeId: w1})
	if err == nil {
		_, err = s.Recv()
	}
	if addr, ok := leaderNamed(err); !ok || addr != leader.Addr {
		t.Fatalf("stream on a follower: %v; want Unavailable naming %s", err, leader.Addr)
	}

	// The leader serves it: a COMPLETE message first.
	var stream api.Dispatcher_AssignmentsClient
	waitFor(t, 5*time.Second, "stream on the leader", func() error {
		s, err := api.NewDispatcherClient(client(t, leader)).Assignments(ctx, &api.AssignmentsRequest{NodeId: w1})
		if err != nil {
			return err
		}
		m, err := s.Recv()
		if err != nil {
			return err
		}
		if m.Type != api.AssignmentsMessage_TYPE_COMPLETE {
			return fmt.Errorf("first message %v", m.Type)
		}
		stream = s
		return nil
	})
	ghost, err := api.NewDispatcherClient(client(t, leader)).Assignments(ctx, &api.AssignmentsRequest{NodeId: "ghost"})
	if err == nil {
		_, err = ghost.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Fatalf("stream of an unknown node: %v, want NotFound", err)
	}

	// Status reports through a follower reach the leader's dispatcher and
	// return once written (this one is ignored: there is no such task).
	before := leader.dispatcher.Stats().StatusUpdates
	_, err = api.NewDispatcherClient(client(t, follower)).UpdateTaskStatus(ctx, &api.UpdateTaskStatusRequest{
		NodeId:  w1,
		Updates: []*api.TaskStatusUpdate{{TaskId: "nope", Status: &api.TaskStatus{State: api.TaskState_TASK_STATE_RUNNING}}},
	})
	if err != nil || leader.dispatcher.Stats().StatusUpdates != before+1 {
		t.Fatalf("report via a follower: %v (leader counted %d updates, had %d)", err, leader.dispatcher.Stats().StatusUpdates, before)
	}

	// The leader hands its leadership over and lives on: its stream ends
	// with Unavailable (naming the new leader once it knows it), and the
	// new leader serves.
	if err := leader.Raft().Raw().LeadershipTransfer().Error(); err != nil {
		t.Fatalf("leadership transfer: %v", err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("the stream on the old leader ended with %v, want Unavailable", err)
	}
	var next *TestManager
	waitFor(t, 10*time.Second, "a new leader", func() error {
		if next = tc.Leader(); next == nil || next == leader {
			return fmt.Errorf("no new leader yet")
		}
		return nil
	})
	waitFor(t, 5*time.Second, "stream on the new leader", func() error {
		s, err := api.NewDispatcherClient(client(t, next)).Assignments(ctx, &api.AssignmentsRequest{NodeId: w1})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	})
	// The old leader now sends agents to the new one.
	s, err = api.NewDispatcherClient(client(t, leader)).Assignments(ctx, &api.AssignmentsRequest{NodeId: w1})
	if err == nil {
		_, err = s.Recv()
	}
	if addr, ok := leaderNamed(err); !ok || addr != next.Addr {
		t.Fatalf("stream on the old leader: %v; want Unavailable naming %s", err, next.Addr)
	}
}
func slicesWithout(ms []*TestManager, gone *TestManager) []*TestManager {
	var out []*TestManager
	for _, m := range ms {
		if m != gone {
			out = append(out, m)
		}
	}
	return out
}
