package orchestrator

import "github.com/shoalhq/shoal/proto/api"

// global reconciles a global service (job false) or a global job (job
// true): one live task per eligible node, with its node preset and slot
// 0. A node is eligible when its status is not DOWN, its availability is
// not DRAIN and it satisfies the service's placement constraints
// (constraints.match); a PAUSE node keeps its task but gets no new one.
// Resources and platforms are placement's concern: a task the node
// cannot take stays PENDING with placement's reason. Per node, in node
// ID order:
//
//   - tasks with no node, or on a node no longer in the store, are
//     stopped (desired SHUTDOWN);
//   - on a node that is not eligible (DOWN, drained, or no longer
//     matching the constraints) live tasks are stopped and dead ones
//     still desired to run are released, so that the node gets a fresh
//     task if it becomes eligible again; a global job's COMPLETE tasks
//     are kept as they are;
//   - a global job's node that holds a COMPLETE task is done: its live
//     tasks are stopped and it gets no new task, whenever it joined;
//   - otherwise the node's tasks are tidied (see tidy; for a global
//     service a node may hold an outdated and a current live task during
//     a start-first update); a node with no live task gets its dead task
//     restarted per the restart policy or, when its last task was
//     stopped on request or it has none, a fresh task.
//
// Then, for a global service (not a job: jobs are not rolled, as in
// swarm), the rolling-update supervisor (update) replaces the outdated
// tasks of the eligible nodes that hold a live task or were restarted,
// each by a task of the current spec on the same node, as it does the
// slots of a replicated service. A paused node's slot is on hold: its
// outdated task keeps running until the node is active again. A node
// that joins during an update gets a task of the current spec, like any
// fresh task.
//
// A global job thus runs one task to completion on every node that is
// eligible when the job starts and on every node that becomes eligible
// later (as in swarm).
func (w *world) global(job bool) {
	w.splitUpdates = !job
	cons := parseConstraints(w.svc.GetSpec().GetTask().GetPlacement().GetConstraints())
	byNode := map[string]*slot{}
	var slots []*slot
	for _, s := range w.slotsByNode() {
		if n := w.nodes[s.node]; n == nil {
			reason := ReasonNodeDown
			if s.node == "" {
				reason = ReasonInvalidSlot
			}
			for _, v := range s.tasks {
				if w.live(v) || w.unhandled(v) {
					w.raise(v, stateShutdown, w.newGroup(), reason)
				}
			}
			continue
		}
		byNode[s.node] = s
	}
	var rolls []rollSlot
	for _, n := range sortedNodes(w.in.Nodes) {
		s := byNode[n.GetId()]
		if s == nil {
			s = &slot{node: n.GetId()}
		}
		slots = append(slots, s)
		down := n.GetStatus().GetState() == api.NodeState_NODE_STATE_DOWN
		avail := n.GetSpec().GetAvailability()
		if down || avail == api.NodeAvailability_NODE_AVAILABILITY_DRAIN || !cons.match(n) {
			reason := ReasonIneligible
			if down {
				reason = ReasonNodeDown
			}
			for _, v := range s.tasks {
				if (w.live(v) || w.unhandled(v)) && !(job && v.state == stateComplete) {
					w.raise(v, stateShutdown, w.newGroup(), reason)
				}
			}
			continue
		}
		if job && w.completed(s) {
			g := w.newGroup()
			for _, v := range w.liveTasks(s) {
				w.raise(v, stateShutdown, g, ReasonJobComplete)
			}
			continue
		}
		w.tidy(s)
		st := w.classify(s)
		canStart := avail != api.NodeAvailability_NODE_AVAILABILITY_PAUSE
		if st.hasLive {
			rolls = append(rolls, rollSlot{s: s, hold: !canStart})
			continue
		}
		if st.dead != nil {
			if st.verdict.allowed && !canStart {
				continue // restarted once the node is active again
			}
			if w.restartSlot(st, n.GetId()) {
				rolls = append(rolls, rollSlot{s: s})
			}
			continue
		}
		if canStart {
			s.add(w.create(0, n.GetId(), stateRunning, w.newGroup(), ReasonScaleUp))
		}
	}
	if !job {
		w.update(rolls)
	}
	w.releaseReady(slots)
}
