package orchestrator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// updating returns a replicated service at spec version 2 (image
// nginx:2, previous spec nginx:1) with the update config, and its
// replicas RUNNING tasks of version 1, started an hour before t0.
func updating(replicas uint64, u *api.UpdateConfig) (*api.Service, []*api.Task) {
	svc := replicatedService("s", replicas)
	var tasks []*api.Task
	for i := uint64(1); i <= replicas; i++ {
		tasks = append(tasks, running(fmt.Sprintf("old%d", i), svc, i, "n1", time.Hour))
	}
	svc.PreviousSpec = proto.Clone(svc.Spec).(*api.ServiceSpec)
	svc.Spec.Task = &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:2"}}
	svc.Spec.Update = u
	svc.SpecVersion = 2
	return svc, tasks
}

func par(n uint64) *uint64 { return &n }

// rollout is a pure simulation of an update: passes of the reconciler,
// plans applied as the committer would, and agents that start every
// task desired RUNNING and stop every task desired SHUTDOWN at once.
type rollout struct {
	t           *testing.T
	svc         *api.Service
	tasks       []*api.Task
	nodes       []*api.Node // n1 unless set
	now         time.Time
	ids         int
	creates     map[uint64]int // tasks created per slot
	nodeCreates map[string]int // tasks created per preset node (global services)
	minRun      int
	maxRun      int
}

func newRollout(t *testing.T, svc *api.Service, tasks []*api.Task) *rollout {
	return &rollout{t: t, svc: svc, tasks: tasks, nodes: []*api.Node{node("n1")}, now: t0,
		creates: map[uint64]int{}, nodeCreates: map[string]int{}, minRun: 1 << 30}
}

// pass computes and applies one plan and returns it.
func (r *rollout) pass() *Plan {
	p := NewReconciler(Input{ServiceID: "s", Service: r.svc, Tasks: r.tasks, Nodes: r.nodes, Now: r.now}).Compute()
	for _, a := range p.Actions {
		if a.Kind == ActionCreate {
			r.creates[a.Task.GetSlot()]++
			if id := a.Task.GetNodeId(); id != "" {
				r.nodeCreates[id]++
			}
		}
	}
	r.tasks = applyPlanIDs(r.tasks, p, func() string { r.ids++; return fmt.Sprintf("new%03d", r.ids) })
	r.svc = applyService(r.svc, p)
	r.count()
	return p
}

// agents starts and stops tasks as their desired state says, now;
// placement puts the tasks with no node on n1.
func (r *rollout) agents() { r.someAgents(func() bool { return true }) }

// someAgents is agents for the tasks acts says yes to, in task order.
func (r *rollout) someAgents(acts func() bool) {
	for _, tk := range r.tasks {
		if !acts() {
			continue
		}
		s := tk.GetStatus().GetState()
		switch {
		case tk.GetDesiredState() >= stateShutdown && s < stateComplete:
			tk.Status = &api.TaskStatus{State: stateShutdown, Timestamp: r.now.UnixNano()}
		case tk.GetDesiredState() == stateRunning && s < stateRunning:
			if tk.NodeId == "" {
				tk.NodeId = "n1"
			}
			tk.Status = &api.TaskStatus{State: stateRunning, Timestamp: r.now.UnixNano()}
		}
	}
	r.count()
}

func (r *rollout) count() {
	n := 0
	for _, tk := range r.tasks {
		if tk.GetStatus().GetState() == stateRunning {
			n++
		}
	}
	r.minRun, r.maxRun = min(r.minRun, n), max(r.maxRun, n)
}

// run plays passes and agents until the update is no longer UPDATING
// (or ROLLBACK_STARTED), moving the clock to each plan's wake-up time.
func (r *rollout) run() {
	for i := 0; i < 1000; i++ {
		p := r.pass()
		if s := r.svc.GetUpdateStatus().GetState(); s != api.UpdateStatus_STATE_UPDATING && s != api.UpdateStatus_STATE_ROLLBACK_STARTED && r.svc.GetUpdateStatus() != nil {
			return
		}
		r.agents()
		if p2 := r.pass(); !p2.Empty() || !p.Empty() {
			continue
		}
		if p.Wake.IsZero() {
			r.now = r.now.Add(time.Second)
		} else {
			r.now = p.Wake
		}
	}
	r.t.Fatalf("the update did not end: %v", r.svc.GetUpdateStatus())
}

