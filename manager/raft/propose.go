package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// Forwarder reaches the leader from a follower. Errors the leader's store
// returned must come back wrapping the same store sentinels, so callers
// can tell a conflict from an outage.
type Forwarder interface {
	// Propose asks the leader at addr to apply cmd; it returns the index
	// the command was applied at on the leader.
	Propose(ctx context.Context, addr string, cmd *api.Command) (uint64, error)
	// ReadIndex asks the leader at addr for its read index.
	ReadIndex(ctx context.Context, addr string) (uint64, error)
}

// applyTimeout bounds how long a write may wait to be started when the
// caller's context has no deadline.
const applyTimeout = 10 * time.Second

// Propose replicates cmd and returns once it is applied to the local store,
// with its log index. It implements store.Proposer. On the leader the
// command is appended to the log; on a follower it is forwarded to the
// leader. Errors: the store's sentinels (nothing applied), ErrNoLeader,
// ErrNotLeader (nothing written), ErrIndeterminate (outcome unknown).
func (n *Node) Propose(ctx context.Context, cmd *api.Command) (uint64, error) {
	if n.IsLeader() {
		return n.ProposeLocal(ctx, cmd)
	}
	_, addr := n.Leader()
	if addr == "" {
		return 0, ErrNoLeader
	}
	if n.cfg.Forwarder == nil || addr == n.Addr() {
		return 0, ErrNotLeader
	}
	index, err := n.cfg.Forwarder.Propose(ctx, addr, cmd)
	if err != nil {
		return 0, err
	}
	// Make the write visible to this manager's readers before returning.
	if err := n.cfg.Store.WaitForIndex(ctx, index); err != nil {
		return index, fmt.Errorf("%w: committed at index %d but not yet applied here: %v", ErrIndeterminate, index, err)
	}
	return index, nil
}

// ProposeLocal appends cmd to the log on this node, which must be the
// leader, and waits until it is applied. It is what the leader runs for a
// follower's forwarded proposal.
func (n *Node) ProposeLocal(ctx context.Context, cmd *api.Command) (uint64, error) {
	data, err := proto.Marshal(cmd)
	if err != nil {
		return 0, fmt.Errorf("encode command: %w", err)
	}
	timeout := applyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return 0, ctx.Err()
		}
	}
	f := n.raft.Apply(data, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, mapRaftError(err)
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: %v", ErrIndeterminate, ctx.Err())
	case <-n.done:
		return 0, ErrStopped
	}
	if resp := f.Response(); resp != nil {
		if err, ok := resp.(error); ok {
			return f.Index(), err
		}
	}
	return f.Index(), nil
}

// mapRaftError turns hashicorp/raft errors into this package's sentinels.
func mapRaftError(err error) error {
	switch {
	case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, hraft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrNoLeader, err)
	case errors.Is(err, hraft.ErrLeadershipLost), errors.Is(err, hraft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %v", ErrIndeterminate, err)
	case errors.Is(err, hraft.ErrRaftShutdown):
		return ErrStopped
	}
	return err
}

// ReadIndex is the leader's side of a current read: it confirms that this
// node is still the leader (a round of heartbeats to a quorum) and returns
// its applied index. Every write acknowledged before the call is at or
// below it. Fails with ErrNotLeader on a follower.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	f := n.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, mapRaftError(err)
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: confirming leadership: %v", ErrNoLeader, ctx.Err())
	}
	return n.cfg.Store.AppliedIndex(), nil
}

// ConsistentRead returns once this node's store holds every write
// acknowledged before the call, so a read that follows is current. It
// fails with ErrNoLeader when no leader can confirm it; the caller may
// then serve local state, marked as possibly stale.
func (n *Node) ConsistentRead(ctx context.Context) error {
	var index uint64
	var err error
	if n.IsLeader() {
		index, err = n.ReadIndex(ctx)
	} else {
		_, addr := n.Leader()
		if addr == "" {
			return ErrNoLeader
		}
		if n.cfg.Forwarder == nil || addr == n.Addr() {
			return ErrNotLeader
		}
		index, err = n.cfg.Forwarder.ReadIndex(ctx, addr)
	}
	if err != nil {
		return err
	}
	return n.cfg.Store.WaitForIndex(ctx, index)
}
