package orchestrator

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// DefaultUpdateMonitor is how long a new task of an update is watched
// when the update config does not say.
const DefaultUpdateMonitor = 5 * time.Second

// Update state messages, stable strings for tests and the CLI.
const (
	msgUpdating          = "update in progress"
	msgUpdateCompleted   = "update completed"
	msgRollbackCompleted = "rollback completed"
	msgRollingBack       = "rollback in progress"
)

// outdated reports whether task v must be replaced by a rolling update:
// it was made from an older spec version than the service's, and its
// task spec (or, when the service has one, its image digest) differs
// from the service's current one. A task whose spec is unchanged by a
// newer spec version (a scale, an endpoint-only change) is current: only
// the slots whose task would change are replaced, which also makes a
// rollback replace only the slots the failed update had reached.
func (w *world) outdated(v *tv) bool {
	if v.isNew || v.t.GetSpecVersion() >= w.svc.GetSpecVersion() {
		return false
	}
	if d := w.svc.GetImageDigest(); d != "" && v.t.GetImageDigest() != d {
		return true
	}
	return !proto.Equal(v.t.GetSpec(), w.svc.GetSpec().GetTask())
}

// updateFailed reports whether v is a task of the current spec version
// that failed: its status is FAILED or REJECTED, or it is live and its
// health check says unhealthy.
func (w *world) updateFailed(v *tv) bool {
	if v.isNew || v.t.GetSpecVersion() != w.svc.GetSpecVersion() {
		return false
	}
	return v.state == stateFailed || v.state == stateRejected ||
		(w.live(v) && v.t.GetStatus().GetHealth() == "unhealthy")
}

// updateConfig is an UpdateConfig with its defaults applied.
type updateConfig struct {
	parallelism int // 0: no limit
	delay       int64
	monitor     int64
	maxRatio    float64
	action      api.UpdateConfig_FailureAction
	startFirst  bool
	drain       int64
}

func newUpdateConfig(c *api.UpdateConfig) updateConfig {
	u := updateConfig{
		parallelism: 1,
		delay:       max(0, c.GetDelay()),
		monitor:     int64(DefaultUpdateMonitor),
		maxRatio:    float64(c.GetMaxFailureRatio()),
		action:      c.GetFailureAction(),
		startFirst:  c.GetOrder() == api.UpdateConfig_ORDER_START_FIRST,
		drain:       max(0, c.GetDrain()),
	}
	if c != nil && c.Parallelism != nil {
		u.parallelism = atMost(*c.Parallelism)
	}
	if c != nil && c.Monitor != nil {
		u.monitor = max(0, *c.Monitor)
	}
	return u
}

// rollSlot is what the update supervisor sees of one slot: an occupied
// replica slot of a replicated service, or a node of a global service
// that holds (or was just given) a task. The callers fill s and hold;
// update fills old and cur.
type rollSlot struct {
	s *slot
	// hold: no replacement may start in the slot (a global service's
	// paused node, which gets no new task). Its outdated task keeps
	// running and does not keep the update from completing; a start-first
	// replacement already there is finished as anywhere else.
	hold bool
	old  *tv // live outdated task off drained nodes
	cur  *tv // live current task off drained nodes
}

// slotKey names a slot from one pass to the next: a replica slot by its
// number, a global service's slot by its node.
type slotKey struct {
	num  uint64
	node string
}

// key returns the slot's key: slotsByNumber gives slots with no node,
// slotsByNode slots with number 0.
func (s *slot) key() slotKey { return slotKey{num: s.num, node: s.node} }

// rollKey returns the key of the slot task v belongs to for the update
// supervisor's counts, and false when it belongs to none: a replicated
// task in slot 0, or a global task with no node or on a node gone from
// the store (whose history the same pass deletes).
func (w *world) rollKey(v *tv) (slotKey, bool) {
	if w.svc.GetSpec().GetMode().GetGlobal() != nil {
		id := v.t.GetNodeId()
		return slotKey{node: id}, id != "" && w.nodes[id] != nil
	}
	return slotKey{num: v.t.GetSlot()}, v.t.GetSlot() != 0
}

