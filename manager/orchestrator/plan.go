package orchestrator

import (
	"fmt"
	"strings"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// ActionKind says what an Action does to the store.
type ActionKind int

// Action kinds.
const (
	// ActionCreate creates Action.Task, which the committer gives a new ID.
	ActionCreate ActionKind = iota + 1
	// ActionUpdate raises a task's desired state (with Drain, the time
	// it keeps running once out of discovery) and, with Orphan, marks its
	// status ORPHANED.
	ActionUpdate
	// ActionDelete deletes a task.
	ActionDelete
)

// String names the kind in logs and test failures.
func (k ActionKind) String() string {
	switch k {
	case ActionCreate:
		return "create"
	case ActionUpdate:
		return "update"
	case ActionDelete:
		return "delete"
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// Reasons name why an Action is in a plan; they are stable strings for
// logs and tests.
const (
	ReasonScaleUp        = "scale-up"        // a slot (or an eligible node, or a job slot) had no task
	ReasonScaleDown      = "scale-down"      // a surplus slot is stopped or released
	ReasonRestart        = "restart"         // a task that ended is replaced per its restart policy
	ReasonRestartDelay   = "restart-delay"   // a replacement's restart delay has passed
	ReasonNodeDown       = "node-down"       // the task's node is DOWN or gone
	ReasonDrain          = "drain"           // a task is moved off a drained node
	ReasonIneligible     = "ineligible-node" // a global task's node no longer qualifies
	ReasonDuplicate      = "duplicate"       // a slot had more than one live task
	ReasonSuperseded     = "superseded"      // a dead task that a newer task of its slot replaced
	ReasonJobComplete    = "job-complete"    // the job slot (or node) has completed
	ReasonInvalidSlot    = "invalid-slot"    // a task that no slot of the service can hold
	ReasonServiceRemoved = "service-removed" // the task's service is gone
	ReasonHistory        = "history"         // a dead task beyond the retention limit
	ReasonUpdate         = "update"          // an outdated task is replaced by a rolling update
)

// Action is one write of a plan.
//
// For ActionUpdate and ActionDelete, TaskID and Version name the task and
// the Meta.Version it was read at: the committer refuses the plan when the
// task has changed since. An update sets DesiredState when it is not zero
// (always a raise) and, when Orphan is set, the status to ORPHANED.
type Action struct {
	Kind ActionKind
	// Task is the task to create (ActionCreate), without ID or Meta.
	Task *api.Task
	// TaskID and Version identify the task to update or delete.
	TaskID  string
	Version uint64
	// DesiredState is the desired state an update raises to; zero keeps it.
	DesiredState api.TaskState
	// Orphan marks the task's status ORPHANED (its node is down and the
	// task has been replaced).
	Orphan bool
	// Drain, with a DesiredState of SHUTDOWN that the task did not have,
	// becomes the task's drain: how long its agent keeps it running
	// after withdrawing its endpoints (nanoseconds).
	Drain int64
	// Group ties actions that must be committed in the same transaction,
	// such as stopping a task and creating its replacement.
	Group int
	// Reason is one of the Reason constants.
	Reason string
}

// String renders the action for logs and test failures.
func (a Action) String() string {
	switch a.Kind {
	case ActionCreate:
		return fmt.Sprintf("create slot=%d node=%q desired=%s (%s)", a.Task.GetSlot(), a.Task.GetNodeId(), a.Task.GetDesiredState(), a.Reason)
	case ActionUpdate:
		s := fmt.Sprintf("update %s", a.TaskID)
		if a.DesiredState != 0 {
			s += " desired=" + a.DesiredState.String()
		}
		if a.Drain > 0 {
			s += " drain=" + time.Duration(a.Drain).String()
		}
		if a.Orphan {
			s += " orphaned"
		}
		return s + " (" + a.Reason + ")"
	case ActionDelete:
		return fmt.Sprintf("delete %s (%s)", a.TaskID, a.Reason)
	}
	return a.Kind.String()
}

// Plan is what one reconcile step decided for one service: the writes
// that bring its tasks toward the spec, and when to look again.
//
// A Plan is a pure value: computing it reads nothing but the Input and
// writes nothing. The committer applies it (see Orchestrator) only while
// the service still has ServiceVersion (absent when ServiceVersion is 0)
// and every task it touches still has the version it was read at.
type Plan struct {
	ServiceID string
	// ServiceVersion is the Meta.Version of the service the plan was
	// computed from; 0 when the service is absent (removed).
	ServiceVersion uint64
	// Now is the instant the plan was computed for; new tasks and
	// ORPHANED statuses carry it as their status timestamp.
	Now time.Time
	// Actions are ordered by Group; at most one update or delete per task.
	Actions []Action
	// Wake is when the plan would change without any store event (a
	// restart delay ends, a restart window frees an attempt, an update's
	// monitor or delay ends); zero when nothing is due.
	Wake time.Time
	// UpdateStatus, when not nil, becomes the service's update_status,
	// written with the last transaction of the plan.
	UpdateStatus *api.UpdateStatus
	// Rollback swaps the service's spec and previous_spec, raises its
	// spec_version by one (to UpdateStatus.SpecVersion) and sets its
	// image_digest to RollbackDigest, in the same write: an update whose
	// failure action is rollback failed.
	Rollback       bool
	RollbackDigest string
}

// Empty reports whether the plan writes nothing.
func (p *Plan) Empty() bool { return len(p.Actions) == 0 && p.UpdateStatus == nil && !p.Rollback }

// Count returns how many actions of the kind the plan holds.
func (p *Plan) Count(k ActionKind) int {
	n := 0
	for _, a := range p.Actions {
		if a.Kind == k {
			n++
		}
	}
	return n
}

// String renders the plan, one action per line, for logs and tests.
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plan for service %s (version %d)", p.ServiceID, p.ServiceVersion)
	for _, a := range p.Actions {
		fmt.Fprintf(&b, "\n  [%d] %s", a.Group, a)
	}
	if p.Rollback {
		fmt.Fprintf(&b, "\n  roll back to the previous spec (digest %q)", p.RollbackDigest)
	}
	if u := p.UpdateStatus; u != nil {
		fmt.Fprintf(&b, "\n  update status %s for spec version %d: %s", u.GetState(), u.GetSpecVersion(), u.GetMessage())
	}
	if !p.Wake.IsZero() {
		fmt.Fprintf(&b, "\n  wake at %s", p.Wake.UTC().Format(time.RFC3339Nano))
	}
	return b.String()
}
