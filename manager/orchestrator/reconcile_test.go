package orchestrator

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

func TestReplicatedCreatesMissingSlots(t *testing.T) {
	svc := replicatedService("s", 3)
	p := compute(svc, nil, nil, nil)
	wantPlan(t, p, "create 1 RUNNING", "create 2 RUNNING", "create 3 RUNNING")
	for _, a := range p.Actions {
		nt := a.Task
		if nt.GetId() != "" || nt.GetMeta() != nil {
			t.Fatalf("a planned task has an ID or Meta: %v", nt)
		}
		if nt.GetServiceId() != "s" || nt.GetNodeId() != "" || nt.GetSpecVersion() != 1 {
			t.Fatalf("service, node or spec version wrong: %v", nt)
		}
		if !proto.Equal(nt.GetSpec(), svc.GetSpec().GetTask()) || nt.GetSpec() == svc.GetSpec().GetTask() {
			t.Fatalf("spec must be a copy of the service's task spec: %v", nt.GetSpec())
		}
		st := nt.GetStatus()
		if st.GetState() != statePending || st.GetMessage() != "pending" || st.GetTimestamp() != t0.UnixNano() {
			t.Fatalf("status = %v, want PENDING \"pending\" at t0", st)
		}
		if want := "svc-s." + []string{"", "1", "2", "3"}[nt.GetSlot()]; nt.GetAnnotations().GetName() != want {
			t.Fatalf("name = %q, want %q", nt.GetAnnotations().GetName(), want)
		}
	}
	if !p.Wake.IsZero() {
		t.Fatalf("wake = %v, want none", p.Wake)
	}
}

func TestReplicatedFillsLowestFreeSlots(t *testing.T) {
	svc := replicatedService("s", 4)
	tasks := []*api.Task{
		running("a", svc, 1, "n1", time.Minute),
		running("c", svc, 3, "n1", time.Minute),
		// Slot 2 was stopped on request: it is free.
		task("b", svc, 2, "n1", stateShutdown, stateShutdown, t0.Add(-time.Hour), t0.Add(-time.Minute)),
	}
	wantPlan(t, compute(svc, tasks, []*api.Node{node("n1")}, nil), "create 2 RUNNING", "create 4 RUNNING")
}

func TestReplicatedScaleDownOrder(t *testing.T) {
	svc := replicatedService("s", 2)
	nodes := []*api.Node{node("n1"), node("n2")}
	tasks := []*api.Task{
		running("a", svc, 1, "n1", 100*time.Second),
		running("b", svc, 2, "n1", 50*time.Second),
		running("c", svc, 3, "n2", 200*time.Second),
		task("d", svc, 4, "", statePending, stateRunning, t0.Add(-10*time.Second), t0.Add(-10*time.Second)),
		running("e", svc, 5, "n1", 300*time.Second),
	}
	// d is pending; then n1 runs the most (3): its oldest, e, then (n1
	// still has 2 against n2's 1) its next oldest, a.
	p := compute(svc, tasks, nodes, nil)
	wantPlan(t, p, "raise a SHUTDOWN", "raise d SHUTDOWN", "raise e SHUTDOWN")
	for _, a := range p.Actions {
		if a.Reason != ReasonScaleDown {
			t.Fatalf("reason %q, want %q", a.Reason, ReasonScaleDown)
		}
	}
}

func TestReplicatedRefusedSlotCountsAndIsReleasedFirst(t *testing.T) {
	none := &api.RestartPolicy{Condition: api.RestartPolicy_CONDITION_NONE}
	nodes := []*api.Node{node("n1")}
	mk := func(replicas uint64) (*api.Service, []*api.Task) {
		svc := withRestart(replicatedService("s", replicas), none)
		return svc, []*api.Task{
			running("a", svc, 1, "n1", time.Hour),
			task("b", svc, 2, "n1", stateFailed, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Minute)),
			running("c", svc, 3, "n1", time.Hour),
		}
	}
	svc, tasks := mk(3)
	wantPlan(t, compute(svc, tasks, nodes, nil)) // condition none: b stays dead, its slot occupied
	svc, tasks = mk(4)
	wantPlan(t, compute(svc, tasks, nodes, nil), "create 4 RUNNING")
	svc, tasks = mk(2)
	wantPlan(t, compute(svc, tasks, nodes, nil), "raise b SHUTDOWN")
}

