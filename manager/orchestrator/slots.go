package orchestrator

import (
	"cmp"
	"slices"
)

// slot is the tasks of one replica slot (replicated services and jobs)
// or of one node (global services), in creation order. Over time a slot
// holds one live task and the dead tasks it replaced.
type slot struct {
	num   uint64 // replica slot number; 0 for a node's slot
	node  string // the node of a global service's slot
	tasks []*tv
}

// add appends a task the plan creates (it is the newest).
func (s *slot) add(v *tv) { s.tasks = append(s.tasks, v) }

// stay returns the slot's live tasks that are not leaving a drained node.
func (w *world) stay(s *slot) []*tv {
	var out []*tv
	for _, v := range s.tasks {
		if w.live(v) && !w.leaving(v) {
			out = append(out, v)
		}
	}
	return out
}

// leavingTasks returns the slot's live tasks on drained nodes.
func (w *world) leavingTasks(s *slot) []*tv {
	var out []*tv
	for _, v := range s.tasks {
		if w.leaving(v) {
			out = append(out, v)
		}
	}
	return out
}

// liveTasks returns the slot's live tasks.
func (w *world) liveTasks(s *slot) []*tv {
	var out []*tv
	for _, v := range s.tasks {
		if w.live(v) {
			out = append(out, v)
		}
	}
	return out
}

// head returns the newest task of the slot that is not leaving a drained
// node, or nil. When the slot has no live task, the head says what the
// slot is waiting for: an unhandled dead head must be restarted (or was
// refused a restart); any other head leaves the slot free.
func (w *world) head(s *slot) *tv {
	for i := len(s.tasks) - 1; i >= 0; i-- {
		if v := s.tasks[i]; !v.deleted && !w.leaving(v) {
			return v
		}
	}
	return nil
}

// slotsByNumber groups the service's tasks by slot number, slots in
// ascending order and each slot's tasks in creation order.
func (w *world) slotsByNumber() []*slot {
	return groupSlots(w, func(v *tv) uint64 { return v.t.GetSlot() },
		func(n uint64) *slot { return &slot{num: n} })
}

// slotsByNode groups the service's tasks by node, nodes in ID order and
// each node's tasks in creation order. Tasks with no node are under "".
func (w *world) slotsByNode() []*slot {
	return groupSlots(w, func(v *tv) string { return v.t.GetNodeId() },
		func(id string) *slot { return &slot{node: id} })
}