// update is the rolling-update supervisor of a replicated or a global
// service; slots are the service's occupied replica slots in slot order,
// or its eligible nodes holding a task in node ID order. It keeps no
// state of its own: everything is read from the tasks and the service's
// update_status (which names the spec_version it is about). Slots are
// told apart by slotKey: by number for replicated services, by node for
// global ones, whose replacements are created on the slot's node (slot
// number 0).
//
//  1. A slot with both an outdated and a current live task (a start-first
//     replacement) has its old task stopped once the new one is RUNNING,
//     or at once when the order is stop-first.
//  2. An update starts (UPDATING, started_at) when a slot not on hold has
//     a live task that is outdated and the status is not about the
//     current spec_version. A PAUSED (or ROLLBACK_PAUSED) update of the
//     current version stays paused; a new spec_version starts it again.
//     A COMPLETED (ROLLBACK_COMPLETED) one starts a new round (UPDATING,
//     ROLLBACK_STARTED) when a slot not on hold has an outdated live task
//     and no current one: a global service's node that was paused
//     through the update and is active again.
//  3. Failures (updateFailed) over updated slots (slots with a task of
//     the current version) above max_failure_ratio trigger the failure
//     action: pause, continue, or rollback (the plan swaps spec and
//     previous_spec; a rollback that fails pauses).
//  4. A slot is in flight while its current-version task has not been
//     RUNNING for monitor (and the slot has no failure), or while an
//     outdated task of the slot that was replaced is stopping (desired
//     SHUTDOWN, not yet terminal); see progress. A done slot holds a
//     worker for delay more. New replacements start, in slot order,
//     while fewer than parallelism slots are in flight or cooling
//     (parallelism 0: all at once), never in a slot on hold.
//  5. With no outdated task outside slots on hold and nothing in flight
//     the update is COMPLETED (ROLLBACK_COMPLETED).
//
// The pass leaves a state in which the next pass at the same instant
// starts nothing more and asks for the same wake-up (the end of the
// earliest monitor or delay while the update goes on). Every old task it
// stops carries the update config's drain.
func (w *world) update(slots []rollSlot) {
	svc := w.svc
	version := svc.GetSpecVersion()
	status := svc.GetUpdateStatus()
	ours := status != nil && status.GetSpecVersion() == version
	rollback := ours && isRollbackState(status.GetState())
	cfg := newUpdateConfig(svc.GetSpec().GetUpdate())
	if rollback {
		cfg = newUpdateConfig(svc.GetSpec().GetRollback())
	}

	outdated, waiting := 0, 0
	for i := range slots {
		us := &slots[i]
		us.old, us.cur = nil, nil
		for _, v := range w.stay(us.s) {
			if w.outdated(v) {
				us.old = v
			} else {
				us.cur = v
			}
		}
		if us.old != nil && us.cur != nil && (!cfg.startFirst || us.cur.state == stateRunning) {
			w.retire(us.old, w.newGroup(), ReasonUpdate, cfg.drain)
			us.old = nil
		}
		if us.old != nil && !us.hold {
			outdated++
			if us.cur == nil {
				waiting++
			}
		}
	}
	if !ours || (waiting > 0 && isCompletedState(status.GetState())) {
		if outdated == 0 {
			return
		}
		st, msg := api.UpdateStatus_STATE_UPDATING, msgUpdating
		if rollback {
			st, msg = api.UpdateStatus_STATE_ROLLBACK_STARTED, msgRollingBack
		}
		status = &api.UpdateStatus{State: st, StartedAt: w.now, SpecVersion: version, Message: msg}
		w.setStatus(status)
	}
	switch status.GetState() {
	case api.UpdateStatus_STATE_UPDATING, api.UpdateStatus_STATE_ROLLBACK_STARTED:
	default:
		return // paused or completed: nothing starts until the spec changes
	}

	// Updated and failed slots are counted over every task of the
	// service, occupied slots or not, so that a pass counts the same as
	// the pass before it.
	updatedSlots, failedSlots := map[slotKey]bool{}, map[slotKey]bool{}
	var lastFailure *tv
	for _, v := range w.tasks {
		k, ok := w.rollKey(v)
		if v.deleted || !ok {
			continue
		}
		if v.isNew || v.t.GetSpecVersion() == version {
			updatedSlots[k] = true
		}
		if w.updateFailed(v) {
			failedSlots[k] = true
			if lastFailure == nil || laterFailure(w, v, lastFailure) {
				lastFailure = v
			}
		}
	}
	updated, failures := len(updatedSlots), len(failedSlots)
	if failures > 0 && float64(failures)/float64(max(updated, 1)) > cfg.maxRatio {
		why := failureMessage(lastFailure)
		switch {
		case cfg.action == api.UpdateConfig_FAILURE_ACTION_CONTINUE:
		case cfg.action == api.UpdateConfig_FAILURE_ACTION_ROLLBACK && !rollback && svc.GetPreviousSpec() != nil:
			w.rollback = true
			w.rollbackDigest = w.previousDigest()
			w.setStatus(&api.UpdateStatus{State: api.UpdateStatus_STATE_ROLLBACK_STARTED, StartedAt: w.now,
				SpecVersion: version + 1, Message: "update rolled back: " + why})
			return
		default:
			st := api.UpdateStatus_STATE_PAUSED
			msg := "update paused: " + why
			if rollback {
				st, msg = api.UpdateStatus_STATE_ROLLBACK_PAUSED, "rollback paused: "+why
			} else if cfg.action == api.UpdateConfig_FAILURE_ACTION_ROLLBACK {
				msg += " (no previous spec to roll back to)"
			}
			w.setStatus(&api.UpdateStatus{State: st, StartedAt: status.GetStartedAt(), SpecVersion: version, Message: msg})
			return
		}
	}

	// Replacements start while the slots in flight or cooling leave room,
	// counted again after each round on the state the round leads to (a
	// stop-first replacement in a slot that counts as failed, under
	// failure action continue, is not in flight), so that the next pass
	// starts nothing more. A pass that pauses or completes the update
	// asks for no wake-up at the end of a monitor or delay: the pass
	// after it, which returns early, asks for none either.
	for {
		inFlight, cooling, wakes := w.progress(slots, failedSlots, cfg)
		if outdated == 0 && inFlight == 0 {
			w.complete(status, rollback)
			return
		}
		budget := outdated
		if cfg.parallelism > 0 {
			budget = min(budget, max(0, cfg.parallelism-inFlight-cooling))
		}
		started := 0
		for i := range slots {
			us := &slots[i]
			if started == budget {
				break
			}
			if us.old == nil || us.cur != nil || us.hold {
				continue
			}
			g := w.newGroup()
			v := w.create(us.s.num, us.s.node, stateRunning, g, ReasonUpdate)
			if !cfg.startFirst {
				w.retire(us.old, g, ReasonUpdate, cfg.drain)
				us.old = nil
				outdated--
			}
			us.s.add(v)
			us.cur = v
			started++
		}
		if started == 0 {
			for _, ts := range wakes {
				w.wakeAt(ts)
			}
			return
		}
	}
}

