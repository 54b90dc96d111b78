package orchestrator

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

func TestStoreCreateScaleRemove(t *testing.T) {
	e := newEnv(t)
	e.addNodes(node("n1"), node("n2"))
	e.createService(replicatedService("web", 3))
	e.pass()
	tasks := e.tasks("web")
	if got := slotsOf(tasks); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("slots %v, want 1 2 3", got)
	}
	for _, tk := range tasks {
		if tk.GetId() == "" || tk.GetMeta().GetCreatedAt() == 0 || tk.GetDesiredState() != stateRunning ||
			tk.GetStatus().GetState() != statePending || tk.GetNodeId() != "" {
			t.Fatalf("new task %v", tk)
		}
	}
	e.converge("web", "n1", "n2")
	for _, tk := range e.live("web") {
		if tk.GetStatus().GetState() != stateRunning {
			t.Fatalf("task %s not running: %v", tk.GetId(), tk.GetStatus())
		}
	}

	// Scale up: slots 4 and 5 come.
	e.changeService("web", func(s *api.ServiceSpec) { s.GetMode().GetReplicated().Replicas = 5 })
	e.pass()
	if got := slotsOf(e.live("web")); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("after scale up: live slots %v", got)
	}
	newTask := the(t, e.tasks("web"), func(tk *api.Task) bool { return tk.GetSlot() == 5 })
	if newTask.GetSpecVersion() != 2 {
		t.Fatalf("a task made after the update has spec version %d, want 2", newTask.GetSpecVersion())
	}

	// Scale down before 4 and 5 are placed: the pending ones go first,
	// then one of the node with the most tasks (n1 runs slots 1 and 3).
	e.changeService("web", func(s *api.ServiceSpec) { s.GetMode().GetReplicated().Replicas = 2 })
	e.pass()
	live := e.live("web")
	if len(live) != 2 {
		t.Fatalf("after scale down: %d live tasks, want 2", len(live))
	}
	perNode := map[string]int{}
	for _, tk := range live {
		perNode[tk.GetNodeId()]++
	}
	if perNode["n1"] != 1 || perNode["n2"] != 1 {
		t.Fatalf("scale down left %v, want one task per node", perNode)
	}
	e.converge("web", "n1", "n2")

	// Remove: running tasks are stopped, then deleted once stopped.
	e.removeService("web")
	e.pass()
	if n := len(e.tasks("web")); n == 0 {
		t.Fatalf("tasks that may still run were deleted")
	}
	e.agents("web")
	e.pass()
	if left := e.tasks("web"); len(left) != 0 {
		t.Fatalf("tasks of the removed service remain: %v", left)
	}
}

func TestStoreRestartDelayAndMaxAttempts(t *testing.T) {
	e := newEnv(t)
	e.addNodes(node("n1"))
	e.createService(withRestart(replicatedService("s", 1), &api.RestartPolicy{MaxAttempts: 2}))
	e.converge("s", "n1")

	fail := func() *api.Task {
		t.Helper()
		cur := the(t, e.live("s"), func(*api.Task) bool { return true })
		e.setStatus(cur.GetId(), stateFailed)
		return cur
	}
	for attempt := 1; attempt <= 2; attempt++ {
		old := fail()
		e.pass()
		repl := the(t, e.live("s"), func(*api.Task) bool { return true })
		if repl.GetDesiredState() != stateReady || repl.GetSlot() != 1 {
			t.Fatalf("attempt %d: replacement %v, want slot 1 desired READY", attempt, repl)
		}
		e.st.View(func(tx store.ReadTx) {
			if d := tx.GetTask(old.GetId()).GetDesiredState(); d != stateShutdown {
				t.Fatalf("the failed task is desired %v, want SHUTDOWN", d)
			}
		})
		e.place("s", "n1")
		e.clock.Advance(4 * time.Second)
		e.pass()
		if d := the(t, e.live("s"), func(*api.Task) bool { return true }).GetDesiredState(); d != stateReady {
			t.Fatalf("attempt %d: released after 4s of a 5s delay (desired %v)", attempt, d)
		}
		e.clock.Advance(time.Second)
		e.pass()
		if d := the(t, e.live("s"), func(*api.Task) bool { return true }).GetDesiredState(); d != stateRunning {
			t.Fatalf("attempt %d: not released after the delay (desired %v)", attempt, d)
		}
		e.agents("s")
	}
	// Third failure: two attempts made, no more.
	last := fail()
	e.clock.Advance(time.Hour)
	e.pass()
	if n := len(e.live("s")); n != 0 {
		t.Fatalf("max_attempts 2: a third restart was made")
	}
	e.st.View(func(tx store.ReadTx) {
		if d := tx.GetTask(last.GetId()).GetDesiredState(); d != stateRunning {
			t.Fatalf("the refused task is desired %v; it stays RUNNING to hold its slot", d)
		}
	})
	// Scaling up still adds a slot beside the refused one.
	e.changeService("s", func(s *api.ServiceSpec) { s.GetMode().GetReplicated().Replicas = 2 })
	e.pass()
	if got := slotsOf(e.live("s")); !slices.Equal(got, []uint64{2}) {
		t.Fatalf("live slots %v, want 2", got)
	}
}

