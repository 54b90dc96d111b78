package placement

import (
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
	"github.com/shoalhq/shoal/scheduler"
)

// waiting reports whether a task waits for placement: PENDING, with a
// desired state of at most RUNNING.
func waiting(t *api.Task) bool {
	return t.GetStatus().GetState() == api.TaskState_TASK_STATE_PENDING &&
		t.GetDesiredState() <= api.TaskState_TASK_STATE_RUNNING
}

// preset reports whether a task waits for placement on a node chosen in
// advance (a task of a global service).
func preset(t *api.Task) bool { return waiting(t) && t.GetNodeId() != "" }

// isAssignment reports whether an update is a placement's assignment: a
// waiting task became ASSIGNED and live. The placer counts its own
// assignments when it commits them. (relevant also takes a task that
// goes from no node to ASSIGNED on one for an assignment.)
func isAssignment(old, cur *api.Task) bool {
	return waiting(old) && cur.GetStatus().GetState() == api.TaskState_TASK_STATE_ASSIGNED && scheduler.IsLive(cur)
}

// relevant is the watch filter: it keeps the events that change the
// model or may let a task be placed, and drops the rest (status reports
// of running tasks, placement's own assignments and reasons), so that the
// watch carries few events. It runs inside the store's Apply: it only
// looks at the event.
func relevant(ev store.Event) bool {
	switch o := ev.Object.(type) {
	case *api.Node:
		return true
	case *api.Task:
		if ev.Kind != store.EventUpdate {
			return scheduler.IsLive(o) || waiting(o)
		}
		old, ok := ev.Old.(*api.Task)
		if !ok {
			return true
		}
		// The common case first, without reading the old status (a cache
		// miss per event when ten thousand tasks are assigned at once).
		if old.GetNodeId() == "" && o.GetNodeId() != "" && o.GetStatus().GetState() == api.TaskState_TASK_STATE_ASSIGNED &&
			scheduler.IsLive(o) {
			return false
		}
		if isAssignment(old, o) {
			return false
		}
		return scheduler.IsLive(old) != scheduler.IsLive(o) || waiting(old) != waiting(o) || old.GetNodeId() != o.GetNodeId()
	}
	return false
}

// model is what the placer keeps between passes: the live tasks' load
// on each node and the waiting tasks with a preset node. It is built from
// a listing and kept up to date from the watch and the placer's own
// commits. It is a cache for planning only: commits check again against
// the store.
type model struct {
	// load holds, by node ID, the counts of the live tasks on the node
	// (Node is not set). Nodes that run nothing have no entry.
	load map[string]*scheduler.NodeInfo
	// presets are the IDs of waiting tasks with a preset node.
	presets map[string]struct{}
	// unplaced is how many tasks the last pass left without a node.
	unplaced int
	// stale is set when a commit's outcome is unknown: the model may miss
	// assignments, and the state must be listed again.
	stale bool
	// failed is set when a commit of the last pass failed: the next pass
	// waits for the retry interval rather than the batch window.
	failed bool
}

// newModel builds the model from every task in the store.
func newModel(tasks []*api.Task) *model {
	m := &model{load: make(map[string]*scheduler.NodeInfo), presets: make(map[string]struct{})}
	for _, t := range tasks {
		if scheduler.IsLive(t) {
			m.addLive(t)
		} else if preset(t) {
			m.presets[t.GetId()] = struct{}{}
		}
	}
	return m
}

// addLive counts a live task on its node.
func (m *model) addLive(t *api.Task) { m.addLiveOn(t.GetNodeId(), t) }

// addLiveOn counts t as live on the node: t's service, reservations and
// ports; its own node_id is not read.
func (m *model) addLiveOn(nodeID string, t *api.Task) {
	n := m.load[nodeID]
	if n == nil {
		n = &scheduler.NodeInfo{}
		m.load[nodeID] = n
	}
	n.AddTask(t)
}

// removeLive undoes addLive of the same task.
func (m *model) removeLive(t *api.Task) {
	n := m.load[t.GetNodeId()]
	if n == nil {
		return
	}
	n.RemoveTask(t)
	if n.Tasks <= 0 {
		delete(m.load, t.GetNodeId())
	}
}

// apply brings the model up to date with an event that passed relevant,
// and reports whether it calls for a pass: a node changed, a task started
// waiting, or a live task ended while some tasks did not fit.
func (m *model) apply(ev store.Event) bool {
	switch o := ev.Object.(type) {
	case *api.Node:
		return true
	case *api.Task:
		var old, cur *api.Task
		switch ev.Kind {
		case store.EventCreate:
			cur = o
		case store.EventUpdate:
			old, _ = ev.Old.(*api.Task)
			cur = o
		case store.EventRemove:
			old = o
		}
		oldLive, curLive := old != nil && scheduler.IsLive(old), cur != nil && scheduler.IsLive(cur)
		if oldLive {
			m.removeLive(old)
		}
		if curLive {
			m.addLive(cur)
		}
		if old != nil && preset(old) {
			delete(m.presets, old.GetId())
		}
		if cur != nil && preset(cur) {
			m.presets[cur.GetId()] = struct{}{}
		}
		startsWaiting := cur != nil && waiting(cur) &&
			(old == nil || !waiting(old) || old.GetNodeId() != cur.GetNodeId())
		freed := oldLive && !curLive
		return startsWaiting || (freed && m.unplaced > 0)
	}
	return false
}

// snapshot makes the scheduler's snapshot of nodes (sorted by ID, as the
// store lists them) with the model's load on each.
func (m *model) snapshot(nodes []*api.Node) *scheduler.Snapshot {
	infos := make([]scheduler.NodeInfo, len(nodes))
	for i, n := range nodes {
		if l := m.load[n.GetId()]; l != nil {
			infos[i] = *l
		}
		infos[i].Node = n
	}
	return scheduler.NewSnapshot(infos)
}
