package orchestrator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/shoalhq/shoal/proto/api"
)

// updatingGlobal returns a global service at spec version 2 (image
// nginx:2, previous spec nginx:1) with the update config, nodes n1..nN,
// and on each node a RUNNING task of version 1 (named old-NODE), started
// an hour before t0.
func updatingGlobal(nodes int, u *api.UpdateConfig) (*api.Service, []*api.Task, []*api.Node) {
	svc := globalService("s")
	var tasks []*api.Task
	var ns []*api.Node
	for i := 1; i <= nodes; i++ {
		id := fmt.Sprintf("n%d", i)
		ns = append(ns, node(id))
		tasks = append(tasks, running("old-"+id, svc, 0, id, time.Hour))
	}
	svc.PreviousSpec = proto.Clone(svc.Spec).(*api.ServiceSpec)
	svc.Spec.Task = &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:2"}}
	svc.Spec.Update = u
	svc.SpecVersion = 2
	return svc, tasks, ns
}

// newGlobalRollout is a rollout of a global service on its nodes.
func newGlobalRollout(t *testing.T, svc *api.Service, tasks []*api.Task, nodes []*api.Node) *rollout {
	r := newRollout(t, svc, tasks)
	r.nodes = nodes
	return r
}

// liveByNode returns the image of each node's live tasks.
func (r *rollout) liveByNode() map[string][]string {
	out := map[string][]string{}
	for _, tk := range r.tasks {
		if tk.GetDesiredState() <= stateRunning && tk.GetStatus().GetState() < stateComplete {
			out[tk.GetNodeId()] = append(out[tk.GetNodeId()], tk.GetSpec().GetContainer().GetImage())
		}
	}
	return out
}

func TestGlobalUpdateStopFirstFirstPass(t *testing.T) {
	const drain = int64(3 * time.Second)
	svc, tasks, nodes := updatingGlobal(4, &api.UpdateConfig{Drain: drain}) // parallelism unset: 1
	p := compute(svc, tasks, nodes, nil)
	wantPlan(t, p, "create @n1 RUNNING", "raise old-n1 SHUTDOWN")
	if p.Actions[0].Group != p.Actions[1].Group {
		t.Fatalf("stop and create in different groups:\n%s", p)
	}
	for _, a := range p.Actions {
		if a.Reason != ReasonUpdate {
			t.Fatalf("reason %q, want %q", a.Reason, ReasonUpdate)
		}
		switch a.Kind {
		case ActionCreate:
			if a.Task.GetSlot() != 0 || a.Task.GetSpecVersion() != 2 || a.Task.GetSpec().GetContainer().GetImage() != "nginx:2" ||
				a.Task.GetAnnotations().GetName() != "svc-s.n1" {
				t.Fatalf("replacement %v, want slot 0, version 2, nginx:2, named svc-s.n1", a.Task)
			}
		case ActionUpdate:
			if a.Drain != drain {
				t.Fatalf("retired task drain %v, want %v", time.Duration(a.Drain), time.Duration(drain))
			}
		}
	}
	u := p.UpdateStatus
	if u.GetState() != api.UpdateStatus_STATE_UPDATING || u.GetStartedAt() != t0.UnixNano() || u.GetSpecVersion() != 2 {
		t.Fatalf("status %v, want UPDATING started at t0 for version 2", u)
	}
}

func TestGlobalUpdateStartFirstWaitsForRunning(t *testing.T) {
	svc, tasks, nodes := updatingGlobal(4, &api.UpdateConfig{Parallelism: par(1), Order: api.UpdateConfig_ORDER_START_FIRST})
	r := newGlobalRollout(t, svc, tasks, nodes)
	wantPlan(t, r.pass(), "create @n1 RUNNING")
	wantPlan(t, r.pass()) // the new task is not running yet: the old one stays
	if got := r.liveByNode()["n1"]; len(got) != 2 {
		t.Fatalf("n1 runs %v, want the old and the new task", got)
	}
	r.agents()
	wantPlan(t, r.pass(), "raise old-n1 SHUTDOWN")
}