func TestStoreNodeDownReplacement(t *testing.T) {
	e := newEnv(t)
	e.addNodes(node("n1"), node("n2"))
	e.createService(replicatedService("s", 2))
	e.converge("s", "n1", "n2")
	onN1 := the(t, e.live("s"), func(tk *api.Task) bool { return tk.GetNodeId() == "n1" })

	e.changeNode("n1", isDown)
	e.pass()
	e.st.View(func(tx store.ReadTx) {
		old := tx.GetTask(onN1.GetId())
		if old.GetDesiredState() != stateShutdown || old.GetStatus().GetState() != stateOrphaned {
			t.Fatalf("task of the down node: desired %v status %v, want SHUTDOWN and ORPHANED", old.GetDesiredState(), old.GetStatus().GetState())
		}
	})
	live := e.live("s")
	repl := the(t, live, func(tk *api.Task) bool { return tk.GetSlot() == onN1.GetSlot() })
	if repl.GetDesiredState() != stateRunning || repl.GetNodeId() != "" {
		t.Fatalf("replacement %v: want unplaced, desired RUNNING (no delay)", repl)
	}
	e.converge("s", "n2")

	// The node comes back: nothing more happens; its agent stops the old task.
	e.changeNode("n1", func(n *api.Node) { n.Status.State = api.NodeState_NODE_STATE_READY })
	before := e.st.AppliedIndex()
	e.pass()
	if e.st.AppliedIndex() != before || len(e.live("s")) != 2 {
		t.Fatalf("the node's return changed the service")
	}
}

func TestStoreDrainStopFirst(t *testing.T) {
	e := newEnv(t)
	e.addNodes(node("n1"), node("n2"))
	e.createService(withUpdate(replicatedService("s", 3), false, 1))
	e.converge("s", "n1")

	e.changeNode("n1", isDrained)
	e.pass()
	stopping := 0
	for _, tk := range e.tasks("s") {
		if tk.GetNodeId() == "n1" && tk.GetDesiredState() == stateShutdown {
			stopping++
		}
	}
	if stopping != 1 || len(e.live("s")) != 3 {
		t.Fatalf("parallelism 1: %d tasks stopping, %d live; want 1 and 3", stopping, len(e.live("s")))
	}
	e.converge("s", "n2")
	for _, tk := range e.live("s") {
		if tk.GetNodeId() != "n2" {
			t.Fatalf("task %s still on %s after the drain", tk.GetId(), tk.GetNodeId())
		}
	}
	if n := len(e.live("s")); n != 3 {
		t.Fatalf("%d live tasks after the drain, want 3", n)
	}
}

func TestStoreDrainStartFirst(t *testing.T) {
	e := newEnv(t)
	e.addNodes(node("n1"), node("n2"))
	e.createService(withUpdate(replicatedService("s", 1), true, 0))
	e.converge("s", "n1")
	old := e.live("s")[0]

	e.changeNode("n1", isDrained)
	e.pass()
	if n := len(e.live("s")); n != 2 {
		t.Fatalf("start-first: %d live tasks, want the old one and its replacement", n)
	}
	e.place("s", "n2")
	e.pass()
	e.st.View(func(tx store.ReadTx) {
		if d := tx.GetTask(old.GetId()).GetDesiredState(); d != stateRunning {
			t.Fatalf("old task stopped (desired %v) before its replacement runs", d)
		}
	})
	e.agents("s") // the replacement runs
	e.pass()
	e.st.View(func(tx store.ReadTx) {
		if d := tx.GetTask(old.GetId()).GetDesiredState(); d != stateShutdown {
			t.Fatalf("old task desired %v once its replacement runs, want SHUTDOWN", d)
		}
	})
}

