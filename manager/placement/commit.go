package placement

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
	"github.com/shoalhq/shoal/scheduler"
)

// write is one task write of a commit: an assignment (nodeID set) or a
// new reason.
type write struct {
	plan *plan
	// task is the task as planned; the commit writes only if the stored
	// task still has its version.
	task   *api.Task
	nodeID string
	reason string
}

// commit writes the plans' decisions in bounded transactions. Reasons
// that did not change are not written. nodes are the node objects the
// plans were made against, sorted by ID.
func (p *Placer) commit(ctx context.Context, m *model, nodes []*api.Node, plans []*plan, st *passStats) {
	chunk := make([]write, 0, min(p.cfg.MaxCommitTasks, st.waiting))
	size := 0
	flush := func() {
		if len(chunk) > 0 && ctx.Err() == nil {
			p.commitChunk(ctx, m, nodes, chunk, st)
		}
		chunk, size = chunk[:0], 0
	}
	for _, pl := range plans {
		// Each write carries about one task of the group.
		each := proto.Size(pl.group.Tasks[0]) + 64
		for i, d := range pl.result.Decisions {
			t := pl.group.Tasks[i]
			if d.NodeID == "" && t.GetStatus().GetErr() == d.Reason {
				continue
			}
			if len(chunk) >= p.cfg.MaxCommitTasks || (len(chunk) > 0 && size+each > p.cfg.MaxCommitBytes) {
				flush()
			}
			chunk = append(chunk, write{plan: pl, task: t, nodeID: d.NodeID, reason: d.Reason})
			size += each
		}
	}
	flush()
}

// commitChunk writes one transaction. Each task must be unchanged since
// planning: UpdateTask reads the stored task again and refuses the write,
// staging nothing, when its version moved (or the task is gone). Each
// chosen node must still take the task given the store's current state:
// a node whose stored object is still the one planned against (the store
// replaces an object on every write) passes the filters that depend on
// the node alone as it did in planning; any other node is read and
// checked again; and for specs with capacity filters (reservations, host
// ports, max replicas) the node's live tasks are read from the store and
// counted with the tasks this transaction places before. Writes that
// fail a check are counted as skipped and left for the next pass. On
// success the model counts the assignments. When the outcome is unknown,
// or a node did not fit as planned (the model disagrees with the store),
// the model is marked stale.
func (p *Placer) commitChunk(ctx context.Context, m *model, planned []*api.Node, ws []write, st *passStats) {
	now := p.cfg.Now().UnixNano()
	staged := make([]bool, len(ws))
	skipped, misfits := 0, 0
	err := p.store.Update(ctx, func(tx store.Tx) error {
		clear(staged)
		skipped, misfits = 0, 0
		moved := changedNodes(planned, tx.FindNodes(store.All()))
		fresh := freshLoad(tx, ws)
		// UpdateTask stores a clone of what it is given, so one task and
		// one status serve every assignment of the transaction.
		var info scheduler.NodeInfo
		var task api.Task
		var status api.TaskStatus
		for i, w := range ws {
			if w.nodeID == "" {
				if err := tx.UpdateTask(withReason(w.task, w.reason)); err != nil {
					if changed(err) {
						skipped++
						continue
					}
					return err
				}
				staged[i] = true
				continue
			}
			if w.plan.spec == nil {
				skipped++
				continue
			}
			load := fresh[w.nodeID]
			if load == nil && moved[w.nodeID] {
				node := tx.GetNode(w.nodeID)
				if node == nil {
					skipped++
					continue
				}
				info = scheduler.NodeInfo{Node: node}
				load = &info
			}
			if load != nil && !fits(w.plan, load) {
				skipped++
				misfits++
				continue
			}
			status = api.TaskStatus{Timestamp: now, State: api.TaskState_TASK_STATE_ASSIGNED, Message: "assigned"}
			setStatus(&task, w.task, w.nodeID, &status)
			if err := tx.UpdateTask(&task); err != nil {
				if changed(err) {
					skipped++
					continue
				}
				return err
			}
			if load != nil && w.plan.capacity {
				load.AddTask(&task)
			}
			staged[i] = true
		}
		return nil
	})
	if err != nil {
		st.failed += len(ws)
		m.failed = true
		if ctx.Err() != nil || !isStoreSentinel(err) {
			// The command may or may not have been applied: list again.
			m.stale = true
		}
		if ctx.Err() == nil {
			p.cfg.Logger.Warn("placement: commit failed; the tasks are planned again", "tasks", len(ws), "err", err)
		}
		return
	}
	if skipped < len(ws) {
		st.commits++
	}
	st.skipped += skipped
	if misfits > 0 {
		// The model disagrees with the store about a node (an event not
		// seen yet, or a write it does not know of): list again rather
		// than plan the same misfit over and over.
		m.stale = true
	}
	for i, w := range ws {
		if staged[i] && w.nodeID != "" {
			m.addLiveOn(w.nodeID, w.task)
			delete(m.presets, w.task.GetId())
		}
	}
}

