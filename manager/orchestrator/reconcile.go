package orchestrator

import (
	"cmp"
	"slices"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// DefaultTaskHistory is how many dead tasks are kept per slot (per node
// for global services) when the cluster spec does not say.
const DefaultTaskHistory = 5

// Input is everything one reconcile step of one service looks at. The
// objects are read-only: the reconciler never changes them.
type Input struct {
	// ServiceID names the service; Service is nil when it has been removed.
	ServiceID string
	Service   *api.Service
	// Tasks are the tasks whose service_id is ServiceID (others are
	// ignored), in any order.
	Tasks []*api.Task
	// Nodes are all the nodes of the cluster, in any order.
	Nodes []*api.Node
	// Cluster holds the cluster-wide settings; nil means the defaults.
	Cluster *api.Cluster
	// Now is the instant the decisions are taken for.
	Now time.Time
}

// Reconciler computes the Plan for one Input. Build one with
// NewReconciler and ask it with Compute; it is a pure function of its
// Input: the same Input (tasks and nodes in any order) gives the same
// Plan, and Compute reads no clock, store or randomness. New tasks have
// no ID in the plan; the committer gives them one.
type Reconciler struct {
	in Input
}

// NewReconciler returns a reconciler for in.
func NewReconciler(in Input) *Reconciler { return &Reconciler{in: in} }

// Compute returns the plan that moves the service's tasks one step
// toward its spec; see the package documentation for the rules. A second
// Compute on the state the plan leads to, at the same Now, returns an
// empty plan.
func (r *Reconciler) Compute() *Plan {
	w := newWorld(r.in)
	svc := r.in.Service
	if svc == nil {
		w.removedService()
		return w.plan()
	}
	switch m := svc.GetSpec().GetMode().GetMode().(type) {
	case *api.ServiceMode_Replicated:
		w.replicated(m.Replicated.GetReplicas())
		w.historyBySlot()
	case *api.ServiceMode_ReplicatedJob:
		w.replicatedJob(m.ReplicatedJob.GetMaxConcurrent(), m.ReplicatedJob.GetTotalCompletions())
		w.historyBySlot()
	case *api.ServiceMode_Global:
		w.global(false)
		w.historyByNode()
	case *api.ServiceMode_GlobalJob:
		w.global(true)
		w.historyByNode()
	}
	return w.plan()
}

// tv is the reconciler's working view of one task: the task as read (or,
// for a task the plan creates, the task to create) and the changes the
// plan makes to it so far. Every decision reads the projected state, so
// later steps see the effect of earlier ones.
type tv struct {
	t     *api.Task
	isNew bool
	seq   int // creation order of new tasks

	desired api.TaskState
	state   api.TaskState
	orphan  bool
	deleted bool
	drain   int64 // set with a raise to SHUTDOWN that replaces the task

	changed bool
	group   int
	reason  string
}

// world is the working copy of one service's tasks during Compute.
type world struct {
	in      Input
	svc     *api.Service
	now     int64
	nodes   map[string]*api.Node
	tasks   []*tv // existing tasks sorted by ID, then new tasks
	touched []*tv // tasks in the order they were first changed
	groups  int
	// merged links groups that changed the same task, so that they
	// commit together (the lower number stands for both).
	merged    map[int]int
	wake      int64
	retention int
	job       bool
	// startFirst: moves off drained nodes start the replacement before
	// stopping the old task (update order start-first; never for jobs).
	startFirst bool
	// splitUpdates: a slot may hold an outdated and a current live task
	// at once (a start-first update); tidy keeps one of each.
	splitUpdates bool
	// status, rollback and rollbackDigest are the service writes of the
	// update supervisor (see update and Plan).
	status         *api.UpdateStatus
	rollback       bool
	rollbackDigest string
}

func newWorld(in Input) *world {
	w := &world{
		in:        in,
		svc:       in.Service,
		now:       in.Now.UnixNano(),
		nodes:     make(map[string]*api.Node, len(in.Nodes)),
		retention: DefaultTaskHistory,
	}
	for _, n := range in.Nodes {
		w.nodes[n.GetId()] = n
	}
	if spec := in.Cluster.GetSpec(); spec != nil && spec.TaskHistoryRetentionLimit != nil {
		w.retention = int(max(0, min(*spec.TaskHistoryRetentionLimit, 1<<30)))
	}
	switch in.Service.GetSpec().GetMode().GetMode().(type) {
	case *api.ServiceMode_ReplicatedJob, *api.ServiceMode_GlobalJob:
		w.job = true
	}
	w.startFirst = !w.job && in.Service.GetSpec().GetUpdate().GetOrder() == api.UpdateConfig_ORDER_START_FIRST
	for _, t := range in.Tasks {
		if t.GetServiceId() != in.ServiceID {
			continue
		}
		w.tasks = append(w.tasks, &tv{t: t, desired: t.GetDesiredState(), state: t.GetStatus().GetState()})
	}
	slices.SortFunc(w.tasks, func(a, b *tv) int { return cmp.Compare(a.t.GetId(), b.t.GetId()) })
	return w
}

// newGroup starts a group of actions that commit together.
func (w *world) newGroup() int {
	w.groups++
	return w.groups
}

// touch records that v changed in group g.
func (w *world) touch(v *tv, g int, reason string) {
	if !v.changed {
		v.changed, v.group, v.reason = true, g, reason
		w.touched = append(w.touched, v)
		return
	}
	if a, b := w.root(v.group), w.root(g); a != b {
		if w.merged == nil {
			w.merged = map[int]int{}
		}
		w.merged[max(a, b)] = min(a, b)
	}
}

// root returns the group that stands for g and the groups merged with it.
func (w *world) root(g int) int {
	for {
		p, ok := w.merged[g]
		if !ok {
			return g
		}
		g = p
	}
}

// raise raises v's desired state; it never lowers it.
func (w *world) raise(v *tv, desired api.TaskState, g int, reason string) {
	if v.deleted || desired <= v.desired {
		return
	}
	v.desired = desired
	w.touch(v, g, reason)
}

// retire raises v's desired state to SHUTDOWN because a replacement
// takes its place (update, rollback, node drain): the agent keeps it
// running for drain after its endpoints leave discovery.
func (w *world) retire(v *tv, g int, reason string, drain int64) {
	if v.deleted || v.desired >= stateShutdown {
		return
	}
	v.drain = max(0, drain)
	w.raise(v, stateShutdown, g, reason)
}

// markOrphaned sets v's status to ORPHANED (the last state, so always a
// forward move unless it is there already).
func (w *world) markOrphaned(v *tv, g int, reason string) {
	if v.deleted || v.isNew || v.state >= api.TaskState_TASK_STATE_ORPHANED {
		return
	}
	v.state = api.TaskState_TASK_STATE_ORPHANED
	v.orphan = true
	w.touch(v, g, reason)
}

// remove deletes v.
func (w *world) remove(v *tv, g int, reason string) {
	if v.deleted || v.isNew {
		return
	}
	v.deleted = true
	w.touch(v, g, reason)
	v.reason = reason
}

// create adds a new task of the service with the given slot and node.
func (w *world) create(slot uint64, nodeID string, desired api.TaskState, g int, reason string) *tv {
	t := newTask(w.svc, slot, nodeID, desired, w.in.Now)
	v := &tv{t: t, isNew: true, seq: len(w.tasks), desired: desired, state: t.GetStatus().GetState()}
	w.tasks = append(w.tasks, v)
	w.touch(v, g, reason)
	return v
}

// wakeAt asks for another pass at ts, when ts is in the future.
func (w *world) wakeAt(ts int64) {
	if ts > w.now && (w.wake == 0 || ts < w.wake) {
		w.wake = ts
	}
}

// plan turns the changes into a Plan, one action per changed task,
// ordered by group.
func (w *world) plan() *Plan {
	p := &Plan{ServiceID: w.in.ServiceID, ServiceVersion: w.svc.GetMeta().GetVersion(), Now: w.in.Now,
		UpdateStatus: w.status, Rollback: w.rollback, RollbackDigest: w.rollbackDigest}
	if w.wake != 0 {
		p.Wake = time.Unix(0, w.wake)
	}
	for _, v := range w.touched {
		v.group = w.root(v.group)
		switch {
		case v.isNew:
			t := v.t
			t.DesiredState = v.desired
			p.Actions = append(p.Actions, Action{Kind: ActionCreate, Task: t, Group: v.group, Reason: v.reason})
		case v.deleted:
			p.Actions = append(p.Actions, Action{Kind: ActionDelete, TaskID: v.t.GetId(), Version: v.t.GetMeta().GetVersion(), Group: v.group, Reason: v.reason})
		default:
			a := Action{Kind: ActionUpdate, TaskID: v.t.GetId(), Version: v.t.GetMeta().GetVersion(), Orphan: v.orphan, Drain: v.drain, Group: v.group, Reason: v.reason}
			if v.desired != v.t.GetDesiredState() {
				a.DesiredState = v.desired
			}
			if a.DesiredState == 0 && !a.Orphan {
				continue
			}
			p.Actions = append(p.Actions, a)
		}
	}
	slices.SortStableFunc(p.Actions, func(a, b Action) int { return cmp.Compare(a.Group, b.Group) })
	return p
}

// atMost converts a count from a spec to an int, capped so that no
// conversion overflows.
func atMost(n uint64) int { return int(min(n, 1<<31)) }