func TestGlobalUpdateMonitorAndDelay(t *testing.T) {
	svc, tasks, nodes := updatingGlobal(4, &api.UpdateConfig{Parallelism: par(1), Monitor: ns(10 * time.Second), Delay: int64(30 * time.Second)})
	r := newGlobalRollout(t, svc, tasks, nodes)
	r.pass()
	r.agents() // n1's new task RUNNING at t0
	r.now = t0.Add(9 * time.Second)
	if p := r.pass(); !p.Empty() || !p.Wake.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("within the monitor: %s, want nothing and a wake at the end of the monitor", p)
	}
	r.now = t0.Add(10 * time.Second)
	if p := r.pass(); !p.Empty() || !p.Wake.Equal(t0.Add(40*time.Second)) {
		t.Fatalf("within the delay: %s, want nothing and a wake at the end of the delay", p)
	}
	r.now = t0.Add(40 * time.Second)
	wantPlan(t, r.pass(), "create @n2 RUNNING", "raise old-n2 SHUTDOWN")
}

func TestGlobalUpdateRollsOut(t *testing.T) {
	for _, tc := range []struct {
		par        *uint64
		startFirst bool
	}{{nil, false}, {par(0), false}, {par(1), false}, {par(2), false}, {par(1), true}, {par(3), true}, {par(0), true}} {
		name := fmt.Sprintf("parallelism=unset/start-first=%v", tc.startFirst)
		if tc.par != nil {
			name = fmt.Sprintf("parallelism=%d/start-first=%v", *tc.par, tc.startFirst)
		}
		t.Run(name, func(t *testing.T) {
			u := &api.UpdateConfig{Parallelism: tc.par, Monitor: ns(5 * time.Second), Delay: int64(2 * time.Second)}
			if tc.startFirst {
				u.Order = api.UpdateConfig_ORDER_START_FIRST
			}
			svc, tasks, nodes := updatingGlobal(4, u)
			r := newGlobalRollout(t, svc, tasks, nodes)
			r.run()
			us := r.svc.GetUpdateStatus()
			if us.GetState() != api.UpdateStatus_STATE_COMPLETED || us.GetMessage() != msgUpdateCompleted || us.GetCompletedAt() != r.now.UnixNano() {
				t.Fatalf("status %v, want COMPLETED now", us)
			}
			live := r.liveByNode()
			for _, n := range nodes {
				if got := live[n.GetId()]; len(got) != 1 || got[0] != "nginx:2" {
					t.Fatalf("node %s runs %v, want one nginx:2", n.GetId(), got)
				}
				if c := r.nodeCreates[n.GetId()]; c != 1 {
					t.Fatalf("node %s replaced %d times, want once", n.GetId(), c)
				}
			}
			r.checkBounds(4, tc.par, tc.startFirst)
		})
	}
}

func TestGlobalUpdateFailurePauses(t *testing.T) {
	svc, tasks, nodes := updatingGlobal(4, nil)
	r := newGlobalRollout(t, svc, tasks, nodes)
	r.pass()
	var failed *api.Task
	for _, tk := range r.tasks {
		if tk.GetSpecVersion() == 2 {
			failed = tk
			tk.Status = &api.TaskStatus{State: stateRejected, Err: "pull nginx:2: not found", Timestamp: r.now.UnixNano()}
		}
	}
	r.now = r.now.Add(time.Second)
	p := r.pass()
	us := r.svc.GetUpdateStatus()
	if us.GetState() != api.UpdateStatus_STATE_PAUSED || !strings.Contains(us.GetMessage(), failed.GetId()) ||
		!strings.Contains(us.GetMessage(), "pull nginx:2: not found") {
		t.Fatalf("status %v, want PAUSED naming %s and its error", us, failed.GetId())
	}
	for _, a := range p.Actions {
		if a.Reason == ReasonUpdate {
			t.Fatalf("paused, yet %v", a)
		}
	}
	// Paused stays paused: n1 gets its task restarted (the restart
	// policy), the other nodes keep their old tasks.
	for range 3 {
		r.agents()
		r.now = r.now.Add(time.Minute)
		for _, a := range r.pass().Actions {
			if a.Reason == ReasonUpdate {
				t.Fatalf("paused, yet %v", a)
			}
		}
	}
	if r.svc.GetUpdateStatus().GetState() != api.UpdateStatus_STATE_PAUSED {
		t.Fatalf("status %v, want still PAUSED", r.svc.GetUpdateStatus())
	}
	live := r.liveByNode()
	for _, id := range []string{"n2", "n3", "n4"} {
		if got := live[id]; len(got) != 1 || got[0] != "nginx:1" {
			t.Fatalf("paused update: node %s runs %v, want its nginx:1 task", id, got)
		}
	}
}