// freshLoad reads, before anything is staged (so that FindTasks need not
// merge staged writes), the live tasks on each node chosen for a write
// whose plan has capacity filters.
func freshLoad(tx store.ReadTx, ws []write) map[string]*scheduler.NodeInfo {
	var out map[string]*scheduler.NodeInfo
	for _, w := range ws {
		if w.nodeID == "" || !w.plan.capacity {
			continue
		}
		if _, ok := out[w.nodeID]; ok {
			continue
		}
		if node := tx.GetNode(w.nodeID); node != nil {
			if out == nil {
				out = make(map[string]*scheduler.NodeInfo)
			}
			out[w.nodeID] = liveOn(tx, node)
		}
	}
	return out
}

// changedNodes returns the IDs of the nodes whose stored object is not
// the planned one (changed, removed or added), given both lists sorted by
// ID; nil when there are none. Unchanged nodes cost a pointer comparison.
func changedNodes(planned, current []*api.Node) map[string]bool {
	var out map[string]bool
	mark := func(id string) {
		if out == nil {
			out = make(map[string]bool)
		}
		out[id] = true
	}
	i, j := 0, 0
	for i < len(planned) || j < len(current) {
		switch {
		case i < len(planned) && j < len(current) && planned[i] == current[j]:
			i++
			j++
		case j == len(current) || (i < len(planned) && planned[i].GetId() < current[j].GetId()):
			mark(planned[i].GetId())
			i++
		case i == len(planned) || current[j].GetId() < planned[i].GetId():
			mark(current[j].GetId())
			j++
		default:
			mark(planned[i].GetId())
			i++
			j++
		}
	}
	return out
}

// changed reports whether a failed UpdateTask means the task changed
// since it was planned, or is gone: nothing was staged, and the task is
// planned again.
func changed(err error) bool {
	return errors.Is(err, store.ErrSequenceConflict) || errors.Is(err, store.ErrNotFound)
}

// isStoreSentinel reports whether err is one of the store's own errors,
// after which the command was certainly not applied.
func isStoreSentinel(err error) bool {
	for _, s := range []error{store.ErrSequenceConflict, store.ErrNotFound, store.ErrExist, store.ErrNameConflict,
		store.ErrTaskStateBackwards, store.ErrInvalidObject, store.ErrNoProposer} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// liveOn returns the node with the live tasks the transaction sees on it.
func liveOn(tx store.ReadTx, node *api.Node) *scheduler.NodeInfo {
	info := &scheduler.NodeInfo{Node: node}
	for _, t := range tx.FindTasks(store.ByNodeID(node.GetId())) {
		if scheduler.IsLive(t) {
			info.AddTask(t)
		}
	}
	return info
}

// fits runs the plan's filters on the node.
func fits(pl *plan, info *scheduler.NodeInfo) bool {
	for _, f := range pl.filters {
		if !f.Check(pl.spec, info) {
			return false
		}
	}
	return true
}

// withReason returns the task with status.err set to reason, all else
// kept.
func withReason(cur *api.Task, reason string) *api.Task {
	st := &api.TaskStatus{}
	if cur.GetStatus() != nil {
		st = proto.Clone(cur.GetStatus()).(*api.TaskStatus)
	}
	st.Err = reason
	return withStatus(cur, cur.GetNodeId(), st)
}

// withStatus returns a shallow copy of t with another node and status.
// The store clones what it is given, so sharing t's other fields is safe
// and saves a deep copy per task.
func withStatus(t *api.Task, nodeID string, st *api.TaskStatus) *api.Task {
	out := &api.Task{}
	setStatus(out, t, nodeID, st)
	return out
}

// setStatus makes dst a shallow copy of t with another node and status.
// Every field of api.Task is listed; TestWithStatusCopiesEveryField fails
// when the message gains one.
func setStatus(dst, t *api.Task, nodeID string, st *api.TaskStatus) {
	*dst = api.Task{
		Id:           t.GetId(),
		Meta:         t.GetMeta(),
		Spec:         t.GetSpec(),
		ServiceId:    t.GetServiceId(),
		Slot:         t.GetSlot(),
		NodeId:       nodeID,
		Annotations:  t.GetAnnotations(),
		Status:       st,
		DesiredState: t.GetDesiredState(),
		Networks:     t.GetNetworks(),
		Endpoint:     t.GetEndpoint(),
		SpecVersion:  t.GetSpecVersion(),
		ImageDigest:  t.GetImageDigest(),
		Drain:        t.GetDrain(),
	}
}