func TestRestartDelay(t *testing.T) {
	svc := replicatedService("s", 1)
	nodes := []*api.Node{node("n1")}
	dead := task("x", svc, 1, "n1", stateFailed, stateRunning, t0.Add(-time.Minute), t0.Add(-2*time.Second))
	p := compute(svc, []*api.Task{dead}, nodes, nil)
	wantPlan(t, p, "create 1 READY", "raise x SHUTDOWN")
	if p.Actions[0].Group != p.Actions[1].Group {
		t.Fatalf("stopping the dead task and creating its replacement must commit together:\n%s", p)
	}
	if want := t0.Add(3 * time.Second); !p.Wake.Equal(want) {
		t.Fatalf("wake = %v, want %v (5s after the task failed)", p.Wake, want)
	}

	// The state the plan leads to.
	old := proto.Clone(dead).(*api.Task)
	old.DesiredState = stateShutdown
	repl := task("y", svc, 1, "", statePending, stateReady, t0, t0)
	state := []*api.Task{old, repl}
	if p := computeAt(t0.Add(2*time.Second), svc, state, nodes, nil); !p.Empty() || !p.Wake.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("before the delay ends: want no action and a wake at t0+3s, got\n%s", p)
	}
	wantPlan(t, computeAt(t0.Add(3*time.Second), svc, state, nodes, nil), "raise y RUNNING")
}

func TestRestartConditions(t *testing.T) {
	nodes := []*api.Node{node("n1"), node("n2", isDown)}
	for _, tc := range []struct {
		name  string
		cond  api.RestartPolicy_Condition
		state api.TaskState
		node  string
		want  []string
	}{
		{"any restarts a completed task", api.RestartPolicy_CONDITION_ANY, stateComplete, "n1", []string{"create 1 RUNNING", "raise x SHUTDOWN"}},
		{"any restarts an unrequested shutdown", api.RestartPolicy_CONDITION_ANY, stateShutdown, "n1", []string{"create 1 RUNNING", "raise x SHUTDOWN"}},
		{"on-failure restarts a failure", api.RestartPolicy_CONDITION_ON_FAILURE, stateFailed, "n1", []string{"create 1 RUNNING", "raise x SHUTDOWN"}},
		{"on-failure restarts a rejection", api.RestartPolicy_CONDITION_ON_FAILURE, stateRejected, "n1", []string{"create 1 RUNNING", "raise x SHUTDOWN"}},
		{"on-failure restarts a node failure", api.RestartPolicy_CONDITION_ON_FAILURE, stateRunning, "n2", []string{"create 1 RUNNING", "orphan+raise x SHUTDOWN"}},
		{"on-failure leaves a completed task", api.RestartPolicy_CONDITION_ON_FAILURE, stateComplete, "n1", nil},
		{"on-failure leaves an unrequested shutdown", api.RestartPolicy_CONDITION_ON_FAILURE, stateShutdown, "n1", nil},
		{"none leaves a failure", api.RestartPolicy_CONDITION_NONE, stateFailed, "n1", nil},
		{"none leaves a node failure", api.RestartPolicy_CONDITION_NONE, stateRunning, "n2", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := withRestart(replicatedService("s", 1), &api.RestartPolicy{Condition: tc.cond, Delay: ns(0)})
			x := task("x", svc, 1, tc.node, tc.state, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Minute))
			wantPlan(t, compute(svc, []*api.Task{x}, nodes, nil), tc.want...)
		})
	}
}

