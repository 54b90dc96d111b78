package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shoalhq/shoal/manager/raft"
	"github.com/shoalhq/shoal/proto/api"
)

// catchUpTimeout bounds how long a new manager may take to receive the
// log before its admission is abandoned (a variable for tests).
var catchUpTimeout = 20 * time.Second

// errCatchUp means a new manager could not be reached through Raft or did
// not receive the log in time; it was not made a voter.
var errCatchUp = errors.New("the new manager did not catch up through Raft")

// addManager admits a manager into the Raft group without risking the
// quorum (leader only): it joins as a non-voter, the leader asks it over
// its API address until it has applied the log up to the leader's index
// at admission time (proof that Raft traffic reaches it), and only then
// is it made a voter. If it does not catch up within catchUpTimeout it is
// removed again and the error says what to check.
func (m *Manager) addManager(ctx context.Context, id, addr string) error {
	if m.raft.IsVoter(id) {
		return nil
	}
	if err := m.raft.AddNonvoter(ctx, id, addr); err != nil {
		return err
	}
	target := m.store.AppliedIndex()
	deadline := time.Now().Add(catchUpTimeout)
	var last error
	for {
		applied, err := m.peerApplied(ctx, id, addr)
		if err == nil && applied >= target {
			break
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("applied %d of %d", applied, target)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if rerr := m.raft.RemoveServer(rctx, id); rerr != nil && !errors.Is(rerr, raft.ErrNotMember) {
				m.log.Warn("remove manager that did not catch up", "node", id, "err", rerr)
			}
			cancel()
			return fmt.Errorf("%w: node %s at %s (%v); check that its --advertise-addr is reachable from the other managers", errCatchUp, id, addr, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return m.raft.AddVoter(ctx, id, addr)
}

// peerApplied asks the manager at addr for its applied index, checking
// that it is the node expected.
func (m *Manager) peerApplied(ctx context.Context, id, addr string) (uint64, error) {
	c, err := m.peers.get(addr)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := api.NewRaftClient(c).Status(cctx, &api.RaftStatusRequest{})
	if err != nil {
		return 0, err
	}
	if st.NodeId != id {
		return 0, fmt.Errorf("%s answers as node %s, not %s", addr, st.NodeId, id)
	}
	return st.AppliedIndex, nil
}
