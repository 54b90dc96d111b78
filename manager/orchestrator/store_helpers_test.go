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

// env is a real store (applying writes locally), a fake clock and an
// orchestrator on them. Tests play the other components by writing the
// store: placement (node and ASSIGNED), the dispatcher (task status from
// agents, node status) and the control API (services, node availability).
type env struct {
	t     *testing.T
	ctx   context.Context
	st    *store.MemoryStore
	clock *FakeClock
	o     *Orchestrator
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := store.New(nil)
	st.SetProposer(store.NewLocalProposer(st))
	// The store stamps created_at with the real clock: start the fake
	// clock there so that both tell nearly the same time.
	clock := NewFakeClock(time.Now())
	return &env{t: t, ctx: t.Context(), st: st, clock: clock, o: New(st, Config{Clock: clock})}
}

// update writes through the store and fails the test on error.
func (e *env) update(fn func(tx store.Tx) error) {
	e.t.Helper()
	if err := e.st.Update(e.ctx, fn); err != nil {
		e.t.Fatalf("writing the store: %v", err)
	}
}

// pass runs one full reconcile pass.
func (e *env) pass() { e.o.reconcileAll(e.ctx) }

func (e *env) addNodes(nodes ...*api.Node) {
	e.t.Helper()
	e.update(func(tx store.Tx) error {
		for _, n := range nodes {
			n.Meta = nil
			if err := tx.CreateNode(n); err != nil {
				return err
			}
		}
		return nil
	})
}

// changeNode applies fn to a copy of the stored node and writes it.
func (e *env) changeNode(id string, fn func(*api.Node)) {
	e.t.Helper()
	e.update(func(tx store.Tx) error {
		n := proto.Clone(tx.GetNode(id)).(*api.Node)
		fn(n)
		return tx.UpdateNode(n)
	})
}

func (e *env) createService(svc *api.Service) {
	e.t.Helper()
	svc.Meta = nil
	e.update(func(tx store.Tx) error { return tx.CreateService(svc) })
}

// changeService applies fn to the service's spec and bumps its spec
// version, as the control API's update does.
func (e *env) changeService(id string, fn func(*api.ServiceSpec)) {
	e.t.Helper()
	e.update(func(tx store.Tx) error {
		s := proto.Clone(tx.GetService(id)).(*api.Service)
		fn(s.Spec)
		s.SpecVersion++
		return tx.UpdateService(s)
	})
}

