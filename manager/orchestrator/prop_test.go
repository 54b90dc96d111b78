package orchestrator

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/shoalhq/shoal/proto/api"
)

// The properties below state, in words, what one reconcile pass
// guarantees, whatever state it starts from; rapid draws the state:
// a service of any mode and policy (or none: removed), a few nodes of
// any status, availability and labels, and tasks in any slot, on any
// node (or none, or a removed one), in any state.

var allStates = []api.TaskState{
	api.TaskState_TASK_STATE_NEW, statePending, stateAssigned, api.TaskState_TASK_STATE_ACCEPTED,
	api.TaskState_TASK_STATE_PREPARING, stateReady, api.TaskState_TASK_STATE_STARTING, stateRunning,
	stateComplete, stateShutdown, stateFailed, stateRejected, stateOrphaned,
}

// scenario is one drawn input.
type scenario struct {
	svc     *api.Service
	nodes   []*api.Node
	tasks   []*api.Task
	cluster *api.Cluster
}

func (sc scenario) input(now time.Time) Input {
	return Input{ServiceID: "s", Service: sc.svc, Tasks: sc.tasks, Nodes: sc.nodes, Cluster: sc.cluster, Now: now}
}

func drawPolicy(t *rapid.T, label string) *api.RestartPolicy {
	if rapid.Bool().Draw(t, label+"-default") {
		return nil
	}
	p := &api.RestartPolicy{
		Condition:   rapid.SampledFrom([]api.RestartPolicy_Condition{0, 1, 2}).Draw(t, label+"-condition"),
		MaxAttempts: rapid.Uint64Range(0, 3).Draw(t, label+"-max"),
		Window:      int64(rapid.SampledFrom([]time.Duration{0, 10 * time.Second, time.Minute}).Draw(t, label+"-window")),
	}
	if d := rapid.IntRange(-1, 10).Draw(t, label+"-delay"); d >= 0 {
		p.Delay = ns(time.Duration(d) * time.Second)
	}
	return p
}

