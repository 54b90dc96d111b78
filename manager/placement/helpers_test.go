package placement

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// failAfter is how long a test waits for something that should happen
// soon before it fails; it is a deadline, not a sleep.
const failAfter = 10 * time.Second

// testNow is the fixed clock of the tests' placers.
var testNow = time.Unix(1_700_000_000, 0)

// newStore returns an empty store with a LocalProposer.
func newStore(t testing.TB) *store.MemoryStore {
	t.Helper()
	s := store.New(nil)
	s.SetProposer(store.NewLocalProposer(s))
	return s
}

// testConfig is a config with short intervals and the fixed clock.
func testConfig() Config {
	return Config{
		BatchWindow:   time.Millisecond,
		RetryInterval: 20 * time.Millisecond,
		Now:           func() time.Time { return testNow },
	}
}

// running is a placer running in the background.
type running struct {
	p      *Placer
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	passes []passStats
}

// startPlacer starts a placer with cfg over s; the test's cleanup stops
// it. hooks, when not nil, sets test hooks before it starts.
func startPlacer(t testing.TB, s *store.MemoryStore, cfg Config, hooks func(*Placer)) *running {
	t.Helper()
	r := &running{p: New(s, cfg), done: make(chan struct{})}
	if hooks != nil {
		hooks(r.p)
	}
	inner := r.p.afterPass
	r.p.afterPass = func(st passStats) {
		r.mu.Lock()
		r.passes = append(r.passes, st)
		r.mu.Unlock()
		if inner != nil {
			inner(st)
		}
	}
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	go func() { defer close(r.done); r.p.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// stop stops the placer and waits for Run to return.
func (r *running) stop() {
	r.cancel()
	<-r.done
}

// passCount is the number of passes run so far.
func (r *running) passCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.passes)
}

// pass returns the i-th pass's stats; the pass must have run.
func (r *running) pass(i int) passStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.passes[i]
}

// waitFor polls cond until it holds, or fails the test at the deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type nodeOpt func(*api.Node)

func withLabels(kv ...string) nodeOpt {
	return func(n *api.Node) {
		n.Spec.Annotations.Labels = map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			n.Spec.Annotations.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withState(st api.NodeState) nodeOpt { return func(n *api.Node) { n.Status.State = st } }

func withAvailability(a api.NodeAvailability) nodeOpt {
	return func(n *api.Node) { n.Spec.Availability = a }
}

// newNode returns a READY, ACTIVE node.
func newNode(id string, opts ...nodeOpt) *api.Node {
	n := &api.Node{
		Id:          id,
		Spec:        &api.NodeSpec{Annotations: &api.Annotations{}},
		Description: &api.NodeDescription{Hostname: id, Platform: &api.Platform{Os: "linux", Architecture: "amd64"}},
		Status:      &api.NodeStatus{State: api.NodeState_NODE_STATE_READY},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

// newTask returns a task as the orchestrator creates it: PENDING,
// desired RUNNING, spec version 1.
func newTask(id, service string, slot uint64, spec *api.TaskSpec) *api.Task {
	return &api.Task{
		Id:           id,
		ServiceId:    service,
		Slot:         slot,
		Spec:         spec,
		SpecVersion:  1,
		Status:       &api.TaskStatus{State: api.TaskState_TASK_STATE_PENDING, Message: "pending"},
		DesiredState: api.TaskState_TASK_STATE_RUNNING,
	}
}

// serviceTasks returns n new tasks of service, IDs SERVICE-01...
func serviceTasks(service string, n int, spec *api.TaskSpec) []*api.Task {
	out := make([]*api.Task, n)
	for i := range out {
		out[i] = newTask(fmt.Sprintf("%s-%02d", service, i+1), service, uint64(i+1), spec)
	}
	return out
}

// createNodes writes nodes in one transaction.
func createNodes(t testing.TB, s *store.MemoryStore, nodes ...*api.Node) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx store.Tx) error {
		for _, n := range nodes {
			if err := tx.CreateNode(n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// createTasks writes tasks in one transaction.
func createTasks(t testing.TB, s *store.MemoryStore, tasks ...*api.Task) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx store.Tx) error {
		for _, task := range tasks {
			if err := tx.CreateTask(task); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// updateTask changes a fresh copy of a task and writes it.
func updateTask(t testing.TB, s *store.MemoryStore, id string, change func(*api.Task)) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx store.Tx) error {
		cur := tx.GetTask(id)
		if cur == nil {
			return fmt.Errorf("task %s: %w", id, store.ErrNotFound)
		}
		next := cloneTask(cur)
		change(next)
		return tx.UpdateTask(next)
	}); err != nil {
		t.Fatal(err)
	}
}

// updateNode changes a fresh copy of a node and writes it.
func updateNode(t testing.TB, s *store.MemoryStore, id string, change func(*api.Node)) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx store.Tx) error {
		next := cloneNode(tx.GetNode(id))
		change(next)
		return tx.UpdateNode(next)
	}); err != nil {
		t.Fatal(err)
	}
}

// tasksOf returns the tasks of a service.
func tasksOf(s *store.MemoryStore, service string) []*api.Task {
	var out []*api.Task
	s.View(func(tx store.ReadTx) { out = tx.FindTasks(store.ByServiceID(service)) })
	return out
}

// getTask returns a task, nil when absent.
func getTask(s *store.MemoryStore, id string) *api.Task {
	var out *api.Task
	s.View(func(tx store.ReadTx) { out = tx.GetTask(id) })
	return out
}

// allAssigned reports whether every task of the service is ASSIGNED.
func allAssigned(s *store.MemoryStore, service string, n int) bool {
	tasks := tasksOf(s, service)
	if len(tasks) != n {
		return false
	}
	for _, t := range tasks {
		if t.GetStatus().GetState() != api.TaskState_TASK_STATE_ASSIGNED {
			return false
		}
	}
	return true
}

// hasReason reports whether the task is PENDING with the reason.
func hasReason(s *store.MemoryStore, id, reason string) bool {
	t := getTask(s, id)
	return t != nil && t.GetStatus().GetState() == api.TaskState_TASK_STATE_PENDING && t.GetStatus().GetErr() == reason
}

func cloneTask(t *api.Task) *api.Task { return proto.Clone(t).(*api.Task) }

func cloneNode(n *api.Node) *api.Node { return proto.Clone(n).(*api.Node) }