func TestRestartMaxAttempts(t *testing.T) {
	mk := func(window time.Duration) (*api.Service, []*api.Task) {
		svc := withRestart(replicatedService("s", 1), &api.RestartPolicy{MaxAttempts: 2, Window: int64(window), Delay: ns(0)})
		return svc, []*api.Task{
			task("a", svc, 1, "n1", stateFailed, stateShutdown, t0.Add(-3*time.Minute), t0.Add(-50*time.Second)),
			task("b", svc, 1, "n1", stateFailed, stateShutdown, t0.Add(-2*time.Minute), t0.Add(-20*time.Second)),
			task("c", svc, 1, "n1", stateFailed, stateRunning, t0.Add(-time.Minute), t0.Add(-time.Second)),
		}
	}
	nodes := []*api.Node{node("n1")}

	svc, tasks := mk(time.Minute)
	p := compute(svc, tasks, nodes, nil)
	if want := t0.Add(10*time.Second + 1); !p.Empty() || !p.Wake.Equal(want) {
		t.Fatalf("two attempts in the window: want no action and a wake at %v (a leaves the window), got\n%s", want, p)
	}
	wantPlan(t, computeAt(t0.Add(11*time.Second), svc, tasks, nodes, nil), "create 1 RUNNING", "raise c SHUTDOWN")

	svc, tasks = mk(0)
	p = computeAt(t0.Add(time.Hour), svc, tasks, nodes, nil)
	if !p.Empty() || !p.Wake.IsZero() {
		t.Fatalf("window 0: attempts never expire; want nothing, got\n%s", p)
	}
}

func TestNodeDownReplacesAndOrphans(t *testing.T) {
	svc := replicatedService("s", 3)
	nodes := []*api.Node{node("n1", isDown), node("n2")}
	tasks := []*api.Task{
		running("a", svc, 1, "n1", time.Hour),
		running("b", svc, 2, "n2", time.Hour),
		running("c", svc, 3, "gone", time.Hour), // node removed from the store
	}
	p := compute(svc, tasks, nodes, nil)
	wantPlan(t, p, "create 1 RUNNING", "create 3 RUNNING", "orphan+raise a SHUTDOWN", "orphan+raise c SHUTDOWN")
	if !p.Wake.IsZero() {
		t.Fatalf("a node failure is replaced with no delay; wake = %v", p.Wake)
	}
}

func TestDrainStopFirst(t *testing.T) {
	svc := replicatedService("s", 2)
	nodes := []*api.Node{node("n1", isDrained), node("n2")}
	tasks := []*api.Task{running("a", svc, 1, "n1", time.Hour), running("b", svc, 2, "n2", time.Hour)}
	p := compute(svc, tasks, nodes, nil)
	wantPlan(t, p, "create 1 RUNNING", "raise a SHUTDOWN")
	if p.Actions[0].Group != p.Actions[1].Group || p.Actions[0].Reason != ReasonDrain {
		t.Fatalf("a stop-first move is one group:\n%s", p)
	}
}

func TestDrainStartFirst(t *testing.T) {
	svc := withUpdate(replicatedService("s", 1), true, 0)
	nodes := []*api.Node{node("n1", isDrained), node("n2")}
	a := running("a", svc, 1, "n1", time.Hour)
	wantPlan(t, compute(svc, []*api.Task{a}, nodes, nil), "create 1 RUNNING")

	r := task("r", svc, 1, "n2", stateAssigned, stateRunning, t0, t0)
	wantPlan(t, compute(svc, []*api.Task{a, r}, nodes, nil)) // waits for r to run
	r.Status.State = stateRunning
	wantPlan(t, compute(svc, []*api.Task{a, r}, nodes, nil), "raise a SHUTDOWN")
}

func TestDrainParallelism(t *testing.T) {
	svc := withUpdate(replicatedService("s", 3), false, 1)
	nodes := []*api.Node{node("n1", isDrained), node("n2")}
	tasks := []*api.Task{
		running("a", svc, 1, "n1", time.Hour),
		running("b", svc, 2, "n1", time.Hour),
		running("c", svc, 3, "n1", time.Hour),
	}
	wantPlan(t, compute(svc, tasks, nodes, nil), "create 1 RUNNING", "raise a SHUTDOWN")

	// a is stopping: its move is in flight, nothing else starts.
	tasks[0].DesiredState = stateShutdown
	tasks = append(tasks, task("r1", svc, 1, "", statePending, stateRunning, t0, t0))
	wantPlan(t, compute(svc, tasks, nodes, nil))

	// a has stopped: the next move starts.
	tasks[0].Status.State = stateShutdown
	wantPlan(t, compute(svc, tasks, nodes, nil), "create 2 RUNNING", "raise b SHUTDOWN")
}