func (r *rollout) liveImages() map[string]int {
	out := map[string]int{}
	for _, tk := range r.tasks {
		if tk.GetDesiredState() <= stateRunning && tk.GetStatus().GetState() < stateComplete {
			out[tk.GetSpec().GetContainer().GetImage()]++
		}
	}
	return out
}

func TestUpdateStopFirstFirstPass(t *testing.T) {
	svc, tasks := updating(3, nil) // parallelism unset: 1
	p := compute(svc, tasks, []*api.Node{node("n1")}, nil)
	wantPlan(t, p, "create 1 RUNNING", "raise old1 SHUTDOWN")
	u := p.UpdateStatus
	if u.GetState() != api.UpdateStatus_STATE_UPDATING || u.GetStartedAt() != t0.UnixNano() || u.GetSpecVersion() != 2 {
		t.Fatalf("status %v, want UPDATING started at t0 for version 2", u)
	}
	for _, a := range p.Actions {
		if a.Reason != ReasonUpdate {
			t.Fatalf("reason %q, want %q", a.Reason, ReasonUpdate)
		}
	}
}

func TestUpdateStartFirstWaitsForRunning(t *testing.T) {
	svc, tasks := updating(2, &api.UpdateConfig{Parallelism: par(1), Order: api.UpdateConfig_ORDER_START_FIRST})
	r := newRollout(t, svc, tasks)
	wantPlan(t, r.pass(), "create 1 RUNNING")
	wantPlan(t, r.pass()) // the new task is not running yet: the old one stays
	r.agents()
	wantPlan(t, r.pass(), "raise old1 SHUTDOWN")
}

func TestUpdateMonitorAndDelay(t *testing.T) {
	svc, tasks := updating(2, &api.UpdateConfig{Parallelism: par(1), Monitor: ns(10 * time.Second), Delay: int64(30 * time.Second)})
	r := newRollout(t, svc, tasks)
	r.pass()
	r.agents() // new task of slot 1 RUNNING at t0
	r.now = t0.Add(9 * time.Second)
	if p := r.pass(); !p.Empty() || !p.Wake.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("within the monitor: %s, want nothing and a wake at the end of the monitor", p)
	}
	r.now = t0.Add(10 * time.Second)
	if p := r.pass(); !p.Empty() || !p.Wake.Equal(t0.Add(40*time.Second)) {
		t.Fatalf("within the delay: %s, want nothing and a wake at the end of the delay", p)
	}
	r.now = t0.Add(40 * time.Second)
	wantPlan(t, r.pass(), "create 2 RUNNING", "raise old2 SHUTDOWN")
}

func TestUpdateRollsOut(t *testing.T) {
	for _, tc := range []struct {
		par        *uint64
		startFirst bool
	}{{nil, false}, {par(0), false}, {par(1), false}, {par(2), false}, {par(2), true}, {par(0), true}} {
		name := fmt.Sprintf("parallelism=unset/start-first=%v", tc.startFirst)
		if tc.par != nil {
			name = fmt.Sprintf("parallelism=%d/start-first=%v", *tc.par, tc.startFirst)
		}
		t.Run(name, func(t *testing.T) {
			u := &api.UpdateConfig{Parallelism: tc.par, Monitor: ns(5 * time.Second), Delay: int64(2 * time.Second)}
			if tc.startFirst {
				u.Order = api.UpdateConfig_ORDER_START_FIRST
			}
			svc, tasks := updating(6, u)
			r := newRollout(t, svc, tasks)
			r.run()
			us := r.svc.GetUpdateStatus()
			if us.GetState() != api.UpdateStatus_STATE_COMPLETED || us.GetMessage() != msgUpdateCompleted || us.GetCompletedAt() != r.now.UnixNano() {
				t.Fatalf("status %v, want COMPLETED now", us)
			}
			if img := r.liveImages(); img["nginx:2"] != 6 || len(img) != 1 {
				t.Fatalf("live images %v, want 6 × nginx:2", img)
			}
			for s := uint64(1); s <= 6; s++ {
				if r.creates[s] != 1 {
					t.Fatalf("slot %d replaced %d times, want once", s, r.creates[s])
				}
			}
			r.checkBounds(6, tc.par, tc.startFirst)
		})
	}
}

