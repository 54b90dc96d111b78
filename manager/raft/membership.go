package raft

import (
	"context"
	"fmt"
	"sort"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/shoalhq/shoal/proto/api"
)

// Members returns the Raft configuration: every server with its address,
// the leader flag and, as seen from this node, reachability. The leader
// knows which followers miss heartbeats; a follower knows only the leader.
// Sorted by node ID.
func (n *Node) Members() []*api.RaftMember {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil
	}
	_, leaderID := n.raft.LeaderWithID()
	isLeader := n.raft.State() == hraft.Leader
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*api.RaftMember
	for _, s := range f.Configuration().Servers {
		m := &api.RaftMember{NodeId: string(s.ID), Addr: string(s.Address), Leader: s.ID == leaderID, Nonvoter: s.Suffrage != hraft.Voter}
		switch {
		case s.ID == leaderID || s.ID == hraft.ServerID(n.cfg.NodeID):
			m.Reachability = api.Reachability_REACHABILITY_REACHABLE
		case isLeader:
			if _, bad := n.unreachable[s.ID]; bad {
				m.Reachability = api.Reachability_REACHABILITY_UNREACHABLE
			} else {
				m.Reachability = api.Reachability_REACHABILITY_REACHABLE
			}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeId < out[j].NodeId })
	return out
}

// IsMember reports whether id is in the Raft configuration.
func (n *Node) IsMember(id string) bool {
	for _, m := range n.Members() {
		if m.NodeId == id {
			return true
		}
	}
	return false
}

// AddVoter adds a manager to the Raft group at addr, or makes a non-voter
// a voter (leader only). Adding a voter that is already there with the
// same address is a no-op. Prefer Manager-level admission, which adds a
// non-voter first: a voter that cannot be reached costs the quorum.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	f := n.raft.AddVoter(hraft.ServerID(id), hraft.ServerAddress(addr), 0, timeoutOf(ctx))
	if err := f.Error(); err != nil {
		return fmt.Errorf("add manager %s at %s: %w", id, addr, mapRaftError(err))
	}
	return nil
}

// AddNonvoter adds a manager that receives the log but does not vote
// (leader only), so that a new manager can catch up, and prove it is
// reachable, before it counts toward the quorum.
func (n *Node) AddNonvoter(ctx context.Context, id, addr string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	f := n.raft.AddNonvoter(hraft.ServerID(id), hraft.ServerAddress(addr), 0, timeoutOf(ctx))
	if err := f.Error(); err != nil {
		return fmt.Errorf("add catching-up manager %s at %s: %w", id, addr, mapRaftError(err))
	}
	return nil
}

// IsVoter reports whether id is a voting member.
func (n *Node) IsVoter(id string) bool {
	for _, m := range n.Members() {
		if m.NodeId == id {
			return !m.Nonvoter
		}
	}
	return false
}

// RemoveServer removes a manager from the Raft group (leader only). A
// leader asked to remove itself first hands leadership to another voter.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if !n.IsMember(id) {
		return fmt.Errorf("remove manager %s: %w", id, ErrNotMember)
	}
	if id == n.cfg.NodeID {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			return fmt.Errorf("hand over leadership before removing myself: %w", mapRaftError(err))
		}
		return ErrNotLeader // the new leader finishes the removal
	}
	f := n.raft.RemoveServer(hraft.ServerID(id), 0, timeoutOf(ctx))
	if err := f.Error(); err != nil {
		return fmt.Errorf("remove manager %s: %w", id, mapRaftError(err))
	}
	return nil
}

// TransferLeadership asks another voter to take over (leader only).
func (n *Node) TransferLeadership() error {
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return mapRaftError(err)
	}
	return nil
}

func timeoutOf(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
	}
	return applyTimeout
}
