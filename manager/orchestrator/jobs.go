package orchestrator

// replicatedJob reconciles a replicated job: tasks run to completion,
// at most maxConcurrent live at once (0 means 1), until totalCompletions
// slots hold a COMPLETE task. Each slot runs until one of its tasks
// completes; a completed slot is never run again. In order:
//
//  1. tasks in slot 0 are stopped; in a completed slot every live task
//     is stopped (a duplicate run) and the others are left as they are;
//     the other slots are tidied (see tidy);
//  2. a slot that has not completed is occupied when it has a live task
//     or a dead task waiting for (or refused) a restart; occupied slots
//     beyond the completions still needed are given up (see surplus);
//  3. waiting slots are restarted per their restart policy, lowest slot
//     first, while fewer than maxConcurrent tasks are live (a slot that
//     must wait for room stays waiting); a slot refused a restart (say
//     condition none after a failure) stays occupied, so the job ends
//     with fewer completions than asked;
//  4. tasks on drained nodes are moved, always stop-first (moves), so a
//     move never adds a live task;
//  5. fresh tasks are made in the lowest free slots, as many as both
//     the completions still needed and the room under maxConcurrent
//     allow;
//  6. replacements whose restart delay has passed are raised to RUNNING.
//
// A job never has more than maxConcurrent live tasks after a pass unless
// it had more before (max_concurrent lowered by an update): the pass
// then starts nothing and stops nothing for it.
func (w *world) replicatedJob(maxConcurrent, totalCompletions uint64) {
	if maxConcurrent == 0 {
		maxConcurrent = 1
	}
	slots := w.slotsByNumber()
	taken := map[uint64]bool{}
	completed := 0
	var states []*slotState
	for _, s := range slots {
		if s.num == 0 {
			w.stopInvalid(s)
			continue
		}
		if w.completed(s) {
			completed++
			taken[s.num] = true
			g := w.newGroup()
			for _, v := range w.liveTasks(s) {
				w.raise(v, stateShutdown, g, ReasonJobComplete)
			}
			continue
		}
		w.tidy(s)
		if st := w.classify(s); st.occupied() {
			states = append(states, st)
		}
	}
	needed := max(0, atMost(totalCompletions)-completed)
	if len(states) > needed {
		states = w.giveUp(states, len(states)-needed, ReasonScaleDown)
	}
	for _, st := range states {
		taken[st.s.num] = true
	}
	w.restartJobSlots(states, maxConcurrent)
	w.moves(states, w.parallelism())
	// Moves that ended stopped tasks: restarts that waited may fit now.
	w.restartJobSlots(states, maxConcurrent)
	if n := min(needed-len(states), atMost(maxConcurrent)-w.countLive()); n > 0 {
		w.fill(n, taken, ReasonScaleUp)
	}
	w.releaseReady(slots)
}

// completed reports whether a job's slot (or node) holds a COMPLETE task.
func (w *world) completed(s *slot) bool {
	for _, v := range s.tasks {
		if !v.deleted && v.state == stateComplete {
			return true
		}
	}
	return false
}

// restartJobSlots restarts the waiting slots, lowest first, while fewer
// than maxConcurrent tasks are live; the others keep waiting.
func (w *world) restartJobSlots(states []*slotState, maxConcurrent uint64) {
	live := w.countLive()
	for _, st := range states {
		if st.dead == nil || (st.verdict.allowed && live >= atMost(maxConcurrent)) {
			continue
		}
		if w.restartSlot(st, "") {
			// Counted again: the restart may also have stopped a task
			// leaving a drained node in the same slot.
			live = w.countLive()
		}
	}
}

// countLive returns how many of the service's tasks are live.
func (w *world) countLive() int {
	n := 0
	for _, v := range w.tasks {
		if w.live(v) {
			n++
		}
	}
	return n
}