func TestDuplicateAndInvalidSlots(t *testing.T) {
	svc := replicatedService("s", 1)
	nodes := []*api.Node{node("n1"), node("n2")}
	a := running("a", svc, 1, "n1", time.Hour)
	b := task("b", svc, 1, "n2", stateAssigned, stateRunning, t0, t0)
	z := running("z", svc, 0, "n1", time.Hour)
	wantPlan(t, compute(svc, []*api.Task{a, b, z}, nodes, nil), "raise b SHUTDOWN", "raise z SHUTDOWN")
}

func TestGlobalFollowsNodes(t *testing.T) {
	svc := globalService("g")
	svc.Spec.Task.Placement = &api.Placement{Constraints: []string{"node.labels.zone==a", "node.role!=manager"}}
	nodes := []*api.Node{
		node("n1", label("zone", "a")),            // eligible, no task: gets one
		node("n2", label("zone", "a"), isDown),    // down: its task is stopped
		node("n3", label("zone", "a"), isDrained), // drained: its task is stopped
		node("n4", label("zone", "a"), isPaused),  // paused, no task: gets none
		node("n5", label("zone", "b")),            // fails the constraint
		node("n6", label("zone", "a"), isManager), // fails the constraint
		node("n7", label("zone", "a"), isPaused),  // paused, keeps its task
		node("n8", label("zone", "a")),            // eligible, has its task
	}
	tasks := []*api.Task{
		running("t2", svc, 0, "n2", time.Hour),
		running("t3", svc, 0, "n3", time.Hour),
		running("t5", svc, 0, "n5", time.Hour),
		running("t7", svc, 0, "n7", time.Hour),
		running("t8", svc, 0, "n8", time.Hour),
		running("tx", svc, 0, "gone", time.Hour),
	}
	p := compute(svc, tasks, nodes, nil)
	// tx's node left the store: it is dead there, and a node that left
	// keeps no history.
	wantPlan(t, p, "create @n1 RUNNING", "raise t2 SHUTDOWN", "raise t3 SHUTDOWN", "raise t5 SHUTDOWN", "delete tx")
	for _, a := range p.Actions {
		if a.Kind == ActionCreate && (a.Task.GetSlot() != 0 || a.Task.GetAnnotations().GetName() != "svc-g.n1") {
			t.Fatalf("global task: slot %d name %q", a.Task.GetSlot(), a.Task.GetAnnotations().GetName())
		}
	}
}

func TestGlobalRestartsOnItsNode(t *testing.T) {
	svc := globalService("g")
	nodes := []*api.Node{node("n1")}
	x := task("x", svc, 0, "n1", stateFailed, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Second))
	p := compute(svc, []*api.Task{x}, nodes, nil)
	wantPlan(t, p, "create @n1 READY", "raise x SHUTDOWN")
	if !p.Wake.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("wake = %v, want t0+4s", p.Wake)
	}
}

func TestGlobalJob(t *testing.T) {
	svc := globalJob("j")
	nodes := []*api.Node{node("n1"), node("n2"), node("n3")}
	tasks := []*api.Task{
		task("done", svc, 0, "n1", stateComplete, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Minute)),
		task("fail", svc, 0, "n2", stateFailed, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Minute)),
	}
	wantPlan(t, compute(svc, tasks, nodes, nil), "create @n2 RUNNING", "create @n3 RUNNING", "raise fail SHUTDOWN")
}

