package orchestrator

import (
	"slices"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// DefaultRestartDelay is the restart delay when the policy does not say.
const DefaultRestartDelay = 5 * time.Second

// verdict is the restart policy's answer for a dead task.
type verdict struct {
	// allowed: replace the task now; the replacement may run from release.
	allowed bool
	release int64
	// retryAt, when refused and not zero, is when the answer may change
	// (an attempt leaves the restart window).
	retryAt int64
}

// restartDelay returns the policy's delay in nanoseconds.
func restartDelay(p *api.RestartPolicy) int64 {
	if p == nil || p.Delay == nil {
		return int64(DefaultRestartDelay)
	}
	return max(0, *p.Delay)
}

// endedOnItsOwn reports whether a task stopped by itself, by its status:
// it completed, failed, was rejected or was orphaned by its node. A
// SHUTDOWN status is not counted: it is what a requested stop ends in.
func endedOnItsOwn(state api.TaskState) bool {
	switch state {
	case stateComplete, stateFailed, stateRejected, stateOrphaned:
		return true
	}
	return false
}

// decide applies the dead task h's restart policy (the one in h's spec):
//
//   - a job task that completed is never restarted;
//   - condition none never restarts; on-failure restarts a task that
//     FAILED, was REJECTED or ORPHANED, or whose node is down or gone,
//     but not one that COMPLETEd or was SHUTDOWN without being asked;
//     any (the default) restarts every dead task;
//   - with max_attempts > 0, a restart is refused while the slot already
//     counts max_attempts attempts in the window (see attempts); the
//     verdict then says when the oldest attempt leaves the window (never
//     when the window is 0, unbounded);
//   - the replacement may run delay after h's status timestamp (when it
//     ended), at once when its node is down or gone or it was ORPHANED
//     (see releaseAt).
func (w *world) decide(h *tv, s *slot) verdict {
	p := h.t.GetSpec().GetRestart()
	nodeCaused := w.byNode(h)
	if w.job && h.state == stateComplete {
		return verdict{}
	}
	switch p.GetCondition() {
	case api.RestartPolicy_CONDITION_NONE:
		return verdict{}
	case api.RestartPolicy_CONDITION_ON_FAILURE:
		if !nodeCaused && (h.state == stateComplete || h.state == stateShutdown) {
			return verdict{}
		}
	}
	if maxAttempts := p.GetMaxAttempts(); maxAttempts > 0 {
		times := w.attempts(s, p.GetWindow())
		if uint64(len(times)) >= maxAttempts {
			if p.GetWindow() <= 0 {
				return verdict{}
			}
			// The count drops below max_attempts once the attempt at
			// index k (and the older ones) has left the window.
			k := uint64(len(times)) - maxAttempts
			return verdict{retryAt: times[k] + p.GetWindow() + 1}
		}
	}
	return verdict{allowed: true, release: max(w.now, w.releaseAt(h))}
}

// attempts returns, sorted, the times of the restart attempts the slot
// counts within the window ending now (all of them when window is 0):
// one per task of the slot that ended on its own (endedOnItsOwn) and was
// then dealt with (desired state SHUTDOWN or beyond), at the time it
// ended (its status timestamp). Each such task was replaced, or its slot
// released. Counting the tasks that ended rather than the replacements
// keeps the count exact when history reaping deletes other tasks, and
// uses the status times the restart delay also uses.
func (w *world) attempts(s *slot, window int64) []int64 {
	var out []int64
	for _, v := range s.tasks {
		if w.isAttempt(v, window) {
			out = append(out, w.statusAt(v))
		}
	}
	slices.Sort(out)
	return out
}

// isAttempt reports whether v counts as a restart attempt of its slot
// within the window ending now.
func (w *world) isAttempt(v *tv, window int64) bool {
	if v.deleted || v.desired < stateShutdown || !endedOnItsOwn(v.state) {
		return false
	}
	return window <= 0 || w.statusAt(v) >= w.now-window
}

// predecessor returns the task a READY replacement v replaced: the
// newest task of its slot created before it that is not live.
func (w *world) predecessor(s *slot, v *tv) *tv {
	var pred *tv
	for _, u := range s.tasks {
		if u == v {
			break
		}
		if !u.deleted && !w.live(u) {
			pred = u
		}
	}
	return pred
}

// releaseAt is when a replacement of pred may run: pred's restart delay
// after it ended, or at once when it has no predecessor or was orphaned
// by its node.
func (w *world) releaseAt(pred *tv) int64 {
	if pred == nil || pred.state == stateOrphaned || w.byNode(pred) {
		return w.now
	}
	return w.statusAt(pred) + restartDelay(pred.t.GetSpec().GetRestart())
}

// releaseReady raises to RUNNING the READY tasks of the slots whose
// restart delay has passed, and asks to wake when the next one passes.
func (w *world) releaseReady(slots []*slot) {
	for _, s := range slots {
		for _, v := range s.tasks {
			if !w.live(v) || v.desired != stateReady {
				continue
			}
			at := w.releaseAt(w.predecessor(s, v))
			if at <= w.now {
				w.raise(v, stateRunning, w.newGroup(), ReasonRestartDelay)
			} else {
				w.wakeAt(at)
			}
		}
	}
}