// groupSlots groups the service's tasks into slots by key, slots in key
// order and each slot's tasks in creation order; newSlot makes the slot
// of a key.
func groupSlots[K cmp.Ordered](w *world, key func(*tv) K, newSlot func(K) *slot) []*slot {
	m := map[K]*slot{}
	for _, v := range w.tasks {
		k := key(v)
		s := m[k]
		if s == nil {
			s = newSlot(k)
			m[k] = s
		}
		s.tasks = append(s.tasks, v)
	}
	keys := make([]K, 0, len(m))
	for k, s := range m {
		slices.SortFunc(s.tasks, w.creationOrder)
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]*slot, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// tidy settles a slot's leftovers before any counting:
//   - an unhandled dead task that is not the slot's head, or that a live
//     task of the slot is newer than, was superseded: its desired state
//     is raised to SHUTDOWN (and, when its node is down, its status
//     marked ORPHANED: it has been replaced);
//   - when more than one task of the slot is live outside drained nodes,
//     the best one (furthest along, newest spec, newest) is kept and the
//     others are stopped; the same for the live tasks on drained nodes,
//     so that a slot holds at most one of each. In a replicated service
//     outdated tasks (see outdated) and current ones are kept apart: a
//     start-first update holds one of each in a slot, and the update
//     supervisor stops the old one when the new one runs.
func (w *world) tidy(s *slot) {
	stay := w.stay(s)
	head := w.head(s)
	newestLive := -1
	for i, v := range s.tasks {
		if w.live(v) {
			newestLive = i
		}
	}
	for i, v := range s.tasks {
		if !w.unhandled(v) || (len(stay) == 0 && v == head && i > newestLive) {
			continue
		}
		g := w.newGroup()
		if w.byNode(v) {
			w.markOrphaned(v, g, ReasonSuperseded)
		}
		w.raise(v, stateShutdown, g, ReasonSuperseded)
	}
	if w.splitUpdates {
		var old, cur []*tv
		for _, v := range stay {
			if w.outdated(v) {
				old = append(old, v)
			} else {
				cur = append(cur, v)
			}
		}
		w.keepOne(old)
		w.keepOne(cur)
	} else {
		w.keepOne(stay)
	}
	w.keepOne(w.leavingTasks(s))
}

// keepOne stops all the live tasks but the best one (see better).
func (w *world) keepOne(live []*tv) {
	if len(live) < 2 {
		return
	}
	keep := live[0]
	for _, v := range live[1:] {
		if w.better(v, keep) {
			keep = v
		}
	}
	for _, v := range live {
		if v != keep {
			w.raise(v, stateShutdown, w.newGroup(), ReasonDuplicate)
		}
	}
}

// slotState is what a slot needs, after tidy.
type slotState struct {
	s *slot
	// hasLive: the slot has a live task (on a drained node or not).
	hasLive bool
	// stay is the slot's live task outside drained nodes, if any.
	stay *tv
	// dead is the slot's head when it is unhandled and dead and the slot
	// has no live task outside drained nodes: it waits for a restart
	// decision, or was refused a restart.
	dead    *tv
	verdict verdict
}

// occupied reports whether the slot counts toward the service's tasks.
func (st *slotState) occupied() bool { return st.hasLive || st.dead != nil }

// classify returns the slot's state, with the restart verdict of a dead
// head that waits.
func (w *world) classify(s *slot) *slotState {
	st := &slotState{s: s}
	for _, v := range s.tasks {
		if w.live(v) {
			st.hasLive = true
			if !w.leaving(v) {
				st.stay = v
			}
		}
	}
	if st.stay == nil {
		if h := w.head(s); h != nil && w.unhandled(h) {
			st.dead = h
			st.verdict = w.decide(h, s)
		}
	}
	return st
}

// stopSlot stops every live task of the slot, or releases the dead head
// that was waiting in it (its desired state is raised to SHUTDOWN, which
// frees the slot).
func (w *world) stopSlot(st *slotState, reason string) {
	g := w.newGroup()
	for _, v := range st.s.tasks {
		if w.live(v) {
			w.raise(v, stateShutdown, g, reason)
		}
	}
	if st.dead != nil {
		w.raise(st.dead, stateShutdown, g, reason)
	}
}

// restartSlot replaces the slot's dead head when its verdict allows it,
// in one group: the head's desired state is raised to SHUTDOWN (and its
// status marked ORPHANED when its node is down) and a replacement is
// created on node (empty for replicated tasks), desired READY until the
// restart delay has passed; with stop-first moves, a task of the slot
// still leaving a drained node is stopped in the same group (the
// replacement is its replacement too). It returns whether it restarted.
// When the restart is refused, any task still leaving a drained node in
// the slot is stopped: the move has nothing to move to.
func (w *world) restartSlot(st *slotState, node string) bool {
	h, vd := st.dead, st.verdict
	if !vd.allowed {
		w.wakeAt(vd.retryAt)
		for _, v := range w.leavingTasks(st.s) {
			w.retire(v, w.newGroup(), ReasonDrain, w.moveDrain())
		}
		return false
	}
	g := w.newGroup()
	reason := ReasonRestart
	if w.byNode(h) {
		reason = ReasonNodeDown
		w.markOrphaned(h, g, reason)
	}
	w.raise(h, stateShutdown, g, reason)
	desired := stateRunning
	if vd.release > w.now {
		desired = stateReady
		w.wakeAt(vd.release)
	}
	if !w.startFirst {
		for _, l := range w.leavingTasks(st.s) {
			w.retire(l, g, ReasonDrain, w.moveDrain())
		}
	}
	v := w.create(st.s.num, node, desired, g, reason)
	st.s.add(v)
	st.stay, st.dead, st.hasLive = v, nil, true
	return true
}

// surplus picks n occupied slots to give up when a service has more than
// it needs, in this order:
//  1. slots with no live task (a dead task waiting for, or refused, a
//     restart), highest slot number first;
//  2. slots whose task is not placed yet (no node, state below ASSIGNED),
//     oldest first;
//  3. slots with a task leaving a drained node, oldest first;
//  4. the others: first the task on the node that runs the most live
//     tasks of the service (counted again after each pick), then the
//     oldest (lowest created_at);
//
// ties go to the higher slot number.
func (w *world) surplus(states []*slotState, n int) []*slotState {
	type cand struct {
		st      *slotState
		rank    int
		node    string
		created int64
	}
	load := map[string]int{}
	for _, st := range states {
		for _, v := range w.liveTasks(st.s) {
			load[v.t.GetNodeId()]++
		}
	}
	older := func(a, b *cand) int { // oldest first, then the higher slot
		if c := cmp.Compare(a.created, b.created); c != 0 {
			return c
		}
		return cmp.Compare(b.st.s.num, a.st.s.num)
	}
	var low []*cand
	byNode := map[string][]*cand{}
	for _, st := range states {
		c := &cand{st: st}
		rep := st.stay
		if l := w.leavingTasks(st.s); rep == nil && len(l) > 0 {
			rep = l[len(l)-1]
		}
		switch {
		case rep == nil:
			c.rank = 0
		case rep.t.GetNodeId() == "" || rep.state < stateAssigned:
			c.rank = 1
		case len(w.leavingTasks(st.s)) > 0:
			c.rank = 2
		default:
			c.rank = 3
		}
		if rep != nil {
			c.node, c.created = rep.t.GetNodeId(), w.createdAt(rep)
		}
		if c.rank < 3 {
			low = append(low, c)
		} else {
			byNode[c.node] = append(byNode[c.node], c)
		}
	}
	slices.SortFunc(low, func(a, b *cand) int {
		if a.rank != b.rank {
			return cmp.Compare(a.rank, b.rank)
		}
		if a.rank == 0 {
			return cmp.Compare(b.st.s.num, a.st.s.num)
		}
		return older(a, b)
	})
	var out []*slotState
	pick := func(c *cand) {
		out = append(out, c.st)
		for _, v := range w.liveTasks(c.st.s) {
			load[v.t.GetNodeId()]--
		}
	}
	for _, c := range low {
		if len(out) == n {
			return out
		}
		pick(c)
	}
	nodes := make([]string, 0, len(byNode))
	for id, cs := range byNode {
		slices.SortFunc(cs, older)
		nodes = append(nodes, id)
	}
	slices.Sort(nodes)
	for len(out) < n {
		best := ""
		for _, id := range nodes {
			if len(byNode[id]) == 0 {
				continue
			}
			if best == "" || load[id] > load[best] ||
				(load[id] == load[best] && older(byNode[id][0], byNode[best][0]) < 0) {
				best = id
			}
		}
		if best == "" {
			break
		}
		pick(byNode[best][0])
		byNode[best] = byNode[best][1:]
	}
	return out
}

// fill creates n fresh tasks, desired RUNNING, in the lowest slot
// numbers (from 1) that taken does not hold.
func (w *world) fill(n int, taken map[uint64]bool, reason string) {
	for num := uint64(1); n > 0; num++ {
		if taken[num] {
			continue
		}
		w.create(num, "", stateRunning, w.newGroup(), reason)
		taken[num] = true
		n--
	}
}