// progress counts the slots whose replacement is in flight and the done
// ones that still cool down for the delay, and returns the instants
// their monitor or delay ends. A slot is in flight while it holds both
// an outdated and a current task, while an outdated task of it that was
// replaced is stopping, or while its current-version task has not been
// RUNNING for monitor and the slot has no failure. A slot whose outdated
// task waits for a replacement is not in flight: a task of it that is
// stopping is a duplicate (see tidy), not a replacement.
func (w *world) progress(slots []rollSlot, failed map[slotKey]bool, cfg updateConfig) (inFlight, cooling int, wakes []int64) {
	version := w.svc.GetSpecVersion()
	for _, us := range slots {
		switch {
		case us.old != nil && us.cur == nil:
		case w.stopping(us.s) || us.old != nil:
			inFlight++
		case failed[us.s.key()] || us.cur == nil || !(us.cur.isNew || us.cur.t.GetSpecVersion() == version):
		case us.cur.state != stateRunning || w.statusAt(us.cur)+cfg.monitor > w.now:
			inFlight++
			if us.cur.state == stateRunning {
				wakes = append(wakes, w.statusAt(us.cur)+cfg.monitor)
			}
		case cfg.delay > 0 && w.statusAt(us.cur)+cfg.monitor+cfg.delay > w.now:
			cooling++
			wakes = append(wakes, w.statusAt(us.cur)+cfg.monitor+cfg.delay)
		}
	}
	return inFlight, cooling, wakes
}

