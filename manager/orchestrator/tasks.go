package orchestrator

import (
	"cmp"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// Task states used throughout the package.
const (
	statePending  = api.TaskState_TASK_STATE_PENDING
	stateAssigned = api.TaskState_TASK_STATE_ASSIGNED
	stateReady    = api.TaskState_TASK_STATE_READY
	stateRunning  = api.TaskState_TASK_STATE_RUNNING
	stateComplete = api.TaskState_TASK_STATE_COMPLETE
	stateShutdown = api.TaskState_TASK_STATE_SHUTDOWN
	stateFailed   = api.TaskState_TASK_STATE_FAILED
	stateRejected = api.TaskState_TASK_STATE_REJECTED
	stateRemove   = api.TaskState_TASK_STATE_REMOVE
	stateOrphaned = api.TaskState_TASK_STATE_ORPHANED
)

// newTask returns a new task of svc: a copy of the service's task
// template at its current spec version, NEW or PENDING (initialStatus),
// with the desired state given (RUNNING, or READY while a restart delay
// runs). Replicated tasks
// have a slot and no node; global tasks have slot 0 and their node. The
// store stamps Meta when the task is created; the committer gives the ID.
func newTask(svc *api.Service, slot uint64, nodeID string, desired api.TaskState, now time.Time) *api.Task {
	name := svc.GetSpec().GetAnnotations().GetName()
	if nodeID != "" {
		name += "." + nodeID
	} else {
		name += "." + strconv.FormatUint(slot, 10)
	}
	var spec *api.TaskSpec
	if s := svc.GetSpec().GetTask(); s != nil {
		spec = proto.Clone(s).(*api.TaskSpec)
	}
	return &api.Task{
		ServiceId:    svc.GetId(),
		Slot:         slot,
		NodeId:       nodeID,
		Spec:         spec,
		SpecVersion:  svc.GetSpecVersion(),
		ImageDigest:  svc.GetImageDigest(),
		Annotations:  &api.Annotations{Name: name},
		Status:       initialStatus(svc.GetSpec(), now),
		DesiredState: desired,
	}
}

// initialStatus is a new task's status: NEW when the allocator must give
// it addresses first (api.ServiceSpec.NeedsAllocation), else PENDING.
func initialStatus(spec *api.ServiceSpec, now time.Time) *api.TaskStatus {
	if spec.NeedsAllocation() {
		return &api.TaskStatus{State: api.TaskState_TASK_STATE_NEW, Message: "new", Timestamp: now.UnixNano()}
	}
	return &api.TaskStatus{State: statePending, Message: "pending", Timestamp: now.UnixNano()}
}

// terminal reports whether the task's observed state is final.
func (v *tv) terminal() bool { return v.state >= stateComplete }

// nodeDead reports whether the task is placed on a node that is DOWN or
// no longer in the store.
func (w *world) nodeDead(v *tv) bool {
	id := v.t.GetNodeId()
	if id == "" {
		return false
	}
	n := w.nodes[id]
	return n == nil || n.GetStatus().GetState() == api.NodeState_NODE_STATE_DOWN
}

// dead reports whether the task will not run (again): its status is
// terminal or its node is DOWN or gone.
func (w *world) dead(v *tv) bool { return v.terminal() || w.nodeDead(v) }

// live reports whether the task counts as one of the service's running
// tasks: desired RUNNING (or READY) and not dead.
func (w *world) live(v *tv) bool { return !v.deleted && v.desired <= stateRunning && !w.dead(v) }

// unhandled reports whether the task is dead while still desired to run:
// the orchestrator has not decided about it yet, or decided not to
// replace it (the task then records that decision).
func (w *world) unhandled(v *tv) bool {
	return !v.deleted && v.desired <= stateRunning && w.dead(v)
}

// byNode reports whether the task is dead because of its node rather
// than of its own (its status is not terminal).
func (w *world) byNode(v *tv) bool { return !v.terminal() && w.nodeDead(v) }

// draining reports whether the node is drained and not DOWN.
func (w *world) draining(nodeID string) bool {
	n := w.nodes[nodeID]
	return n != nil && n.GetSpec().GetAvailability() == api.NodeAvailability_NODE_AVAILABILITY_DRAIN &&
		n.GetStatus().GetState() != api.NodeState_NODE_STATE_DOWN
}

// leaving reports whether a live task sits on a drained node and must
// move (replicated services and jobs).
func (w *world) leaving(v *tv) bool { return w.live(v) && w.draining(v.t.GetNodeId()) }

// createdAt is the task's creation time; a task the plan creates is
// created now.
func (w *world) createdAt(v *tv) int64 {
	if v.isNew {
		return w.now
	}
	return v.t.GetMeta().GetCreatedAt()
}

// statusAt is the time of the task's last status change.
func (w *world) statusAt(v *tv) int64 {
	if v.isNew || v.orphan {
		return w.now
	}
	return v.t.GetStatus().GetTimestamp()
}

// creationOrder orders tasks as they were created: existing tasks by
// creation time (then ID), then the plan's new tasks in the order made.
func (w *world) creationOrder(a, b *tv) int {
	if a.isNew != b.isNew {
		if a.isNew {
			return 1
		}
		return -1
	}
	if a.isNew {
		return cmp.Compare(a.seq, b.seq)
	}
	if c := cmp.Compare(a.t.GetMeta().GetCreatedAt(), b.t.GetMeta().GetCreatedAt()); c != 0 {
		return c
	}
	return cmp.Compare(a.t.GetId(), b.t.GetId())
}

// better reports whether live task a is a better keeper than b when a
// slot has two: further along, then of a newer spec, then newer.
func (w *world) better(a, b *tv) bool {
	if a.state != b.state {
		return a.state > b.state
	}
	if a.desired != b.desired {
		return a.desired > b.desired
	}
	if x, y := a.t.GetSpecVersion(), b.t.GetSpecVersion(); x != y {
		return x > y
	}
	return w.creationOrder(a, b) > 0
}
