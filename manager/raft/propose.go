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
	addr := n.waitLeader(ctx)
	if addr == "" {
		return 0, ErrNoLeader
	}
	if addr == n.Addr() {
		// Elected a moment ago; its barrier is not done yet.
		return n.ProposeLocal(ctx, cmd)
	}
	if n.cfg.Forwarder == nil {
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
// follower's forwarded proposal. Proposals that arrive while the log is
// busy are sent together in one entry (a CommandBatch), each still applied
// all-or-nothing on its own: under many concurrent writers this costs one
// log append and one fsync per batch instead of per write.
func (n *Node) ProposeLocal(ctx context.Context, cmd *api.Command) (uint64, error) {
	p := &proposal{cmd: cmd, done: make(chan proposalResult, 1)}
	select {
	case n.proposeCh <- p:
	case <-ctx.Done():
		return 0, ctx.Err() // not started: nothing written
	case <-n.done:
		return 0, ErrStopped
	}
	select {
	case r := <-p.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("%w: %v", ErrIndeterminate, ctx.Err())
	case <-n.done:
		return 0, fmt.Errorf("%w: %v", ErrIndeterminate, ErrStopped)
	}
}

// proposal is one command waiting to be appended.
type proposal struct {
	cmd  *api.Command
	done chan proposalResult
}

type proposalResult struct {
	index uint64
	err   error
}

// Batch limits: the most commands, and about the most bytes, in one entry.
const (
	maxBatchCommands = 1024
	maxBatchBytes    = 1 << 20
)

// runBatcher takes proposals as they come and appends each group that
// queued up while the previous append was being handed to Raft as one log
// entry.
func (n *Node) runBatcher() {
	defer n.wg.Done()
	for {
		var first *proposal
		select {
		case <-n.done:
			return
		case first = <-n.proposeCh:
		}
		batch := []*proposal{first}
		size := proto.Size(first.cmd)
	drain:
		for len(batch) < maxBatchCommands && size < maxBatchBytes {
			select {
			case p := <-n.proposeCh:
				batch = append(batch, p)
				size += proto.Size(p.cmd)
			default:
				break drain
			}
		}
		cmds := make([]*api.Command, len(batch))
		for i, p := range batch {
			cmds[i] = p.cmd
		}
		data, err := proto.Marshal(&api.CommandBatch{Commands: cmds})
		if err != nil {
			finish(batch, 0, nil, fmt.Errorf("encode commands: %w", err))
			continue
		}
		f := n.raft.Apply(data, applyTimeout)
		go func() {
			if err := f.Error(); err != nil {
				finish(batch, 0, nil, mapRaftError(err))
				return
			}
			errs, _ := f.Response().([]error)
			finish(batch, f.Index(), errs, nil)
		}()
	}
}

// finish hands every proposal of a batch its outcome.
func finish(batch []*proposal, index uint64, errs []error, all error) {
	for i, p := range batch {
		err := all
		if err == nil && i < len(errs) {
			err = errs[i]
		}
		if err == nil && errs == nil {
			err = fmt.Errorf("%w: no result for the command", ErrIndeterminate)
		}
		p.done <- proposalResult{index: index, err: err}
	}
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

// leaderWait bounds how long a proposal or read waits for an election to
// produce a leader before it fails with ErrNoLeader.
const leaderWait = 2 * time.Second

// waitLeader returns the leader's address, waiting (up to leaderWait or
// ctx) while none is known, as during an election. Empty means none.
func (n *Node) waitLeader(ctx context.Context) string {
	deadline := time.Now().Add(leaderWait)
	for {
		if _, addr := n.Leader(); addr != "" {
			return addr
		}
		if time.Now().After(deadline) {
			return ""
		}
		select {
		case <-ctx.Done():
			return ""
		case <-n.done:
			return ""
		case <-time.After(20 * time.Millisecond):
		}
	}
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
		addr := n.waitLeader(ctx)
		if addr == "" {
			return ErrNoLeader
		}
		switch {
		case addr == n.Addr():
			// Elected a moment ago: wait for its barrier.
			n.mu.Lock()
			ready := n.readyCh
			n.mu.Unlock()
			select {
			case <-ready:
			case <-ctx.Done():
				return fmt.Errorf("%w: new leader not ready: %v", ErrNoLeader, ctx.Err())
			}
			index, err = n.ReadIndex(ctx)
		case n.cfg.Forwarder == nil:
			return ErrNotLeader
		default:
			index, err = n.cfg.Forwarder.ReadIndex(ctx, addr)
		}
	}
	if err != nil {
		return err
	}
	return n.cfg.Store.WaitForIndex(ctx, index)
}