func drawScenario(t *rapid.T) scenario {
	var sc scenario
	nNodes := rapid.IntRange(0, 5).Draw(t, "nodes")
	for i := 1; i <= nNodes; i++ {
		n := node(fmt.Sprintf("n%d", i))
		n.Meta.Version = rapid.Uint64Range(1, 3).Draw(t, "node-version")
		n.Status.State = rapid.SampledFrom([]api.NodeState{api.NodeState_NODE_STATE_READY, api.NodeState_NODE_STATE_READY, api.NodeState_NODE_STATE_DOWN, api.NodeState_NODE_STATE_UNKNOWN}).Draw(t, "node-state")
		n.Spec.Availability = rapid.SampledFrom([]api.NodeAvailability{0, 0, 1, 2}).Draw(t, "availability")
		if z := rapid.SampledFrom([]string{"", "a", "b"}).Draw(t, "zone"); z != "" {
			n.Spec.Annotations.Labels["zone"] = z
		}
		sc.nodes = append(sc.nodes, n)
	}
	mode := rapid.IntRange(0, 4).Draw(t, "mode")
	switch mode {
	case 0:
		sc.svc = replicatedService("s", rapid.Uint64Range(0, 6).Draw(t, "replicas"))
	case 1:
		sc.svc = globalService("s")
	case 2:
		total := rapid.Uint64Range(1, 6).Draw(t, "total")
		sc.svc = replicatedJob("s", rapid.Uint64Range(0, total).Draw(t, "max-concurrent"), total)
	case 3:
		sc.svc = globalJob("s")
	case 4: // removed
		sc.svc = replicatedService("s", 3)
	}
	sc.svc.SpecVersion = rapid.Uint64Range(1, 3).Draw(t, "spec-version")
	sc.svc.Spec.Task.Restart = drawPolicy(t, "policy")
	if rapid.Bool().Draw(t, "constrained") {
		sc.svc.Spec.Task.Placement = &api.Placement{Constraints: []string{"node.labels.zone==a"}}
	}
	if rapid.Bool().Draw(t, "update") {
		withUpdate(sc.svc, rapid.Bool().Draw(t, "start-first"), rapid.Uint64Range(0, 2).Draw(t, "parallelism"))
		// No previous spec: a rollback is a write of its own, which the
		// next pass follows with replacements.
		sc.svc.Spec.Update.FailureAction = rapid.SampledFrom([]api.UpdateConfig_FailureAction{0, 1, 2}).Draw(t, "failure-action")
	}
	if rapid.Bool().Draw(t, "update-status") { // an update under way, paused or done, of this version or an older one
		sc.svc.UpdateStatus = &api.UpdateStatus{
			State:       rapid.SampledFrom([]api.UpdateStatus_State{1, 2, 3, 4, 5, 6}).Draw(t, "update-state"),
			StartedAt:   t0.Add(-time.Minute).UnixNano(),
			SpecVersion: rapid.Uint64Range(1, sc.svc.SpecVersion).Draw(t, "update-status-version"),
		}
	}
	nodeIDs := []string{"", "gone"}
	for _, n := range sc.nodes {
		nodeIDs = append(nodeIDs, n.GetId())
	}
	nTasks := rapid.IntRange(0, 14).Draw(t, "tasks")
	for i := range nTasks {
		slot := rapid.Uint64Range(0, 7).Draw(t, "slot")
		if mode == 1 || mode == 3 {
			slot = 0
		}
		nodeID := rapid.SampledFrom(nodeIDs).Draw(t, "task-node")
		state := rapid.SampledFrom(allStates).Draw(t, "task-state")
		if nodeID == "" && state > statePending {
			state = statePending // only placement gives a node, before any agent report
		}
		desired := rapid.SampledFrom([]api.TaskState{stateReady, stateRunning, stateRunning, stateShutdown, stateRemove}).Draw(t, "desired")
		created := t0.Add(-time.Duration(rapid.IntRange(1, 600).Draw(t, "created")) * time.Second)
		changed := t0.Add(-time.Duration(rapid.IntRange(0, 600).Draw(t, "changed")) * time.Second)
		tk := task(fmt.Sprintf("t%02d", i), sc.svc, slot, nodeID, state, desired, created, changed)
		tk.Meta.Version = rapid.Uint64Range(1, 9).Draw(t, "task-version")
		tk.SpecVersion = rapid.Uint64Range(1, 3).Draw(t, "task-spec-version")
		tk.Spec = proto.Clone(sc.svc.Spec.Task).(*api.TaskSpec)
		tk.Spec.Restart = drawPolicy(t, "task-policy")
		sc.tasks = append(sc.tasks, tk)
	}
	if mode == 4 {
		sc.svc = nil
	}
	if v := rapid.IntRange(-1, 3).Draw(t, "retention"); v >= 0 {
		sc.cluster = clusterWithRetention(int64(v))
	}
	return sc
}

// applyPlan returns the tasks as the plan leaves them, the way the
// committer writes it: new tasks get IDs (in creation order) and are
// created at now.
func applyPlan(tasks []*api.Task, p *Plan) []*api.Task {
	n := 0
	return applyPlanIDs(tasks, p, func() string { n++; return fmt.Sprintf("z-new-%03d", n) })
}

// applyPlanIDs is applyPlan with new IDs from newID.
func applyPlanIDs(tasks []*api.Task, p *Plan, newID func() string) []*api.Task {
	byID := map[string]*api.Task{}
	var out []*api.Task
	for _, tk := range tasks {
		c := proto.Clone(tk).(*api.Task)
		byID[c.GetId()] = c
		out = append(out, c)
	}
	deleted := map[string]bool{}
	for _, a := range p.Actions {
		switch a.Kind {
		case ActionCreate:
			c := proto.Clone(a.Task).(*api.Task)
			c.Id = newID()
			c.Meta = &api.Meta{Version: 100, CreatedAt: p.Now.UnixNano(), UpdatedAt: p.Now.UnixNano()}
			out = append(out, c)
		case ActionUpdate:
			c := byID[a.TaskID]
			if a.DesiredState != 0 {
				c.DesiredState = a.DesiredState
			}
			if a.Orphan {
				c.Status.State = stateOrphaned
				c.Status.Timestamp = p.Now.UnixNano()
			}
			c.Meta.Version++
		case ActionDelete:
			deleted[a.TaskID] = true
		}
	}
	return slices.DeleteFunc(out, func(tk *api.Task) bool { return deleted[tk.GetId()] })
}

