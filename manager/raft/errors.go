package raft

import "errors"

// Sentinel errors of the Raft layer.
var (
	// ErrNoLeader means no leader is known: the managers have no quorum or
	// are electing one. Nothing was written; retry later, or recover a
	// lost quorum with `shoal daemon --force-new-cluster` on a survivor.
	ErrNoLeader = errors.New("no Raft leader: the managers have lost quorum or are electing a leader")
	// ErrNotLeader means a leader-only operation ran on a follower.
	ErrNotLeader = errors.New("this manager is not the Raft leader")
	// ErrIndeterminate means a write was started but its outcome is not
	// known (leadership was lost, or the caller's deadline passed while it
	// was in flight): it may or may not have been committed. Read the state
	// again before retrying.
	ErrIndeterminate = errors.New("write outcome unknown: leadership was lost or the deadline passed while it was in flight")
	// ErrStopped means the node has been shut down.
	ErrStopped = errors.New("raft node is stopped")
	// ErrNotMember means an operation named a server that is not in the
	// Raft configuration.
	ErrNotMember = errors.New("not a member of the Raft group")
)