// complete records that the update (or rollback) of status completed.
func (w *world) complete(status *api.UpdateStatus, rollback bool) {
	st, msg := api.UpdateStatus_STATE_COMPLETED, msgUpdateCompleted
	if rollback {
		st, msg = api.UpdateStatus_STATE_ROLLBACK_COMPLETED, msgRollbackCompleted
		// Keep why the rollback happened (a failed update's reason).
		if why := status.GetMessage(); why != "" && why != msgRollingBack && !strings.HasPrefix(why, msgRollbackCompleted) {
			msg += " (" + why + ")"
		}
	}
	w.setStatus(&api.UpdateStatus{State: st, StartedAt: status.GetStartedAt(), CompletedAt: w.now,
		SpecVersion: w.svc.GetSpecVersion(), Message: msg})
}

// stopping reports whether an outdated task of the slot was stopped and
// has not ended yet: the slot's replacement is still in flight. A task
// never placed (no node, or below ASSIGNED) cannot be running and does
// not count: nothing will ever end it.
func (w *world) stopping(s *slot) bool {
	for _, v := range s.tasks {
		if !v.deleted && v.desired >= stateShutdown && !w.dead(v) && v.t.GetNodeId() != "" && v.state >= stateAssigned &&
			!w.draining(v.t.GetNodeId()) && w.outdated(v) {
			return true
		}
	}
	return false
}

// laterFailure orders failures: the latest status first, then the
// highest ID, so the message names the same task whatever the order.
func laterFailure(w *world, a, b *tv) bool {
	if c := cmp.Compare(w.statusAt(a), w.statusAt(b)); c != 0 {
		return c > 0
	}
	return a.t.GetId() > b.t.GetId()
}

// failureMessage names a failed task and says why it failed.
func failureMessage(v *tv) string {
	st := v.t.GetStatus()
	why := st.GetErr()
	if why == "" {
		why = st.GetMessage()
	}
	what := stateName(v.state)
	if v.state <= stateRunning {
		what = "unhealthy"
	}
	s := fmt.Sprintf("task %s (%s) %s", v.t.GetId(), v.t.GetAnnotations().GetName(), what)
	if why != "" {
		s += ": " + why
	}
	return s
}

// stateName names a task state without its prefix.
func stateName(s api.TaskState) string {
	name := s.String()
	const prefix = "TASK_STATE_"
	if len(name) > len(prefix) && name[:len(prefix)] == prefix {
		return name[len(prefix):]
	}
	return name
}

// previousDigest is the image digest of the newest task made from the
// service's previous spec, which a rollback restores; "" when none.
func (w *world) previousDigest() string {
	prev := w.svc.GetPreviousSpec().GetTask()
	var best *tv
	for _, v := range w.tasks {
		if v.isNew || v.t.GetImageDigest() == "" || !proto.Equal(v.t.GetSpec(), prev) {
			continue
		}
		if best == nil || w.creationOrder(v, best) > 0 {
			best = v
		}
	}
	if best == nil {
		return ""
	}
	return best.t.GetImageDigest()
}

// setStatus records the update status the plan writes.
func (w *world) setStatus(s *api.UpdateStatus) { w.status = s }

// isCompletedState reports whether an update (or rollback) completed.
func isCompletedState(s api.UpdateStatus_State) bool {
	return s == api.UpdateStatus_STATE_COMPLETED || s == api.UpdateStatus_STATE_ROLLBACK_COMPLETED
}

// isRollbackState reports whether the status is about a rollback.
func isRollbackState(s api.UpdateStatus_State) bool {
	switch s {
	case api.UpdateStatus_STATE_ROLLBACK_STARTED, api.UpdateStatus_STATE_ROLLBACK_PAUSED, api.UpdateStatus_STATE_ROLLBACK_COMPLETED:
		return true
	}
	return false
}