// applyService returns the service as the plan leaves it, the way the
// committer writes it (nil stays nil).
func applyService(svc *api.Service, p *Plan) *api.Service {
	if svc == nil || (p.UpdateStatus == nil && !p.Rollback) {
		return svc
	}
	s := updatedService(svc, p)
	s.Meta.Version++
	return s
}

// facts answers questions about a state the way the package defines
// them, independently of the reconciler's code.
type facts struct {
	nodes map[string]*api.Node
}

func newFacts(nodes []*api.Node) facts {
	f := facts{nodes: map[string]*api.Node{}}
	for _, n := range nodes {
		f.nodes[n.GetId()] = n
	}
	return f
}

func (f facts) nodeDead(tk *api.Task) bool {
	if tk.GetNodeId() == "" {
		return false
	}
	n := f.nodes[tk.GetNodeId()]
	return n == nil || n.GetStatus().GetState() == api.NodeState_NODE_STATE_DOWN
}

func (f facts) live(tk *api.Task) bool {
	return tk.GetDesiredState() <= stateRunning && tk.GetStatus().GetState() < stateComplete && !f.nodeDead(tk)
}

func (f facts) drained(tk *api.Task) bool {
	n := f.nodes[tk.GetNodeId()]
	return n != nil && n.GetSpec().GetAvailability() == api.NodeAvailability_NODE_AVAILABILITY_DRAIN &&
		n.GetStatus().GetState() != api.NodeState_NODE_STATE_DOWN
}

func (f facts) eligible(svc *api.Service, n *api.Node) bool {
	return n.GetStatus().GetState() != api.NodeState_NODE_STATE_DOWN &&
		n.GetSpec().GetAvailability() != api.NodeAvailability_NODE_AVAILABILITY_DRAIN &&
		(len(svc.GetSpec().GetTask().GetPlacement().GetConstraints()) == 0 || n.GetSpec().GetAnnotations().GetLabels()["zone"] == "a")
}

// alwaysRestarts reports whether every dead task of the scenario may be
// restarted at once and without limit: condition any, no max_attempts,
// in the service's and every task's policy.
func alwaysRestarts(sc scenario) bool {
	ok := func(p *api.RestartPolicy) bool {
		return p.GetCondition() == api.RestartPolicy_CONDITION_ANY && p.GetMaxAttempts() == 0
	}
	for _, tk := range sc.tasks {
		if !ok(tk.GetSpec().GetRestart()) {
			return false
		}
	}
	return ok(sc.svc.GetSpec().GetTask().GetRestart())
}

// slotStats counts, per slot, the live tasks off and on drained nodes.
func slotStats(f facts, tasks []*api.Task) (stay, leaving map[uint64]int) {
	stay, leaving = map[uint64]int{}, map[uint64]int{}
	for _, tk := range tasks {
		if !f.live(tk) {
			continue
		}
		if f.drained(tk) {
			leaving[tk.GetSlot()]++
		} else {
			stay[tk.GetSlot()]++
		}
	}
	return stay, leaving
}

// outdatedOf reports whether a task was made from an older spec version
// whose task spec differs from the service's.
func outdatedOf(svc *api.Service, tk *api.Task) bool {
	return tk.GetSpecVersion() < svc.GetSpecVersion() && !proto.Equal(tk.GetSpec(), svc.GetSpec().GetTask())
}

// outdatedStay counts, per slot, the live outdated tasks off drained
// nodes.
func outdatedStay(f facts, svc *api.Service, tasks []*api.Task) map[uint64]int {
	out := map[uint64]int{}
	for _, tk := range tasks {
		if f.live(tk) && !f.drained(tk) && outdatedOf(svc, tk) {
			out[tk.GetSlot()]++
		}
	}
	return out
}

// updatePairs counts the slots with both an outdated and a current live
// task off drained nodes.
func updatePairs(f facts, svc *api.Service, tasks []*api.Task) int {
	stay, _ := slotStats(f, tasks)
	old := outdatedStay(f, svc, tasks)
	n := 0
	for s, k := range old {
		if k > 0 && stay[s] > k {
			n++
		}
	}
	return n
}