func TestGlobalUpdateFailureRollsBack(t *testing.T) {
	svc, tasks, nodes := updatingGlobal(4, &api.UpdateConfig{Parallelism: par(2), FailureAction: api.UpdateConfig_FAILURE_ACTION_ROLLBACK})
	svc.Spec.Rollback = &api.UpdateConfig{Parallelism: par(0)}
	r := newGlobalRollout(t, svc, tasks, nodes)
	r.pass() // n1 and n2 replaced
	for _, tk := range r.tasks {
		if tk.GetSpecVersion() == 2 && tk.GetNodeId() == "n2" {
			tk.Status = &api.TaskStatus{State: stateRunning, Health: "unhealthy", Timestamp: r.now.UnixNano()}
		}
	}
	p := r.pass()
	if !p.Rollback {
		t.Fatalf("plan %s, want a rollback", p)
	}
	us := r.svc.GetUpdateStatus()
	if us.GetState() != api.UpdateStatus_STATE_ROLLBACK_STARTED || us.GetSpecVersion() != 3 || !strings.Contains(us.GetMessage(), "unhealthy") ||
		r.svc.GetSpec().GetTask().GetContainer().GetImage() != "nginx:1" {
		t.Fatalf("after the rollback write: service %v", r.svc)
	}
	r.run()
	if s := r.svc.GetUpdateStatus().GetState(); s != api.UpdateStatus_STATE_ROLLBACK_COMPLETED {
		t.Fatalf("status %v, want ROLLBACK_COMPLETED", r.svc.GetUpdateStatus())
	}
	live := r.liveByNode()
	for _, n := range nodes {
		if got := live[n.GetId()]; len(got) != 1 || got[0] != "nginx:1" {
			t.Fatalf("node %s runs %v after the rollback, want one nginx:1", n.GetId(), got)
		}
	}
	// n3 and n4 never left version 1: the rollback replaced n1 and n2.
	if c := r.nodeCreates; c["n1"] != 2 || c["n2"] != 2 || c["n3"] != 0 || c["n4"] != 0 {
		t.Fatalf("creates per node %v, want n1 and n2 twice (update, rollback) only", c)
	}
}

// A node drained during the update loses its task (it is no longer
// eligible) and is not waited for; the other nodes are updated.
func TestGlobalUpdateDrainedNode(t *testing.T) {
	svc, tasks, nodes := updatingGlobal(4, &api.UpdateConfig{Parallelism: par(1), Order: api.UpdateConfig_ORDER_START_FIRST})
	r := newGlobalRollout(t, svc, tasks, nodes)
	r.pass() // n1's replacement starts, its old task still runs
	isDrained(nodes[0])
	isDrained(nodes[2])
	// The drained nodes' tasks, old and new, are stopped as ineligible;
	// n1 is no longer in flight, so n2's replacement starts.
	p := r.pass()
	wantPlan(t, p, "raise old-n1 SHUTDOWN", "raise new001 SHUTDOWN", "raise old-n3 SHUTDOWN", "create @n2 RUNNING")
	for _, a := range p.Actions {
		want := ReasonIneligible
		if a.Kind == ActionCreate {
			want = ReasonUpdate
		}
		if a.Reason != want {
			t.Fatalf("%v: reason %q, want %q", a, a.Reason, want)
		}
	}
	r.run()
	if s := r.svc.GetUpdateStatus().GetState(); s != api.UpdateStatus_STATE_COMPLETED {
		t.Fatalf("status %v, want COMPLETED", r.svc.GetUpdateStatus())
	}
	live := r.liveByNode()
	if len(live["n1"]) != 0 || len(live["n3"]) != 0 || len(live["n2"]) != 1 || live["n2"][0] != "nginx:2" || len(live["n4"]) != 1 || live["n4"][0] != "nginx:2" {
		t.Fatalf("live tasks %v, want nginx:2 on n2 and n4 only", live)
	}
	// The drain ends: n3 gets a task of the current spec.
	nodes[2].Spec.Availability = api.NodeAvailability_NODE_AVAILABILITY_ACTIVE
	wantPlan(t, r.pass(), "create @n3 RUNNING")
}

