package orchestrator

// parallelism is how many moves may be in flight at once; 0 is no limit.
func (w *world) parallelism() int {
	return int(w.svc.GetSpec().GetUpdate().GetParallelism())
}

// moves moves the live tasks of the occupied slots off drained nodes.
//
// A move creates a fresh replacement (desired RUNNING, no restart delay,
// not a restart attempt) in the task's slot and stops the old task by
// raising its desired state to SHUTDOWN. With stop-first (the default)
// both happen in one transaction; with start-first the old task keeps
// running until its replacement's status is RUNNING, and is then stopped.
//
// A move is in flight from its start until the old task has stopped: a
// task on a drained node whose status is not terminal and that is either
// desired SHUTDOWN or beyond, or still live while its slot has a
// replacement (live, or dead and waiting for a restart), whichever is
// older. New moves start, in slot order, only while fewer than
// parallelism moves are in flight (parallelism 0: no limit).
//
// A slot whose dead head waits for a restart is not moved: the restart
// is its replacement (restartSlot).
func (w *world) moves(states []*slotState, parallelism int) {
	startFirst := w.startFirst
	var candidates []*slotState
	for _, st := range states {
		leaving := w.leavingTasks(st.s)
		if len(leaving) == 0 {
			continue
		}
		if st.stay != nil && w.live(st.stay) {
			if !startFirst || st.stay.state == stateRunning {
				g := w.newGroup()
				for _, v := range leaving {
					w.retire(v, g, ReasonDrain, w.moveDrain())
				}
			}
			continue
		}
		if st.dead != nil {
			continue
		}
		candidates = append(candidates, st)
	}
	budget := len(candidates)
	if parallelism > 0 {
		budget = min(budget, max(0, parallelism-w.movesInFlight(states)))
	}
	for _, st := range candidates[:budget] {
		g := w.newGroup()
		v := w.create(st.s.num, "", stateRunning, g, ReasonDrain)
		if !startFirst {
			for _, old := range w.leavingTasks(st.s) {
				w.retire(old, g, ReasonDrain, w.moveDrain())
			}
		}
		st.s.add(v)
		st.stay = v
	}
}

// movesInFlight counts the moves in flight (see moves) in the occupied
// slots: the tasks on drained nodes that have not stopped and are either
// desired SHUTDOWN or beyond, or live while their slot has a replacement
// (a live task off drained nodes, or a dead head waiting for a restart).
func (w *world) movesInFlight(states []*slotState) int {
	n := 0
	for _, st := range states {
		replaced := st.dead != nil || len(w.stay(st.s)) > 0
		for _, v := range st.s.tasks {
			if !v.deleted && w.draining(v.t.GetNodeId()) && !v.terminal() &&
				(v.desired >= stateShutdown || (w.live(v) && replaced)) {
				n++
			}
		}
	}
	return n
}

// moveDrain is how long a task moved off a drained node keeps running
// once out of discovery: the service's update config says.
func (w *world) moveDrain() int64 { return w.svc.GetSpec().GetUpdate().GetDrain() }