// checkBounds fails when a finished rollout over n slots (or nodes),
// with monitor 5 s and delay 2 s, ran more than n + parallelism tasks
// (start-first), fewer than n − parallelism (stop-first) or fewer than
// n (start-first), or ended sooner than its batches allow.
func (r *rollout) checkBounds(n int, par *uint64, startFirst bool) {
	r.t.Helper()
	p := n
	if par == nil {
		p = 1
	} else if *par > 0 {
		p = int(*par)
	}
	if startFirst && (r.maxRun > n+p || r.minRun < n) {
		r.t.Fatalf("start-first: %d..%d tasks running, want %d..%d", r.minRun, r.maxRun, n, n+p)
	}
	if !startFirst && r.minRun < n-p {
		r.t.Fatalf("stop-first: %d tasks running at least, want %d", r.minRun, n-p)
	}
	// Each batch waits for its monitor (5 s) and the delay (2 s).
	batches := (n + p - 1) / p
	if d := r.now.Sub(t0); d < time.Duration(batches-1)*7*time.Second+5*time.Second {
		r.t.Fatalf("update took %v for %d batches: monitor or delay not honoured", d, batches)
	}
}

func TestUpdateFailurePauses(t *testing.T) {
	svc, tasks := updating(3, nil)
	r := newRollout(t, svc, tasks)
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
	// Paused stays paused, whatever the time.
	r.agents()
	r.now = r.now.Add(time.Hour)
	for range 3 {
		for _, a := range r.pass().Actions {
			if a.Reason == ReasonUpdate {
				t.Fatalf("paused, yet %v", a)
			}
		}
	}
	if r.svc.GetUpdateStatus().GetState() != api.UpdateStatus_STATE_PAUSED {
		t.Fatalf("status %v, want still PAUSED", r.svc.GetUpdateStatus())
	}
	// A new spec version starts the update again.
	r.svc.Spec.Task.Container.Image = "nginx:3"
	r.svc.SpecVersion = 3
	r.run()
	if s := r.svc.GetUpdateStatus().GetState(); s != api.UpdateStatus_STATE_COMPLETED {
		t.Fatalf("after a new spec: %v, want COMPLETED", r.svc.GetUpdateStatus())
	}
	if img := r.liveImages(); img["nginx:3"] != 3 {
		t.Fatalf("live images %v", img)
	}
}

func TestUpdateFailureContinues(t *testing.T) {
	svc, tasks := updating(3, &api.UpdateConfig{FailureAction: api.UpdateConfig_FAILURE_ACTION_CONTINUE, Monitor: ns(0)})
	r := newRollout(t, svc, tasks)
	r.pass()
	for _, tk := range r.tasks {
		if tk.GetSpecVersion() == 2 {
			tk.Status = &api.TaskStatus{State: stateFailed, Err: "exit 1", Timestamp: r.now.UnixNano()}
		}
	}
	r.run()
	if s := r.svc.GetUpdateStatus().GetState(); s != api.UpdateStatus_STATE_COMPLETED {
		t.Fatalf("status %v, want COMPLETED", r.svc.GetUpdateStatus())
	}
}