// A node that joins during an update gets a task of the current spec at
// once, outside the update's batches.
func TestGlobalUpdateNodeJoins(t *testing.T) {
	svc, tasks, nodes := updatingGlobal(2, &api.UpdateConfig{Parallelism: par(1)})
	r := newGlobalRollout(t, svc, tasks, nodes)
	r.pass()
	r.nodes = append(r.nodes, node("n3"))
	p := r.pass()
	wantPlan(t, p, "create @n3 RUNNING")
	if p.Actions[0].Reason != ReasonScaleUp {
		t.Fatalf("reason %q, want %q", p.Actions[0].Reason, ReasonScaleUp)
	}
	r.run()
	live := r.liveByNode()
	for _, id := range []string{"n1", "n2", "n3"} {
		if got := live[id]; len(got) != 1 || got[0] != "nginx:2" {
			t.Fatalf("node %s runs %v, want one nginx:2", id, got)
		}
	}
}

// A paused node keeps its outdated task through the update (it gets no
// new task); once active again, a new round replaces it.
func TestGlobalUpdatePausedNode(t *testing.T) {
	svc, tasks, nodes := updatingGlobal(3, &api.UpdateConfig{Parallelism: par(0)})
	isPaused(nodes[1])
	r := newGlobalRollout(t, svc, tasks, nodes)
	wantPlan(t, r.pass(), "create @n1 RUNNING", "raise old-n1 SHUTDOWN", "create @n3 RUNNING", "raise old-n3 SHUTDOWN")
	r.run()
	if s := r.svc.GetUpdateStatus().GetState(); s != api.UpdateStatus_STATE_COMPLETED {
		t.Fatalf("status %v, want COMPLETED", r.svc.GetUpdateStatus())
	}
	if got := r.liveByNode()["n2"]; len(got) != 1 || got[0] != "nginx:1" {
		t.Fatalf("paused n2 runs %v, want its nginx:1 task", got)
	}
	nodes[1].Spec.Availability = api.NodeAvailability_NODE_AVAILABILITY_ACTIVE
	p := r.pass()
	wantPlan(t, p, "create @n2 RUNNING", "raise old-n2 SHUTDOWN")
	if u := p.UpdateStatus; u.GetState() != api.UpdateStatus_STATE_UPDATING || u.GetStartedAt() != r.now.UnixNano() {
		t.Fatalf("status %v, want a new UPDATING round", u)
	}
	r.run()
	if s := r.svc.GetUpdateStatus().GetState(); s != api.UpdateStatus_STATE_COMPLETED {
		t.Fatalf("status %v, want COMPLETED", r.svc.GetUpdateStatus())
	}
	for _, n := range nodes {
		if got := r.liveByNode()[n.GetId()]; len(got) != 1 || got[0] != "nginx:2" {
			t.Fatalf("node %s runs %v, want one nginx:2", n.GetId(), got)
		}
	}
}

// A new leader reads the same store: nodes already updated are left
// alone, the update goes on with the next node.
func TestGlobalUpdateResumesAfterLeaderChange(t *testing.T) {
	svc, tasks, nodes := updatingGlobal(3, nil)
	svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_STATE_UPDATING, StartedAt: t0.Add(-time.Minute).UnixNano(), SpecVersion: 2}
	for _, tk := range tasks[:2] {
		tk.DesiredState = stateShutdown
		tk.Status.State = stateShutdown
		tasks = append(tasks, running("upd-"+tk.GetNodeId(), svc, 0, tk.GetNodeId(), 30*time.Second))
	}
	p := compute(svc, tasks, nodes, nil)
	wantPlan(t, p, "create @n3 RUNNING", "raise old-n3 SHUTDOWN")
	if p.UpdateStatus != nil {
		t.Fatalf("status rewritten on resume: %v", p.UpdateStatus)
	}
}