// removeService deletes the service and raises its tasks to REMOVE, as
// the control API does.
func (e *env) removeService(id string) {
	e.t.Helper()
	e.update(func(tx store.Tx) error {
		if err := tx.DeleteService(id); err != nil {
			return err
		}
		for _, t := range tx.FindTasks(store.ByServiceID(id)) {
			if t.GetDesiredState() < stateRemove {
				t = proto.Clone(t).(*api.Task)
				t.DesiredState = stateRemove
				if err := tx.UpdateTask(t); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// tasks returns the service's tasks, sorted by slot, node, then creation.
func (e *env) tasks(svcID string) []*api.Task {
	var out []*api.Task
	e.st.View(func(tx store.ReadTx) { out = tx.FindTasks(store.ByServiceID(svcID)) })
	slices.SortStableFunc(out, func(a, b *api.Task) int {
		switch {
		case a.GetSlot() != b.GetSlot():
			return int(a.GetSlot()) - int(b.GetSlot())
		case a.GetNodeId() != b.GetNodeId():
			if a.GetNodeId() < b.GetNodeId() {
				return -1
			}
			return 1
		case a.GetMeta().GetCreatedAt() != b.GetMeta().GetCreatedAt():
			if a.GetMeta().GetCreatedAt() < b.GetMeta().GetCreatedAt() {
				return -1
			}
			return 1
		}
		return 0
	})
	return out
}

// live returns the service's live tasks (desired RUNNING or READY, status
// not terminal, node not DOWN or gone).
func (e *env) live(svcID string) []*api.Task {
	var out []*api.Task
	e.st.View(func(tx store.ReadTx) {
		for _, t := range tx.FindTasks(store.ByServiceID(svcID)) {
			if t.GetDesiredState() > stateRunning || t.GetStatus().GetState() >= stateComplete {
				continue
			}
			if id := t.GetNodeId(); id != "" {
				if n := tx.GetNode(id); n == nil || n.GetStatus().GetState() == api.NodeState_NODE_STATE_DOWN {
					continue
				}
			}
			out = append(out, t)
		}
	})
	return out
}

// slotsOf returns the slot numbers of the tasks, sorted.
func slotsOf(tasks []*api.Task) []uint64 {
	var out []uint64
	for _, t := range tasks {
		out = append(out, t.GetSlot())
	}
	slices.Sort(out)
	return out
}

// setStatus writes a task's status as the dispatcher would, stamped with
// the fake clock.
func (e *env) setStatus(id string, state api.TaskState) {
	e.t.Helper()
	e.update(func(tx store.Tx) error {
		t := proto.Clone(tx.GetTask(id)).(*api.Task)
		t.Status = &api.TaskStatus{State: state, Message: short(state), Timestamp: e.clock.Now().UnixNano()}
		return tx.UpdateTask(t)
	})
}

// place assigns the service's unplaced tasks to nodes in turn, as
// placement would.
func (e *env) place(svcID string, nodes ...string) {
	e.t.Helper()
	i := 0
	e.update(func(tx store.Tx) error {
		for _, t := range tx.FindTasks(store.ByServiceID(svcID)) {
			if t.GetStatus().GetState() != statePending || t.GetDesiredState() > stateRunning {
				continue
			}
			t = proto.Clone(t).(*api.Task)
			if t.NodeId == "" {
				t.NodeId = nodes[i%len(nodes)]
				i++
			}
			t.Status = &api.TaskStatus{State: stateAssigned, Message: "assigned", Timestamp: e.clock.Now().UnixNano()}
			if err := tx.UpdateTask(t); err != nil {
				return err
			}
		}
		return nil
	})
}

// agents plays every agent once: a placed task desired RUNNING runs, and
// a task desired SHUTDOWN or beyond stops. Tasks on DOWN nodes are left
// alone (their agent is unreachable).
func (e *env) agents(svcID string) {
	e.t.Helper()
	e.update(func(tx store.Tx) error {
		for _, t := range tx.FindTasks(store.ByServiceID(svcID)) {
			n := tx.GetNode(t.GetNodeId())
			if n == nil || n.GetStatus().GetState() == api.NodeState_NODE_STATE_DOWN {
				continue
			}
			var to api.TaskState
			switch s := t.GetStatus().GetState(); {
			case t.GetDesiredState() >= stateShutdown && s < stateComplete:
				to = stateShutdown
			case t.GetDesiredState() == stateRunning && s >= stateAssigned && s < stateRunning:
				to = stateRunning
			default:
				continue
			}
			t = proto.Clone(t).(*api.Task)
			t.Status = &api.TaskStatus{State: to, Message: short(to), Timestamp: e.clock.Now().UnixNano()}
			if err := tx.UpdateTask(t); err != nil {
				return err
			}
		}
		return nil
	})
}

// converge runs pass, placement and agents until a pass changes nothing.
func (e *env) converge(svcID string, nodes ...string) {
	e.t.Helper()
	for range 20 {
		before := e.st.AppliedIndex()
		e.pass()
		e.place(svcID, nodes...)
		e.agents(svcID)
		if e.st.AppliedIndex() == before {
			return
		}
	}
	e.t.Fatalf("service %s does not converge", svcID)
}

// waitFor waits, without sleeping, until cond holds on the store: it
// checks after each store event, and fails the test after 10 s.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	events, cancel := e.st.Watch(nil)
	defer cancel()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case _, ok := <-events:
			if !ok {
				events, cancel = e.st.Watch(nil)
				defer cancel()
			}
		case <-deadline.C:
			e.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// the returns the only element of tasks matching keep, failing otherwise.
func the(t *testing.T, tasks []*api.Task, keep func(*api.Task) bool) *api.Task {
	t.Helper()
	var found []*api.Task
	for _, tk := range tasks {
		if keep(tk) {
			found = append(found, tk)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one matching task, got %d among %v", len(found), tasks)
	}
	return found[0]
}