func TestUpdateFailureRollsBack(t *testing.T) {
	svc, tasks := updating(3, &api.UpdateConfig{FailureAction: api.UpdateConfig_FAILURE_ACTION_ROLLBACK})
	for _, tk := range tasks {
		tk.ImageDigest = "sha256:v1"
	}
	svc.ImageDigest = "sha256:v2"
	r := newRollout(t, svc, tasks)
	r.pass()
	for _, tk := range r.tasks {
		if tk.GetSpecVersion() == 2 {
			tk.Status = &api.TaskStatus{State: stateRunning, Health: "unhealthy", Timestamp: r.now.UnixNano()}
		}
	}
	p := r.pass()
	if !p.Rollback || p.RollbackDigest != "sha256:v1" {
		t.Fatalf("plan %s, want a rollback to digest sha256:v1", p)
	}
	us := r.svc.GetUpdateStatus()
	if us.GetState() != api.UpdateStatus_STATE_ROLLBACK_STARTED || us.GetSpecVersion() != 3 || !strings.Contains(us.GetMessage(), "unhealthy") ||
		r.svc.GetSpecVersion() != 3 || r.svc.GetSpec().GetTask().GetContainer().GetImage() != "nginx:1" ||
		r.svc.GetPreviousSpec().GetTask().GetContainer().GetImage() != "nginx:2" {
		t.Fatalf("after the rollback write: service %v", r.svc)
	}
	r.run()
	if u := r.svc.GetUpdateStatus(); u.GetState() != api.UpdateStatus_STATE_ROLLBACK_COMPLETED || !strings.Contains(u.GetMessage(), "unhealthy") {
		t.Fatalf("status %v, want ROLLBACK_COMPLETED saying why", u)
	}
	if img := r.liveImages(); img["nginx:1"] != 3 || len(img) != 1 {
		t.Fatalf("live images %v, want 3 × nginx:1", img)
	}
	// Slots 2 and 3 never left version 1: the rollback replaced slot 1 only.
	if r.creates[1] != 2 || r.creates[2] != 0 || r.creates[3] != 0 {
		t.Fatalf("creates per slot %v, want slot 1 twice (update, rollback) only", r.creates)
	}
}

// A new leader reads the same store: slots already updated are left
// alone, the update goes on with the rest.
func TestUpdateResumesAfterLeaderChange(t *testing.T) {
	svc, tasks := updating(3, nil)
	svc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_STATE_UPDATING, StartedAt: t0.Add(-time.Minute).UnixNano(), SpecVersion: 2}
	for i, tk := range tasks[:2] {
		tk.DesiredState = stateShutdown
		tk.Status.State = stateShutdown
		nt := running(fmt.Sprintf("upd%d", i+1), svc, tk.GetSlot(), "n1", 30*time.Second)
		tasks = append(tasks, nt)
	}
	p := compute(svc, tasks, []*api.Node{node("n1")}, nil)
	wantPlan(t, p, "create 3 RUNNING", "raise old3 SHUTDOWN")
	if p.UpdateStatus != nil {
		t.Fatalf("status rewritten on resume: %v", p.UpdateStatus)
	}
}

func TestUpdateWithScale(t *testing.T) {
	svc, tasks := updating(3, &api.UpdateConfig{Parallelism: par(1)})
	r := newRollout(t, svc, tasks)
	r.pass()
	r.agents()
	// Scale to 5 mid-update: a new spec version with the same task spec.
	r.svc.Spec.Mode.GetReplicated().Replicas = 5
	r.svc.SpecVersion = 3
	r.run()
	if img := r.liveImages(); img["nginx:2"] != 5 || len(img) != 1 {
		t.Fatalf("live images %v, want 5 × nginx:2", img)
	}
	for s := uint64(1); s <= 5; s++ {
		if r.creates[s] != 1 {
			t.Fatalf("creates per slot %v, want one each", r.creates)
		}
	}
	// Scale down to 1 mid-update.
	svc, tasks = updating(3, &api.UpdateConfig{Parallelism: par(1)})
	r = newRollout(t, svc, tasks)
	r.pass()
	r.svc.Spec.Mode.GetReplicated().Replicas = 1
	r.svc.SpecVersion = 3
	r.run()
	if img := r.liveImages(); img["nginx:2"] != 1 || len(img) != 1 {
		t.Fatalf("live images %v, want 1 × nginx:2", img)
	}
}

