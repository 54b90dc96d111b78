package orchestrator

import "slices"

// historyBySlot reaps the dead tasks of each replica slot.
func (w *world) historyBySlot() { w.reap(w.slotsByNumber()) }

// historyByNode reaps the dead tasks of each node's slot.
func (w *world) historyByNode() { w.reap(w.slotsByNode()) }

// reap keeps, in each slot, the newest dead tasks up to the cluster's
// task history retention limit (DefaultTaskHistory when unset; 0 keeps
// none) and deletes the older ones; a global service keeps no history
// for a node that has left the store. It runs last, on the state the rest
// of the plan leads to. Dead means not live and either terminal or on a
// DOWN or gone node; a task still stopping is not dead. Newest is by
// status timestamp, then creation order.
//
// Some dead tasks are kept whatever their age, because the next passes
// read them:
//   - a dead task still desired to run: it records a refused restart, or
//     waits for one (a job waiting for room);
//   - a job's COMPLETE tasks: they record the completions;
//   - the task a READY replacement replaced: its end time sets when the
//     replacement may run;
//   - the tasks that count as restart attempts (see attempts) for a
//     policy with max_attempts that may decide about the slot: the
//     service's, or that of a task of the slot still desired to run.
func (w *world) reap(slots []*slot) {
	for _, s := range slots {
		counted, window := w.attemptWindow(s)
		keep := map[*tv]bool{}
		for _, v := range s.tasks {
			if w.live(v) && v.desired == stateReady {
				if pred := w.predecessor(s, v); pred != nil {
					keep[pred] = true
				}
			}
		}
		var dead []*tv
		for _, v := range s.tasks {
			if v.deleted || v.isNew || w.live(v) || !w.dead(v) {
				continue
			}
			if v.desired <= stateRunning || (w.job && v.state == stateComplete) ||
				(counted && w.isAttempt(v, window)) {
				keep[v] = true
			}
			dead = append(dead, v)
		}
		limit := w.retention
		if s.node != "" && w.nodes[s.node] == nil {
			limit = 0 // a global service's node that left: no slot to keep history for
		}
		if len(dead) <= limit {
			continue
		}
		slices.SortFunc(dead, func(a, b *tv) int {
			if x, y := w.statusAt(a), w.statusAt(b); x != y {
				if x > y {
					return -1
				}
				return 1
			}
			return -w.creationOrder(a, b)
		})
		for i, v := range dead {
			if i >= limit && !keep[v] {
				w.remove(v, w.newGroup(), ReasonHistory)
			}
		}
	}
}

// attemptWindow returns whether a restart policy with max_attempts may
// decide about the slot (the service's, for tasks to come, or that of a
// task of the slot still desired to run) and the widest window such a
// policy counts attempts in (0: unbounded).
func (w *world) attemptWindow(s *slot) (counted bool, window int64) {
	unbounded := false
	consider := func(maxAttempts uint64, win int64) {
		if maxAttempts == 0 {
			return
		}
		counted = true
		if win <= 0 {
			unbounded = true
		}
		window = max(window, win)
	}
	p := w.svc.GetSpec().GetTask().GetRestart()
	consider(p.GetMaxAttempts(), p.GetWindow())
	for _, v := range s.tasks {
		if !v.deleted && v.desired <= stateRunning {
			p := v.t.GetSpec().GetRestart()
			consider(p.GetMaxAttempts(), p.GetWindow())
		}
	}
	if unbounded {
		window = 0
	}
	return counted, window
}
