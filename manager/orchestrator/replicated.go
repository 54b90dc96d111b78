package orchestrator

// replicated reconciles a replicated service: `replicas` occupied slots,
// each with one live task. In order:
//
//  1. tasks in slot 0 (no replicated slot) are stopped; each slot is
//     tidied (superseded dead tasks and duplicates, see tidy);
//  2. a slot is occupied when it has a live task, or a dead task waiting
//     for (or refused) a restart; when more slots are occupied than
//     replicas, the surplus is given up in the order of surplus, live
//     tasks stopped (desired SHUTDOWN) and waiting dead tasks released;
//  3. waiting slots are restarted per their tasks' restart policy
//     (restartSlot);
//  4. tasks on drained nodes are moved (moves);
//  5. when fewer slots are occupied than replicas, fresh tasks are made
//     in the lowest free slot numbers (free: not occupied; a slot whose
//     last task was stopped on request is free);
//  6. outdated tasks are replaced by the rolling-update supervisor
//     (update);
//  7. replacements whose restart delay has passed are raised to RUNNING.
func (w *world) replicated(replicas uint64) {
	w.splitUpdates = true
	slots := w.slotsByNumber()
	var states []*slotState
	for _, s := range slots {
		if s.num == 0 {
			w.stopInvalid(s)
			continue
		}
		w.tidy(s)
		if st := w.classify(s); st.occupied() {
			states = append(states, st)
		}
	}
	want := atMost(replicas)
	if len(states) > want {
		states = w.giveUp(states, len(states)-want, ReasonScaleDown)
	}
	for _, st := range states {
		if st.dead != nil {
			w.restartSlot(st, "")
		}
	}
	w.moves(states, w.parallelism())
	if n := want - len(states); n > 0 {
		taken := map[uint64]bool{}
		for _, st := range states {
			taken[st.s.num] = true
		}
		w.fill(n, taken, ReasonScaleUp)
	}
	rolls := make([]rollSlot, len(states))
	for i, st := range states {
		rolls[i] = rollSlot{s: st.s}
	}
	w.update(rolls)
	w.releaseReady(slots)
}

// giveUp stops the n surplus slots of states (see surplus) and returns
// the others, in their order.
func (w *world) giveUp(states []*slotState, n int, reason string) []*slotState {
	gone := map[*slotState]bool{}
	for _, st := range w.surplus(states, n) {
		w.stopSlot(st, reason)
		gone[st] = true
	}
	keep := states[:0:0]
	for _, st := range states {
		if !gone[st] {
			keep = append(keep, st)
		}
	}
	return keep
}

// stopInvalid stops the live tasks of a slot no replica can hold, and
// settles its unhandled dead tasks.
func (w *world) stopInvalid(s *slot) {
	for _, v := range s.tasks {
		if w.live(v) || w.unhandled(v) {
			w.raise(v, stateShutdown, w.newGroup(), ReasonInvalidSlot)
		}
	}
}
