package orchestrator

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// errStale means a plan was computed from a state that has changed since:
// its service or a task it writes has another version. The plan is
// dropped and computed again from fresh state.
var errStale = errors.New("orchestrator: plan computed from stale state")

// maxActionsPerCommit bounds the writes of one transaction (one Raft
// entry); a plan with more is committed in several, never splitting a
// group.
const maxActionsPerCommit = 256

// commit writes the plan through the store. Each transaction re-reads the
// service and every task it writes and refuses (errStale) when one has
// changed since the plan read it; the store's own compare-and-swap
// refuses (store.ErrSequenceConflict) a change that lands between the
// transaction and its commit. Either way nothing of that transaction is
// written, and the caller computes a new plan. Transactions committed
// before a refusal stay: every one holds whole groups, so the store never
// sees half a decision.
//
// The plan's service write (update status, rollback) goes with its last
// transaction, or alone when the plan has no action.
func (o *Orchestrator) commit(ctx context.Context, p *Plan) error {
	if len(p.Actions) == 0 {
		return o.store.Update(ctx, func(tx store.Tx) error { return applyActions(tx, p, nil, true) })
	}
	for start := 0; start < len(p.Actions); {
		end, n := start, 0
		for end < len(p.Actions) {
			j := end
			for j < len(p.Actions) && p.Actions[j].Group == p.Actions[end].Group {
				j++
			}
			if n > 0 && n+(j-end) > maxActionsPerCommit {
				break
			}
			n += j - end
			end = j
		}
		batch := p.Actions[start:end]
		last := end == len(p.Actions)
		if err := o.store.Update(ctx, func(tx store.Tx) error { return applyActions(tx, p, batch, last) }); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// applyActions stages actions of p in tx, after checking that the state
// they were computed from has not changed; with last, the plan's service
// write too.
func applyActions(tx store.Tx, p *Plan, actions []Action, last bool) error {
	svc := tx.GetService(p.ServiceID)
	switch {
	case p.ServiceVersion == 0 && svc != nil:
		return fmt.Errorf("%w: service %s exists again", errStale, p.ServiceID)
	case p.ServiceVersion != 0 && (svc == nil || svc.GetMeta().GetVersion() != p.ServiceVersion):
		return fmt.Errorf("%w: service %s changed", errStale, p.ServiceID)
	}
	for _, a := range actions {
		if a.Kind == ActionCreate {
			t := proto.Clone(a.Task).(*api.Task)
			t.Id = store.NewID()
			if err := tx.CreateTask(t); err != nil {
				return err
			}
			continue
		}
		cur := tx.GetTask(a.TaskID)
		if cur == nil || cur.GetMeta().GetVersion() != a.Version {
			return fmt.Errorf("%w: task %s changed", errStale, a.TaskID)
		}
		if a.Kind == ActionDelete {
			if err := tx.DeleteTask(a.TaskID); err != nil {
				return err
			}
			continue
		}
		t := proto.Clone(cur).(*api.Task)
		if a.DesiredState > t.GetDesiredState() {
			t.DesiredState = a.DesiredState
			if a.Drain > 0 {
				t.Drain = a.Drain
			}
		}
		if a.Orphan && t.GetStatus().GetState() < stateOrphaned {
			st := proto.Clone(t.GetStatus()).(*api.TaskStatus)
			if st == nil {
				st = &api.TaskStatus{}
			}
			st.State = stateOrphaned
			st.Message = "orphaned: node " + t.GetNodeId() + " is down or gone; the task was replaced"
			st.Timestamp = p.Now.UnixNano()
			t.Status = st
		}
		if err := tx.UpdateTask(t); err != nil {
			return err
		}
	}
	if last && (p.UpdateStatus != nil || p.Rollback) {
		return tx.UpdateService(updatedService(svc, p))
	}
	return nil
}

// updatedService returns a copy of svc with the plan's service write:
// the update status and, for a rollback, the previous spec restored as
// a new spec version (the spec it replaces becomes previous_spec, as a
// rollback through the control API does).
func updatedService(svc *api.Service, p *Plan) *api.Service {
	s := proto.Clone(svc).(*api.Service)
	if p.Rollback && s.GetPreviousSpec() != nil {
		s.Spec, s.PreviousSpec = s.PreviousSpec, s.Spec
		s.SpecVersion++
		s.ImageDigest = p.RollbackDigest
	}
	if p.UpdateStatus != nil {
		s.UpdateStatus = proto.Clone(p.UpdateStatus).(*api.UpdateStatus)
	}
	return s
}

// retryable reports whether a commit failed because the state moved
// under the plan, so that a plan computed again may succeed.
func retryable(err error) bool {
	return errors.Is(err, errStale) || errors.Is(err, store.ErrSequenceConflict) ||
		errors.Is(err, store.ErrTaskStateBackwards) || errors.Is(err, store.ErrNotFound)
}