func TestReplicatedJob(t *testing.T) {
	svc := replicatedJob("j", 2, 5)
	nodes := []*api.Node{node("n1")}
	tasks := []*api.Task{
		task("c1", svc, 1, "n1", stateComplete, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Minute)),
		running("r2", svc, 2, "n1", time.Minute),
	}
	// One running, room for one more, four completions needed.
	wantPlan(t, compute(svc, tasks, nodes, nil), "create 3 RUNNING")

	// A failed task is restarted before a new slot starts; the restart
	// takes the room.
	tasks = append(tasks, task("f3", svc, 3, "n1", stateFailed, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Minute)))
	wantPlan(t, compute(svc, tasks, nodes, nil), "create 3 RUNNING", "raise f3 SHUTDOWN")

	// No room: a failed task waits, it is not restarted beside r2.
	svc = replicatedJob("j", 1, 5)
	tasks = []*api.Task{
		running("r1", svc, 1, "n1", time.Minute),
		task("f2", svc, 2, "n1", stateFailed, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Minute)),
	}
	wantPlan(t, compute(svc, tasks, nodes, nil))
	tasks[0].Status.State = stateComplete
	wantPlan(t, compute(svc, tasks, nodes, nil), "create 2 RUNNING", "raise f2 SHUTDOWN")

	// Once every completion is in, nothing new starts and extras stop.
	svc = replicatedJob("j", 2, 2)
	tasks = []*api.Task{
		task("c1", svc, 1, "n1", stateComplete, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Minute)),
		task("c2", svc, 2, "n1", stateComplete, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Minute)),
		running("r3", svc, 3, "n1", time.Minute),
	}
	wantPlan(t, compute(svc, tasks, nodes, nil), "raise r3 SHUTDOWN")
}

func TestRemovedService(t *testing.T) {
	gone := replicatedService("s", 1)
	nodes := []*api.Node{node("n1"), node("n2", isDown)}
	tasks := []*api.Task{
		running("a", gone, 1, "n1", time.Hour),
		task("b", gone, 2, "", statePending, stateRunning, t0, t0),
		task("c", gone, 3, "n1", stateFailed, stateRunning, t0, t0),
		running("d", gone, 4, "n2", time.Hour),
		task("e", gone, 5, "n1", stateRunning, stateRemove, t0, t0),
	}
	p := NewReconciler(Input{ServiceID: "s", Tasks: tasks, Nodes: nodes, Now: t0}).Compute()
	wantPlan(t, p, "raise a REMOVE", "delete b", "delete c", "delete d")
	if p.ServiceVersion != 0 {
		t.Fatalf("a removed service's plan has version %d", p.ServiceVersion)
	}
}

func TestHistoryRetention(t *testing.T) {
	svc := replicatedService("s", 1)
	nodes := []*api.Node{node("n1")}
	tasks := []*api.Task{running("live", svc, 1, "n1", time.Minute)}
	for i, id := range []string{"d1", "d2", "d3", "d4"} {
		at := t0.Add(-time.Duration(10-i) * time.Minute)
		tasks = append(tasks, task(id, svc, 1, "n1", stateShutdown, stateShutdown, at, at))
	}
	wantPlan(t, compute(svc, tasks, nodes, nil)) // 4 ≤ 5
	wantPlan(t, compute(svc, tasks, nodes, clusterWithRetention(2)), "delete d1", "delete d2")
	wantPlan(t, compute(svc, tasks, nodes, clusterWithRetention(0)), "delete d1", "delete d2", "delete d3", "delete d4")

	// A refused restart is kept whatever the limit: it holds its slot.
	none := withRestart(replicatedService("s", 1), &api.RestartPolicy{Condition: api.RestartPolicy_CONDITION_NONE})
	kept := task("k", none, 1, "n1", stateFailed, stateRunning, t0.Add(-time.Hour), t0.Add(-time.Hour))
	old := task("o", none, 1, "n1", stateShutdown, stateShutdown, t0.Add(-2*time.Hour), t0.Add(-2*time.Hour))
	wantPlan(t, compute(none, []*api.Task{kept, old}, nodes, clusterWithRetention(0)), "delete o")
}

func TestHistoryKeepsWhatRestartsRead(t *testing.T) {
	// The task a READY replacement replaced, and a job's completions.
	svc := replicatedService("s", 1)
	nodes := []*api.Node{node("n1")}
	dead := task("x", svc, 1, "n1", stateFailed, stateShutdown, t0.Add(-time.Hour), t0.Add(-time.Second))
	ready := task("y", svc, 1, "", statePending, stateReady, t0, t0)
	wantPlan(t, compute(svc, []*api.Task{dead, ready}, nodes, clusterWithRetention(0)))

	job := replicatedJob("j", 1, 1)
	done := task("c", job, 1, "n1", stateComplete, stateShutdown, t0.Add(-time.Hour), t0.Add(-time.Hour))
	wantPlan(t, compute(job, []*api.Task{done}, nodes, clusterWithRetention(0)))
}
