package dispatcher

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

// failAfter bounds waits for things that should happen soon; it is a
// deadline, not a sleep.
const failAfter = 10 * time.Second

const (
	stPending   = api.TaskState_TASK_STATE_PENDING
	stAssigned  = api.TaskState_TASK_STATE_ASSIGNED
	stAccepted  = api.TaskState_TASK_STATE_ACCEPTED
	stPreparing = api.TaskState_TASK_STATE_PREPARING
	stRunning   = api.TaskState_TASK_STATE_RUNNING
	stComplete  = api.TaskState_TASK_STATE_COMPLETE
	stShutdown  = api.TaskState_TASK_STATE_SHUTDOWN
	stFailed    = api.TaskState_TASK_STATE_FAILED
)

// newStore returns a real store that applies its writes locally.
func newStore() *store.MemoryStore {
	s := store.New(nil)
	s.SetProposer(store.NewLocalProposer(s))
	return s
}

// startDispatcher runs a dispatcher on s until the test ends and returns
// it once it serves, with the function that stops its Run.
func startDispatcher(t *testing.T, s *store.MemoryStore, cfg Config) (*Dispatcher, context.CancelFunc) {
	t.Helper()
	cfg.Store = s
	if cfg.Members == nil {
		cfg.Members = func() []*api.RaftMember { return nil }
	}
	d := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	poll(t, "dispatcher running", func() error {
		if d.current() == nil {
			return fmt.Errorf("not running")
		}
		return nil
	})
	return d, cancel
}

// poll calls f until it returns nil, failing the test at the deadline.
func poll(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, failAfter, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func update(t *testing.T, s *store.MemoryStore, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func createNodes(t *testing.T, s *store.MemoryStore, ids ...string) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for _, id := range ids {
			if err := tx.CreateNode(&api.Node{Id: id, Spec: &api.NodeSpec{}}); err != nil {
				return err
			}
		}
		return nil
	})
}

func newTask(id, node string, state, desired api.TaskState) *api.Task {
	return &api.Task{
		Id: id, ServiceId: "svc", NodeId: node, DesiredState: desired,
		Spec:   &api.TaskSpec{Container: &api.ContainerSpec{Image: "app:v1"}},
		Status: &api.TaskStatus{State: state, Message: state.String()},
	}
}

func createTasks(t *testing.T, s *store.MemoryStore, tasks ...*api.Task) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for _, task := range tasks {
			if err := tx.CreateTask(task); err != nil {
				return err
			}
		}
		return nil
	})
}

func getTask(s *store.MemoryStore, id string) *api.Task {
	var task *api.Task
	s.View(func(tx store.ReadTx) { task = tx.GetTask(id) })
	return task
}

// changeTasks applies change to fresh copies of the tasks in one write.
func changeTasks(t *testing.T, s *store.MemoryStore, change func(*api.Task), ids ...string) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for _, id := range ids {
			task := proto.Clone(tx.GetTask(id)).(*api.Task)
			change(task)
			if err := tx.UpdateTask(task); err != nil {
				return err
			}
		}
		return nil
	})
}

// stream is an Assignments call whose messages the test reads.
type stream struct {
	msgs    chan *api.AssignmentsMessage
	done    chan error
	blocked chan struct{} // receives when a send starts waiting for block

	mu    sync.Mutex
	block chan struct{} // when not nil, sends wait until it is closed
}

func openStream(t *testing.T, d *Dispatcher, node string) (*stream, context.CancelFunc) {
	t.Helper()
	st := &stream{msgs: make(chan *api.AssignmentsMessage, 1000), done: make(chan error, 1), blocked: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		st.done <- d.Assignments(ctx, node, func(m *api.AssignmentsMessage) error {
			st.mu.Lock()
			block := st.block
			st.mu.Unlock()
			if block != nil {
				st.blocked <- struct{}{}
				<-block
			}
			st.msgs <- proto.Clone(m).(*api.AssignmentsMessage)
			return nil
		})
	}()
	t.Cleanup(cancel)
	return st, cancel
}

// hold makes the stream's next sends wait until release is called.
func (st *stream) hold() (release func()) {
	block := make(chan struct{})
	st.mu.Lock()
	st.block = block
	st.mu.Unlock()
	return func() {
		st.mu.Lock()
		st.block = nil
		st.mu.Unlock()
		close(block)
	}
}

// waitBlocked waits until a send is held.
func (st *stream) waitBlocked(t *testing.T) {
	t.Helper()
	select {
	case <-st.blocked:
	case <-timeout():
		t.Fatal("the stream did not send")
	}
}

func timeout() <-chan time.Time { return time.After(failAfter) }

// next returns the next message or fails the test at the deadline.
func (st *stream) next(t *testing.T) *api.AssignmentsMessage {
	t.Helper()
	select {
	case m := <-st.msgs:
		return m
	case err := <-st.done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(failAfter):
		t.Fatal("no assignments message before the deadline")
	}
	return nil
}

// ids lists a message's updated task IDs and removed IDs, in order.
func ids(m *api.AssignmentsMessage) (updated, removed []string) {
	for _, t := range m.UpdateTasks {
		updated = append(updated, t.Id)
	}
	return updated, m.RemoveTasks
}

func cloneTask(t *api.Task) *api.Task { return proto.Clone(t).(*api.Task) }
