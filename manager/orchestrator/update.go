package orchestrator

import (
	"cmp"
	"fmt"
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

// updateSlot is what the update supervisor sees of one occupied slot.
type updateSlot struct {
	st  *slotState
	old *tv // live outdated task off drained nodes
	cur *tv // live current task off drained nodes
}

// update is the rolling-update supervisor of a replicated service. It
// keeps no state of its own: everything is read from the tasks and the
// service's update_status (which names the spec_version it is about).
//
//  1. A slot with both an outdated and a current live task (a start-first
//     replacement) has its old task stopped once the new one is RUNNING,
//     or at once when the order is stop-first.
//  2. An update starts (UPDATING, started_at) when a live task is
//     outdated and the status is not about the current spec_version. A
//     PAUSED (or ROLLBACK_PAUSED) update of the current version stays
//     paused; a new spec_version starts it again.
//  3. A slot is in flight while its current-version task has not been
//     RUNNING for monitor (and has not failed), or while an outdated task
//     of the slot is stopping (desired SHUTDOWN, not yet terminal). A
//     done slot holds a worker for delay more. New replacements start,
//     in slot order, while fewer than parallelism slots are in flight or
//     cooling (parallelism 0: all at once).
//  4. Failures (updateFailed) over updated slots (slots with a task of
//     the current version) above max_failure_ratio trigger the failure
//     action: pause, continue, or rollback (the plan swaps spec and
//     previous_spec; a rollback that fails pauses).
//  5. With no outdated task and nothing in flight the update is
//     COMPLETED (ROLLBACK_COMPLETED).
func (w *world) update(states []*slotState) {
	svc := w.svc
	version := svc.GetSpecVersion()
	status := svc.GetUpdateStatus()
	ours := status != nil && status.GetSpecVersion() == version
	rollback := ours && isRollbackState(status.GetState())
	cfg := newUpdateConfig(svc.GetSpec().GetUpdate())
	if rollback {
		cfg = newUpdateConfig(svc.GetSpec().GetRollback())
	}

	var slots []updateSlot
	for _, st := range states {
		us := updateSlot{st: st}
		for _, v := range w.stay(st.s) {
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
		slots = append(slots, us)
	}

	outdated := 0
	for _, us := range slots {
		if us.old != nil {
			outdated++
		}
	}
	if !ours {
		if outdated == 0 {
			return
		}
		status = &api.UpdateStatus{State: api.UpdateStatus_STATE_UPDATING, StartedAt: w.now, SpecVersion: version, Message: msgUpdating}
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
	updatedSlots, failedSlots := map[uint64]bool{}, map[uint64]bool{}
	var lastFailure *tv
	for _, v := range w.tasks {
		if v.deleted || v.t.GetSlot() == 0 {
			continue
		}
		if v.isNew || v.t.GetSpecVersion() == version {
			updatedSlots[v.t.GetSlot()] = true
		}
		if w.updateFailed(v) {
			failedSlots[v.t.GetSlot()] = true
			if lastFailure == nil || laterFailure(w, v, lastFailure) {
				lastFailure = v
			}
		}
	}
	updated, failures := len(updatedSlots), len(failedSlots)
	inFlight, cooling := 0, 0
	for _, us := range slots {
		failed := failedSlots[us.st.s.num]
		switch {
		case w.stopping(us.st.s) || (us.old != nil && us.cur != nil):
			inFlight++
		case failed || us.cur == nil || !(us.cur.isNew || us.cur.t.GetSpecVersion() == version):
		case us.cur.state != stateRunning || w.statusAt(us.cur)+cfg.monitor > w.now:
			inFlight++
			if us.cur.state == stateRunning {
				w.wakeAt(w.statusAt(us.cur) + cfg.monitor)
			}
		case cfg.delay > 0 && w.statusAt(us.cur)+cfg.monitor+cfg.delay > w.now:
			cooling++
			w.wakeAt(w.statusAt(us.cur) + cfg.monitor + cfg.delay)
		}
	}

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

	if outdated == 0 && inFlight == 0 {
		st, msg := api.UpdateStatus_STATE_COMPLETED, msgUpdateCompleted
		if rollback {
			st, msg = api.UpdateStatus_STATE_ROLLBACK_COMPLETED, msgRollbackCompleted
		}
		w.setStatus(&api.UpdateStatus{State: st, StartedAt: status.GetStartedAt(), CompletedAt: w.now, SpecVersion: version, Message: msg})
		return
	}

	budget := outdated
	if cfg.parallelism > 0 {
		budget = min(budget, max(0, cfg.parallelism-inFlight-cooling))
	}
	for _, us := range slots {
		if budget == 0 {
			break
		}
		if us.old == nil || us.cur != nil {
			continue
		}
		g := w.newGroup()
		v := w.create(us.st.s.num, "", stateRunning, g, ReasonUpdate)
		if !cfg.startFirst {
			w.retire(us.old, g, ReasonUpdate, cfg.drain)
		}
		us.st.s.add(v)
		us.st.stay = v
		budget--
	}
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

func isRollbackState(s api.UpdateStatus_State) bool {
	switch s {
	case api.UpdateStatus_STATE_ROLLBACK_STARTED, api.UpdateStatus_STATE_ROLLBACK_PAUSED, api.UpdateStatus_STATE_ROLLBACK_COMPLETED:
		return true
	}
	return false
}