func TestStoreGlobalFollowsNodes(t *testing.T) {
	e := newEnv(t)
	e.addNodes(node("n1"), node("n2"))
	e.createService(globalService("g"))
	e.pass()
	nodesOf := func() []string {
		var out []string
		for _, tk := range e.live("g") {
			out = append(out, tk.GetNodeId())
		}
		slices.Sort(out)
		return out
	}
	if got := nodesOf(); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("global tasks on %v", got)
	}
	e.converge("g")

	e.addNodes(node("n3"))
	e.pass()
	if got := nodesOf(); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("after a join: global tasks on %v", got)
	}
	e.changeNode("n2", isDrained)
	e.pass()
	if got := nodesOf(); !slices.Equal(got, []string{"n1", "n3"}) {
		t.Fatalf("after a drain: global tasks on %v", got)
	}
	e.update(func(tx store.Tx) error { return tx.DeleteNode("n1") })
	e.pass()
	if got := nodesOf(); !slices.Equal(got, []string{"n3"}) {
		t.Fatalf("after a removal: global tasks on %v", got)
	}
	e.changeNode("n2", func(n *api.Node) { n.Spec.Availability = api.NodeAvailability_NODE_AVAILABILITY_ACTIVE })
	e.pass()
	if got := nodesOf(); !slices.Equal(got, []string{"n2", "n3"}) {
		t.Fatalf("after the drain ends: global tasks on %v", got)
	}
}

func TestStoreJobsComplete(t *testing.T) {
	e := newEnv(t)
	e.addNodes(node("n1"))
	e.createService(replicatedJob("j", 2, 3))
	completeAll := func() {
		for _, tk := range e.live("j") {
			e.setStatus(tk.GetId(), stateComplete)
		}
	}
	e.converge("j", "n1")
	if n := len(e.live("j")); n != 2 {
		t.Fatalf("%d tasks running, want max_concurrent 2", n)
	}
	completeAll()
	e.converge("j", "n1")
	if n := len(e.live("j")); n != 1 {
		t.Fatalf("%d tasks running for the last completion, want 1", n)
	}
	completeAll()
	e.converge("j", "n1")
	done := 0
	for _, tk := range e.tasks("j") {
		if tk.GetStatus().GetState() == stateComplete {
			done++
		}
	}
	if done != 3 || len(e.live("j")) != 0 || len(e.tasks("j")) != 3 {
		t.Fatalf("job: %d completions, %d live, %d tasks; want 3, 0, 3", done, len(e.live("j")), len(e.tasks("j")))
	}

	e.createService(globalJob("gj"))
	e.converge("gj")
	completeAll2 := func() {
		for _, tk := range e.live("gj") {
			e.setStatus(tk.GetId(), stateComplete)
		}
	}
	completeAll2()
	e.addNodes(node("n2"))
	e.converge("gj")
	if live := e.live("gj"); len(live) != 1 || live[0].GetNodeId() != "n2" {
		t.Fatalf("global job: a joining node gets one task; live %v", live)
	}
	completeAll2()
	e.converge("gj")
	if n := len(e.live("gj")); n != 0 {
		t.Fatalf("global job done on every node, yet %d tasks live", n)
	}
}

func TestStoreHistoryReaping(t *testing.T) {
	e := newEnv(t)
	limit := int64(2)
	e.update(func(tx store.Tx) error {
		return tx.CreateCluster(&api.Cluster{Id: "c", Spec: &api.ClusterSpec{TaskHistoryRetentionLimit: &limit}})
	})
	e.addNodes(node("n1"))
	e.createService(withRestart(replicatedService("s", 1), &api.RestartPolicy{Delay: ns(0)}))
	e.converge("s", "n1")
	for range 6 {
		e.setStatus(e.live("s")[0].GetId(), stateFailed)
		e.clock.Advance(time.Second)
		e.converge("s", "n1")
	}
	tasks := e.tasks("s")
	if len(tasks) != 3 || len(e.live("s")) != 1 {
		t.Fatalf("retention 2: %d tasks (%d live), want 3 (the live one and 2 dead)", len(tasks), len(e.live("s")))
	}
}

