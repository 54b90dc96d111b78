package main

// Whether a service has converged: a pure function of the service and
// its tasks at one moment, so it can be tested on fixed task lists. The
// waiting loop (converge_wait.go) calls it on every poll and the progress
// printer (converge_progress.go) shows what it found.

import (
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// maxProgressSlots is the most slots the progress shows one line each
// for; beyond it only the overall count and distinct errors are shown.
const maxProgressSlots = 100

// convergence is what one look at a service's tasks says.
type convergence struct {
	// job is set for replicated and global jobs: they are done when
	// their tasks complete, not when they run.
	job bool
	// done is how many tasks of the current spec run (services) or have
	// completed (jobs); desired is how many are wanted.
	done, desired int
	// known is false while a global service or job has no task yet, so
	// that desired means nothing.
	known bool
	// converged is set when done reached desired (and, for services, no
	// more tasks run than wanted).
	converged bool
	// slots is the current task of each slot (each node for global
	// modes), in display order, labelled "2/6" or by node ID.
	slots []progressSlot
	// failures are the failed or rejected tasks of the current spec that
	// are no longer the current task of their slot, labelled like their
	// slot; the label is "" when the slot is not shown.
	failures []progressSlot
}

// progressSlot is one task shown in the progress, with its label.
type progressSlot struct {
	label string
	task  *api.Task
}

// overall is the overall progress, e.g. "3 out of 6 tasks", or "3 out
// of 3 tasks (2 more to stop)" while a service scaled down still runs
// more tasks than it wants.
func (c convergence) overall() string {
	switch {
	case !c.known:
		return "waiting for the first task"
	case !c.job && c.done > c.desired:
		return fmt.Sprintf("%d out of %d tasks (%d more to stop)", c.desired, c.desired, c.done-c.desired)
	}
	return fmt.Sprintf("%d out of %d tasks", min(c.done, c.desired), c.desired)
}

// upToDate reports whether t was made from the service's current spec:
// its spec version is the service's, or (because the spec version goes
// up on every change, scaling included, and an orchestrator may keep
// tasks whose template did not change) its task spec equals the
// service's task template.
func upToDate(svc *api.Service, t *api.Task) bool {
	return t.GetSpecVersion() == svc.GetSpecVersion() || proto.Equal(t.GetSpec(), svc.GetSpec().GetTask())
}

// slotKey identifies the place a task fills: its slot for replicated
// modes, its node for global ones, else (neither set) the task itself.
type slotKey struct {
	slot uint64
	node string
	task string
}

// keyOf is the place t fills.
func keyOf(t *api.Task, global bool) slotKey {
	switch {
	case !global && t.GetSlot() != 0:
		return slotKey{slot: t.GetSlot()}
	case global && t.GetNodeId() != "":
		return slotKey{node: t.GetNodeId()}
	}
	return slotKey{task: t.GetId()}
}

// less orders slots by number, nodes by ID, then tasks by ID.
func (k slotKey) less(o slotKey) bool {
	if k.slot != o.slot {
		return k.slot < o.slot
	}
	if k.node != o.node {
		return k.node < o.node
	}
	return k.task < o.task
}

// assess looks at a service and its tasks (any order, history included).
//
// A task counts when it was made from the current spec (upToDate).
//   - replicated: done is the number of slots with a task RUNNING and
//     desired RUNNING; converged when that equals the replicas.
//   - global: desired is the number of tasks, of any spec, with desired
//     state RUNNING (or READY); converged once there is one and all of
//     them are of the current spec and RUNNING.
//   - replicated job: done is the number of slots with a COMPLETE task;
//     converged when that reaches total_completions.
//   - global job: converged once there is a task of the current spec
//     meant to run or complete, and every such task is COMPLETE.
func assess(svc *api.Service, tasks []*api.Task) convergence {
	mode := svc.GetSpec().GetMode()
	global := mode.GetGlobal() != nil || mode.GetGlobalJob() != nil
	c := convergence{job: mode.GetReplicatedJob() != nil || mode.GetGlobalJob() != nil}
	// live is the highest desired state of a task still wanted.
	live := api.TaskState_TASK_STATE_RUNNING
	if c.job {
		live = api.TaskState_TASK_STATE_COMPLETE
	}

	current := map[slotKey]*api.Task{}
	running, completed := map[slotKey]bool{}, map[slotKey]bool{}
	var wanted, wantedDone int
	for _, t := range tasks {
		state, desired := t.GetStatus().GetState(), t.GetDesiredState()
		up := upToDate(svc, t)
		if global && desired <= live {
			// Global modes want every task meant to run, whatever its
			// spec: an old one still running is not yet replaced.
			if up || !c.job {
				wanted++
			}
			if up && ((!c.job && state == api.TaskState_TASK_STATE_RUNNING && desired == api.TaskState_TASK_STATE_RUNNING) ||
				(c.job && state == api.TaskState_TASK_STATE_COMPLETE)) {
				wantedDone++
			}
		}
		if !up {
			continue
		}
		k := keyOf(t, global)
		if state == api.TaskState_TASK_STATE_RUNNING && desired == api.TaskState_TASK_STATE_RUNNING {
			running[k] = true
		}
		if state == api.TaskState_TASK_STATE_COMPLETE {
			completed[k] = true
		}
		if desired <= live && isCurrentOver(t, current[k]) {
			current[k] = t
		}
	}

	switch m := mode.GetMode().(type) {
	case *api.ServiceMode_ReplicatedJob:
		c.desired, c.done, c.known = int(m.ReplicatedJob.GetTotalCompletions()), len(completed), true
		c.converged = c.done >= c.desired
	case *api.ServiceMode_Global, *api.ServiceMode_GlobalJob:
		c.desired, c.done, c.known = wanted, wantedDone, wanted > 0
		c.converged = c.known && c.done == c.desired
	default: // replicated
		c.desired, c.done, c.known = int(mode.GetReplicated().GetReplicas()), len(running), true
		c.converged = c.done == c.desired
	}

	keys := make([]slotKey, 0, len(current))
	for k := range current {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	labels := map[slotKey]string{}
	for i, k := range keys {
		label := ""
		switch {
		case global && k.node != "":
			label = truncateID(k.node)
		case global:
			label = "task " + truncateID(k.task)
		case i < c.desired:
			label = fmt.Sprintf("%d/%d", i+1, c.desired)
		default:
			continue // beyond the replicas wanted: being removed
		}
		labels[k] = label
		c.slots = append(c.slots, progressSlot{label: label, task: current[k]})
	}
	for _, t := range tasks {
		state := t.GetStatus().GetState()
		if failed := state == api.TaskState_TASK_STATE_FAILED || state == api.TaskState_TASK_STATE_REJECTED; !failed || !upToDate(svc, t) {
			continue
		}
		if k := keyOf(t, global); current[k] != t {
			c.failures = append(c.failures, progressSlot{label: labels[k], task: t})
		}
	}
	sort.SliceStable(c.failures, func(i, j int) bool {
		return c.failures[i].task.GetStatus().GetTimestamp() < c.failures[j].task.GetStatus().GetTimestamp()
	})
	return c
}

// isCurrentOver reports whether t rather than cur is the current task of
// their slot: the one with the lowest desired state (a replacement held
// by a restart delay, READY, over a failed task still desired RUNNING),
// then the newest.
func isCurrentOver(t, cur *api.Task) bool {
	switch {
	case cur == nil:
		return true
	case t.GetDesiredState() != cur.GetDesiredState():
		return t.GetDesiredState() < cur.GetDesiredState()
	case t.GetMeta().GetCreatedAt() != cur.GetMeta().GetCreatedAt():
		return t.GetMeta().GetCreatedAt() > cur.GetMeta().GetCreatedAt()
	}
	return t.GetId() > cur.GetId()
}