// TestPropertyUpdateBounds: whatever the replicas, parallelism, order,
// monitor and delay, and however late the agents act, an update never
// runs more than replicas + parallelism tasks (start-first) nor fewer
// than replicas − parallelism (stop-first), replaces each slot once and
// completes.
func TestPropertyUpdateBounds(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		replicas := rapid.IntRange(1, 6).Draw(rt, "replicas")
		u, p, startFirst := drawUpdateConfig(rt)
		svc, tasks := updating(uint64(replicas), u)
		r := newRollout(t, svc, tasks)
		r.runRandomly(rt, replicas, p, startFirst)
		for s := uint64(1); s <= uint64(replicas); s++ {
			if r.creates[s] != 1 {
				rt.Fatalf("slot %d replaced %d times", s, r.creates[s])
			}
		}
	})
}

// The committer writes the update status with the plan, and a rollback
// swaps the spec in the same write.
func TestStoreUpdateStatusAndRollback(t *testing.T) {
	e := newEnv(t)
	e.addNodes(node("n1"))
	e.createService(withUpdate(replicatedService("s", 2), false, 1))
	e.converge("s", "n1")
	e.changeService("s", func(s *api.ServiceSpec) {
		s.Task.Container.Image = "nginx:2"
		s.Update.FailureAction = api.UpdateConfig_FAILURE_ACTION_ROLLBACK
	})
	e.update(func(tx store.Tx) error { // as the control API does
		s := proto.Clone(tx.GetService("s")).(*api.Service)
		s.PreviousSpec = proto.Clone(s.Spec).(*api.ServiceSpec)
		s.PreviousSpec.Task.Container.Image = "nginx:1"
		return tx.UpdateService(s)
	})
	e.pass()
	svc := e.service("s")
	if u := svc.GetUpdateStatus(); u.GetState() != api.UpdateStatus_STATE_UPDATING || u.GetSpecVersion() != 2 {
		t.Fatalf("update status %v, want UPDATING for version 2", u)
	}
	e.place("s", "n1")
	for _, tk := range e.tasks("s") {
		if tk.GetSpecVersion() == 2 && tk.GetDesiredState() == stateRunning {
			e.setStatus(tk.GetId(), stateFailed)
		}
	}
	e.pass()
	svc = e.service("s")
	if u := svc.GetUpdateStatus(); u.GetState() != api.UpdateStatus_STATE_ROLLBACK_STARTED || svc.GetSpecVersion() != 3 ||
		svc.GetSpec().GetTask().GetContainer().GetImage() != "nginx:1" {
		t.Fatalf("after the failure: status %v, version %d, image %s", u, svc.GetSpecVersion(), svc.GetSpec().GetTask().GetContainer().GetImage())
	}
	for range 10 {
		e.clock.Advance(10 * time.Second)
		e.converge("s", "n1")
	}
	if u := e.service("s").GetUpdateStatus(); u.GetState() != api.UpdateStatus_STATE_ROLLBACK_COMPLETED {
		for _, tk := range e.tasks("s") {
			t.Logf("%s slot %d v%d %s desired %s at %d", tk.GetId(), tk.GetSlot(), tk.GetSpecVersion(), tk.GetStatus().GetState(), tk.GetDesiredState(), tk.GetStatus().GetTimestamp())
		}
		t.Fatalf("status %v, want ROLLBACK_COMPLETED; now %d", u, e.clock.Now().UnixNano())
	}
	for _, tk := range e.live("s") {
		if img := tk.GetSpec().GetContainer().GetImage(); img != "nginx:1" {
			t.Fatalf("live task %s runs %s after the rollback", tk.GetId(), img)
		}
	}
}

// service returns the stored service.
func (e *env) service(id string) *api.Service {
	var s *api.Service
	e.st.View(func(tx store.ReadTx) { s = tx.GetService(id) })
	return s
}