func TestStoreCommitRefusesStalePlans(t *testing.T) {
	e := newEnv(t)
	e.addNodes(node("n1"))
	e.createService(replicatedService("s", 1))
	e.converge("s", "n1")
	tk := e.live("s")[0]
	in := e.o.read([]string{"s"}, e.clock.Now())[0]

	// The task changes under the plan.
	e.setStatus(tk.GetId(), stateFailed)
	e.changeService("s", func(s *api.ServiceSpec) { s.GetMode().GetReplicated().Replicas = 0 })
	p := NewReconciler(in).Compute() // decided before the changes: nothing to do
	p.Actions = append(p.Actions, Action{Kind: ActionUpdate, TaskID: tk.GetId(), Version: tk.GetMeta().GetVersion(), DesiredState: stateShutdown})
	if err := e.o.commit(e.ctx, p); !retryable(err) {
		t.Fatalf("stale plan: err %v, want errStale", err)
	}

	// apply computes again from fresh state and succeeds.
	(&run{o: e.o, wakes: map[string]time.Time{}}).apply(e.ctx, in)
	if n := len(e.live("s")); n != 0 {
		t.Fatalf("replicas 0: %d live tasks", n)
	}
}

func TestRunReactsToEventsAndTime(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.o.Run(ctx) }()
	defer func() { cancel(); <-done }()

	e.addNodes(node("n1"), node("n2"))
	e.createService(replicatedService("s", 2))
	e.waitFor("two tasks", func() bool { return len(e.live("s")) == 2 })
	e.place("s", "n1", "n2")
	e.agents("s")

	// A failure: replaced READY, raised to RUNNING when the fake clock
	// passes the delay (the orchestrator's own timer, no event).
	victim := e.live("s")[0]
	e.setStatus(victim.GetId(), stateFailed)
	ready := func() *api.Task {
		for _, tk := range e.live("s") {
			if tk.GetSlot() == victim.GetSlot() {
				return tk
			}
		}
		return nil
	}
	e.waitFor("a READY replacement", func() bool { r := ready(); return r != nil && r.GetDesiredState() == stateReady })
	e.clock.Advance(5 * time.Second)
	e.waitFor("the replacement released", func() bool { r := ready(); return r != nil && r.GetDesiredState() == stateRunning })

	// A node goes down: its task is replaced.
	e.place("s", "n1", "n2")
	e.agents("s")
	onN2 := the(t, e.live("s"), func(tk *api.Task) bool { return tk.GetNodeId() == "n2" })
	e.changeNode("n2", isDown)
	e.waitFor("the task of the down node orphaned", func() bool {
		var st api.TaskState
		e.st.View(func(tx store.ReadTx) { st = tx.GetTask(onN2.GetId()).GetStatus().GetState() })
		return st == stateOrphaned && len(e.live("s")) == 2
	})
}

func TestRunListsAgainWhenTheWatchCloses(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.o.Run(ctx) }()
	defer func() { cancel(); <-done }()

	e.createService(replicatedService("a", 1))
	e.waitFor("service a's task", func() bool { return len(e.live("a")) == 1 })

	// A restored snapshot closes every watch; it brings service b, which
	// no event announces.
	snap, index := e.st.Snapshot()
	b := replicatedService("b", 2)
	b.Meta = &api.Meta{Version: index}
	snap.Services = append(snap.Services, b)
	slices.SortFunc(snap.Services, func(x, y *api.Service) int {
		if x.GetId() < y.GetId() {
			return -1
		}
		return 1
	})
	if err := e.st.Restore(index+1, proto.Clone(snap).(*api.StoreSnapshot)); err != nil {
		t.Fatal(err)
	}
	e.waitFor("service b's tasks", func() bool { return len(e.live("b")) == 2 })
}

func TestRunReturnsWhenCancelled(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.o.Run(ctx) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestStoreCommitsLargePlansInBatches(t *testing.T) {
	e := newEnv(t)
	e.createService(replicatedService("big", 600))
	before := e.st.AppliedIndex()
	e.pass()
	if n := len(e.live("big")); n != 600 {
		t.Fatalf("%d tasks, want 600", n)
	}
	if got := e.st.AppliedIndex() - before; got != 3 {
		t.Fatalf("600 creations took %d transactions, want 3 of at most %d", got, maxActionsPerCommit)
	}
}