// nodePairs counts the nodes running both an outdated and a current live
// task of a global service.
func nodePairs(f facts, svc *api.Service, tasks []*api.Task) int {
	old, cur := map[string]bool{}, map[string]bool{}
	for _, tk := range tasks {
		if !f.live(tk) {
			continue
		}
		if outdatedOf(svc, tk) {
			old[tk.GetNodeId()] = true
		} else {
			cur[tk.GetNodeId()] = true
		}
	}
	n := 0
	for id := range old {
		if cur[id] {
			n++
		}
	}
	return n
}

// movingLive counts the live tasks on drained nodes whose slot has a
// replacement: a task still desired to run that is live off drained
// nodes, or dead. These are the start-first moves under way (an upper
// bound).
func movingLive(f facts, tasks []*api.Task) int {
	n := 0
	for _, old := range tasks {
		if !f.live(old) || !f.drained(old) {
			continue
		}
		for _, nw := range tasks {
			if nw.GetSlot() == old.GetSlot() && nw.GetDesiredState() <= stateRunning && !(f.live(nw) && f.drained(nw)) {
				n++
				break
			}
		}
	}
	return n
}

func TestPropertyPlanIsSafe(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		p := NewReconciler(sc.input(t0)).Compute()
		after := applyPlan(sc.tasks, p)
		f := newFacts(sc.nodes)
		byID := map[string]*api.Task{}
		for _, tk := range sc.tasks {
			byID[tk.GetId()] = tk
		}

		// Every action is well formed: no desired state is lowered, no
		// status moves backwards, a task is written at most once, with the
		// version it was read at.
		seen := map[string]bool{}
		for _, a := range p.Actions {
			if a.Kind == ActionCreate {
				nt := a.Task
				if nt.GetId() != "" || nt.GetServiceId() != "s" || nt.GetSpecVersion() != sc.svc.GetSpecVersion() ||
					!proto.Equal(nt.GetSpec(), sc.svc.GetSpec().GetTask()) {
					t.Fatalf("bad new task %v", nt)
				}
				if nt.GetStatus().GetState() != statePending || nt.GetStatus().GetTimestamp() != t0.UnixNano() ||
					(nt.GetDesiredState() != stateRunning && nt.GetDesiredState() != stateReady) {
					t.Fatalf("new task status %v desired %v", nt.GetStatus(), nt.GetDesiredState())
				}
				continue
			}
			old := byID[a.TaskID]
			if old == nil || seen[a.TaskID] || a.Version != old.GetMeta().GetVersion() {
				t.Fatalf("action on unknown, repeated or misversioned task: %v", a)
			}
			seen[a.TaskID] = true
			if a.Kind == ActionUpdate {
				if a.DesiredState != 0 && a.DesiredState <= old.GetDesiredState() {
					t.Fatalf("desired state not raised: %v from %v", a, old.GetDesiredState())
				}
				if a.Orphan && old.GetStatus().GetState() >= stateOrphaned {
					t.Fatalf("status moved backwards or stayed: %v", a)
				}
				if a.DesiredState == 0 && !a.Orphan {
					t.Fatalf("empty update %v", a)
				}
			}
		}
		if !p.Wake.IsZero() && !p.Wake.After(t0) {
			t.Fatalf("wake %v is not in the future", p.Wake)
		}

		if sc.svc == nil {
			// A removed service's tasks are all desired REMOVE or gone, and
			// only tasks that cannot run are deleted.
			for _, tk := range after {
				if tk.GetDesiredState() < stateRemove {
					t.Fatalf("task %s of a removed service desired %v", tk.GetId(), tk.GetDesiredState())
				}
			}
			for _, a := range p.Actions {
				old := byID[a.TaskID]
				if a.Kind == ActionDelete && old.GetStatus().GetState() < stateComplete && !f.nodeDead(old) &&
					(old.GetNodeId() != "" || old.GetStatus().GetState() >= stateAssigned) {
					t.Fatalf("deleted task %v that may run", old)
				}
			}
			return
		}
		// A live task is never deleted.
		for _, a := range p.Actions {
			if a.Kind == ActionDelete && f.live(byID[a.TaskID]) {
				t.Fatalf("deleted live task %v", byID[a.TaskID])
			}
		}

		switch m := sc.svc.GetSpec().GetMode().GetMode().(type) {
		case *api.ServiceMode_Replicated, *api.ServiceMode_ReplicatedJob:
			stay, leaving := slotStats(f, after)
			oldStay := outdatedStay(f, sc.svc, after)
			for s, n := range stay {
				if n-oldStay[s] > 1 || oldStay[s] > 1 || leaving[s] > 1 {
					t.Fatalf("slot %d has %d live tasks (%d outdated) and %d leaving a drained node", s, n, oldStay[s], leaving[s])
				}
			}
			// A start-first update runs an outdated and a current task in
			// at most parallelism slots (or as many as before); stop-first
			// and jobs never.
			updPairs, updPairsBefore := updatePairs(f, sc.svc, after), updatePairs(f, sc.svc, sc.tasks)
			_, isJob := m.(*api.ServiceMode_ReplicatedJob)
			if upd := sc.svc.GetSpec().GetUpdate(); isJob || upd.GetOrder() != api.UpdateConfig_ORDER_START_FIRST {
				if updPairs > 0 && !isJob {
					t.Fatalf("stop-first update: %d slots run an outdated and a current task", updPairs)
				}
			} else if par := newUpdateConfig(upd).parallelism; par > 0 && updPairs > max(par, updPairsBefore) {
				t.Fatalf("start-first update with parallelism %d: %d slots with two tasks (%d before)", par, updPairs, updPairsBefore)
			}
			if stay[0]+leaving[0] > 0 {
				t.Fatalf("slot 0 has live tasks")
			}
			pairs := 0 // slots with an old task still running next to its replacement
			for s := range leaving {
				if stay[s] > 0 {
					pairs++
				}
			}
			startFirst := sc.svc.GetSpec().GetUpdate().GetOrder() == api.UpdateConfig_ORDER_START_FIRST
			if _, job := m.(*api.ServiceMode_ReplicatedJob); job || !startFirst {
				if pairs > 0 {
					t.Fatalf("stop-first: %d slots run an old and a new task", pairs)
				}
			} else if par := int(sc.svc.GetSpec().GetUpdate().GetParallelism()); par > 0 && pairs > max(par, movingLive(f, sc.tasks)) {
				t.Fatalf("start-first with parallelism %d: %d moves under way (%d before)", par, pairs, movingLive(f, sc.tasks))
			}
			liveSlots := len(stay)
			for s := range leaving {
				if stay[s] == 0 {
					liveSlots++
				}
			}
			live := 0
			for _, tk := range after {
				if f.live(tk) {
					live++
				}
			}
			if r, ok := m.(*api.ServiceMode_Replicated); ok {
				replicas := int(r.Replicated.GetReplicas())
				if liveSlots > replicas {
					t.Fatalf("%d slots have live tasks, replicas %d", liveSlots, replicas)
				}
				if alwaysRestarts(sc) && liveSlots != replicas {
					t.Fatalf("every task may restart, yet %d slots have live tasks of %d\n%s", liveSlots, replicas, p)
				}
				return
			}
			j := m.(*api.ServiceMode_ReplicatedJob).ReplicatedJob
			maxc := int(max(1, j.GetMaxConcurrent()))
			liveBefore := 0
			for _, tk := range sc.tasks {
				if f.live(tk) {
					liveBefore++
				}
			}
			if live > max(maxc, liveBefore) {
				t.Fatalf("job: %d live tasks, max_concurrent %d, %d before", live, maxc, liveBefore)
			}
			done := map[uint64]bool{}
			for _, tk := range sc.tasks {
				if tk.GetStatus().GetState() == stateComplete && tk.GetSlot() > 0 {
					done[tk.GetSlot()] = true
				}
			}
			needed := max(0, int(j.GetTotalCompletions())-len(done))
			if needed == 0 && p.Count(ActionCreate) > 0 {
				t.Fatalf("job complete, yet the plan creates tasks\n%s", p)
			}
			if alwaysRestarts(sc) && live < maxc && liveSlots != needed {
				t.Fatalf("job: room for %d more, yet %d slots live of %d needed\n%s", maxc-live, liveSlots, needed, p)
			}
		case *api.ServiceMode_Global, *api.ServiceMode_GlobalJob:
			_, job := m.(*api.ServiceMode_GlobalJob)
			perNode, oldPerNode := map[string]int{}, map[string]int{}
			for _, tk := range after {
				if f.live(tk) {
					perNode[tk.GetNodeId()]++
					if !job && outdatedOf(sc.svc, tk) {
						oldPerNode[tk.GetNodeId()]++
					}
				}
			}
			for id, c := range perNode {
				n := f.nodes[id]
				if n == nil || !f.eligible(sc.svc, n) {
					t.Fatalf("%d live tasks on node %q, which is not eligible", c, id)
				}
			}
			// A global service's node runs at most one outdated and one
			// current task, both only during a start-first update, on at
			// most parallelism nodes (or as many as before); a job's node
			// runs one task at most.
			pairs, pairsBefore := nodePairs(f, sc.svc, after), nodePairs(f, sc.svc, sc.tasks)
			upd := sc.svc.GetSpec().GetUpdate()
			if job || upd.GetOrder() != api.UpdateConfig_ORDER_START_FIRST {
				if pairs > 0 {
					t.Fatalf("stop-first or job: %d nodes run an outdated and a current task\n%s", pairs, p)
				}
			} else if par := newUpdateConfig(upd).parallelism; par > 0 && pairs > max(par, pairsBefore) {
				t.Fatalf("start-first update with parallelism %d: %d nodes with two tasks (%d before)", par, pairs, pairsBefore)
			}
			for _, n := range sc.nodes {
				if !f.eligible(sc.svc, n) {
					continue
				}
				c, old := perNode[n.GetId()], oldPerNode[n.GetId()]
				if old > 1 || c-old > 1 {
					t.Fatalf("node %s has %d live tasks, %d outdated", n.GetId(), c, old)
				}
				completed := false
				for _, tk := range sc.tasks {
					completed = completed || (tk.GetNodeId() == n.GetId() && tk.GetStatus().GetState() == stateComplete)
				}
				if job && completed {
					if c != 0 {
						t.Fatalf("node %s completed the job, yet runs a task", n.GetId())
					}
					continue
				}
				paused := n.GetSpec().GetAvailability() == api.NodeAvailability_NODE_AVAILABILITY_PAUSE
				if alwaysRestarts(sc) && !paused && c == 0 {
					t.Fatalf("eligible node %s has no live task\n%s", n.GetId(), p)
				}
			}
			for _, a := range p.Actions {
				if a.Kind == ActionCreate {
					n := f.nodes[a.Task.GetNodeId()]
					if a.Task.GetSlot() != 0 || n == nil || !f.eligible(sc.svc, n) ||
						n.GetSpec().GetAvailability() == api.NodeAvailability_NODE_AVAILABILITY_PAUSE {
						t.Fatalf("global task created on %q", a.Task.GetNodeId())
					}
				}
			}
		}
	})
}

func TestPropertyPlanIsDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		p1 := NewReconciler(sc.input(t0)).Compute()
		shuffled := sc
		shuffled.tasks = rapid.Permutation(sc.tasks).Draw(t, "task-order")
		shuffled.nodes = rapid.Permutation(sc.nodes).Draw(t, "node-order")
		p2 := NewReconciler(shuffled.input(t0)).Compute()
		if !samePlan(p1, p2) {
			t.Fatalf("same input, different plans:\n%s\n%s", p1, p2)
		}
	})
}

func TestPropertySecondPassDoesNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := drawScenario(t)
		p1 := NewReconciler(sc.input(t0)).Compute()
		next := sc
		next.tasks = applyPlan(sc.tasks, p1)
		next.svc = applyService(sc.svc, p1)
		p2 := NewReconciler(next.input(t0)).Compute()
		if !p2.Empty() {
			t.Fatalf("a second pass at the same instant changes more:\nfirst %s\nsecond %s", p1, p2)
		}
		if !p2.Wake.Equal(p1.Wake) {
			t.Fatalf("wake moved from %v to %v", p1.Wake, p2.Wake)
		}
	})
}

// samePlan reports whether two plans are equal, new tasks compared by
// content.
func samePlan(a, b *Plan) bool {
	if a.ServiceID != b.ServiceID || a.ServiceVersion != b.ServiceVersion || !a.Wake.Equal(b.Wake) || len(a.Actions) != len(b.Actions) {
		return false
	}
	for i := range a.Actions {
		x, y := a.Actions[i], b.Actions[i]
		if !proto.Equal(x.Task, y.Task) {
			return false
		}
		x.Task, y.Task = nil, nil
		if x != y {
			return false
		}
	}
	return true
}