// A task an update or a node drain stops carries the update config's
// drain, written with its desired state; other stops carry none.
func TestStoreRetiredTasksCarryDrain(t *testing.T) {
	const drain = int64(3 * time.Second)
	e := newEnv(t)
	e.addNodes(node("n1"), node("n2"))
	svc := withUpdate(replicatedService("s", 2), false, 0)
	svc.Spec.Update.Drain = drain
	e.createService(svc)
	e.converge("s", "n1")
	first := e.live("s")

	e.changeService("s", func(s *api.ServiceSpec) { s.Task.Container.Image = "nginx:2" })
	e.pass()
	for _, old := range first {
		var got *api.Task
		e.st.View(func(tx store.ReadTx) { got = tx.GetTask(old.GetId()) })
		if got.GetDesiredState() != stateShutdown || got.GetDrain() != drain {
			t.Fatalf("updated task %s: desired %v drain %v, want SHUTDOWN and %v", got.GetId(), got.GetDesiredState(), time.Duration(got.GetDrain()), time.Duration(drain))
		}
	}
	e.converge("s", "n1")
	moved := e.live("s")
	e.changeNode("n1", isDrained)
	e.pass()
	for _, old := range moved {
		var got *api.Task
		e.st.View(func(tx store.ReadTx) { got = tx.GetTask(old.GetId()) })
		if got.GetDesiredState() != stateShutdown || got.GetDrain() != drain {
			t.Fatalf("task %s on the drained node: desired %v drain %v, want SHUTDOWN and %v", got.GetId(), got.GetDesiredState(), time.Duration(got.GetDrain()), time.Duration(drain))
		}
	}
	e.converge("s", "n2")
	e.changeService("s", func(s *api.ServiceSpec) { s.Mode.GetReplicated().Replicas = 1 })
	e.pass()
	scaled := 0
	for _, tk := range e.tasks("s") {
		if tk.GetNodeId() == "n2" && tk.GetDesiredState() >= stateShutdown {
			scaled++
			if tk.GetDrain() != 0 {
				t.Fatalf("scaled-down task %s carries drain %v", tk.GetId(), time.Duration(tk.GetDrain()))
			}
		}
	}
	if scaled != 1 {
		t.Fatalf("%d tasks stopped by the scale to 1, want 1", scaled)
	}
}

// drawUpdateConfig draws an update config for the property tests:
// parallelism 1 to 3, either order, monitor and delay of 0 to 3 s.
func drawUpdateConfig(rt *rapid.T) (u *api.UpdateConfig, parallelism int, startFirst bool) {
	p := rapid.Uint64Range(1, 3).Draw(rt, "parallelism")
	startFirst = rapid.Bool().Draw(rt, "start-first")
	u = &api.UpdateConfig{Parallelism: &p,
		Monitor: ns(time.Duration(rapid.IntRange(0, 3).Draw(rt, "monitor")) * time.Second),
		Delay:   int64(time.Duration(rapid.IntRange(0, 3).Draw(rt, "delay")) * time.Second)}
	if startFirst {
		u.Order = api.UpdateConfig_ORDER_START_FIRST
	}
	return u, int(p), startFirst
}

// runRandomly drives the rollout of n slots (or nodes) to COMPLETED,
// agents acting on drawn tasks only and time moving by drawn steps, and
// fails when it runs more than n + parallelism tasks (start-first),
// fewer than n − parallelism (stop-first), or does not complete.
func (r *rollout) runRandomly(rt *rapid.T, n, parallelism int, startFirst bool) {
	for step := 0; r.svc.GetUpdateStatus().GetState() != api.UpdateStatus_STATE_COMPLETED; step++ {
		if step > 500 {
			rt.Fatalf("no completion: %v", r.svc.GetUpdateStatus())
		}
		r.pass()
		r.someAgents(func() bool { return rapid.Bool().Draw(rt, "agent-acts") })
		if startFirst && r.maxRun > n+parallelism {
			rt.Fatalf("start-first: %d tasks running, more than %d + %d", r.maxRun, n, parallelism)
		}
		if !startFirst && r.minRun < n-parallelism {
			rt.Fatalf("stop-first: %d tasks running, fewer than %d − %d", r.minRun, n, parallelism)
		}
		r.now = r.now.Add(time.Duration(rapid.IntRange(0, 2000).Draw(rt, "tick")) * time.Millisecond)
	}
}