// Global jobs are not rolled: a new spec replaces no task.
func TestGlobalJobNotUpdated(t *testing.T) {
	svc := globalJob("s")
	nodes := []*api.Node{node("n1"), node("n2")}
	tasks := []*api.Task{running("a", svc, 0, "n1", time.Hour), running("b", svc, 0, "n2", time.Hour)}
	svc.PreviousSpec = proto.Clone(svc.Spec).(*api.ServiceSpec)
	svc.Spec.Task = &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:2"}}
	svc.Spec.Update = &api.UpdateConfig{Parallelism: par(0)}
	svc.SpecVersion = 2
	if p := compute(svc, tasks, nodes, nil); !p.Empty() {
		t.Fatalf("global job after a spec change: %s, want nothing", p)
	}
}

// TestPropertyGlobalUpdateBounds: whatever the nodes, parallelism,
// order, monitor and delay, and however late the agents act, the update
// of a global service never runs more than nodes + parallelism tasks
// (start-first) nor fewer than nodes − parallelism (stop-first),
// replaces each node's task once and completes.
func TestPropertyGlobalUpdateBounds(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		nNodes := rapid.IntRange(1, 6).Draw(rt, "nodes")
		u, p, startFirst := drawUpdateConfig(rt)
		svc, tasks, nodes := updatingGlobal(nNodes, u)
		r := newGlobalRollout(t, svc, tasks, nodes)
		r.runRandomly(rt, nNodes, p, startFirst)
		for _, n := range nodes {
			if c := r.nodeCreates[n.GetId()]; c != 1 {
				rt.Fatalf("node %s replaced %d times", n.GetId(), c)
			}
		}
		for id, imgs := range r.liveByNode() {
			for _, img := range imgs {
				if img != "nginx:2" {
					rt.Fatalf("node %s still runs %s after completion", id, img)
				}
			}
		}
	})
}

// An update of a global service converges through the real store and
// committer: every node ends on the new spec, each replaced once, the
// old tasks stopped with the update config's drain.
func TestStoreGlobalUpdate(t *testing.T) {
	for _, startFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("start-first=%v", startFirst), func(t *testing.T) {
			const drain = int64(time.Second)
			e := newEnv(t)
			e.addNodes(node("n1"), node("n2"), node("n3"), node("n4"))
			svc := withUpdate(globalService("g"), startFirst, 2)
			svc.Spec.Update.Drain = drain
			e.createService(svc)
			e.converge("g")
			before := map[string]bool{}
			for _, tk := range e.live("g") {
				before[tk.GetId()] = true
			}
			if len(before) != 4 {
				t.Fatalf("%d live tasks before the update, want 4", len(before))
			}
			e.changeService("g", func(s *api.ServiceSpec) { s.Task.Container.Image = "nginx:2" })
			for i := 0; e.service("g").GetUpdateStatus().GetState() != api.UpdateStatus_STATE_COMPLETED; i++ {
				if i > 20 {
					t.Fatalf("no completion: %v", e.service("g").GetUpdateStatus())
				}
				e.converge("g")
				running := 0
				for _, tk := range e.tasks("g") {
					if tk.GetStatus().GetState() == stateRunning {
						running++
					}
				}
				if (startFirst && running > 6) || (!startFirst && running < 2) {
					t.Fatalf("%d tasks running, want 4 ± parallelism 2", running)
				}
				e.clock.Advance(10 * time.Second)
			}
			perNode := map[string]int{}
			for _, tk := range e.live("g") {
				if tk.GetSpec().GetContainer().GetImage() != "nginx:2" || tk.GetStatus().GetState() != stateRunning {
					t.Fatalf("live task %s: %s %v, want nginx:2 RUNNING", tk.GetId(), tk.GetSpec().GetContainer().GetImage(), tk.GetStatus().GetState())
				}
				perNode[tk.GetNodeId()]++
			}
			created := map[string]int{}
			for _, tk := range e.tasks("g") {
				if before[tk.GetId()] {
					if tk.GetDesiredState() != stateShutdown || tk.GetDrain() != drain {
						t.Fatalf("old task %s: desired %v drain %v, want SHUTDOWN and %v", tk.GetId(), tk.GetDesiredState(), time.Duration(tk.GetDrain()), time.Duration(drain))
					}
					continue
				}
				created[tk.GetNodeId()]++
			}
			for _, id := range []string{"n1", "n2", "n3", "n4"} {
				if perNode[id] != 1 || created[id] != 1 {
					t.Fatalf("node %s: %d live, %d created by the update; want 1 and 1", id, perNode[id], created[id])
				}
			}
		})
	}
}
