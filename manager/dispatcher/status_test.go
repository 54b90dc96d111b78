package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

func report(node string, updates ...*api.TaskStatusUpdate) *api.UpdateTaskStatusRequest {
	return &api.UpdateTaskStatusRequest{NodeId: node, Updates: updates}
}

func upd(task string, state api.TaskState, msg string) *api.TaskStatusUpdate {
	return &api.TaskStatusUpdate{TaskId: task, Status: &api.TaskStatus{State: state, Message: msg, Timestamp: time.Now().UnixNano()}}
}

// TestStatusBatching sends one report per task from many nodes at once:
// the reports must be written in far fewer transactions than there are
// reports, and every one must be in the store when its call returns.
func TestStatusBatching(t *testing.T) {
	for _, n := range []int{2000, 10000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := newStore()
			var nodes []string
			for i := range n / 10 {
				nodes = append(nodes, fmt.Sprintf("n%d", i))
			}
			createNodes(t, s, nodes...)
			var tasks []*api.Task
			for i := range n {
				tasks = append(tasks, newTask(fmt.Sprintf("t%d", i), nodes[i%len(nodes)], stAssigned, stRunning))
			}
			for chunk := range slices.Chunk(tasks, 1000) {
				createTasks(t, s, chunk...)
			}
			d, _ := startDispatcher(t, s, Config{})
			before := s.AppliedIndex()
			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for _, task := range tasks {
				wg.Go(func() {
					err := d.UpdateTaskStatus(context.Background(), report(task.NodeId, upd(task.Id, stRunning, "started")))
					if err == nil && getTask(s, task.Id).Status.State != stRunning {
						err = fmt.Errorf("task %s not RUNNING when its report returned", task.Id)
					}
					errs <- err
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			writes := s.AppliedIndex() - before
			t.Logf("%d concurrent reports -> %d store commands in %s (%+v)", n, writes, elapsed.Round(time.Millisecond), d.Stats())
			// At 1000 updates per transaction, n/1000 is the least; allow
			// for reports that straggle into later intervals.
			if limit := uint64(n/1000 + 10); writes > limit {
				t.Fatalf("%d reports took %d store writes, want at most %d", n, writes, limit)
			}
			if st := d.Stats(); st.StatusWritten != uint64(n) || st.StatusUpdates != uint64(n) {
				t.Fatalf("stats %+v, want %d updates written", st, n)
			}
		})
	}
}

func TestStatusIgnoresBackwardsAndOtherNodes(t *testing.T) {
	s := newStore()
	createNodes(t, s, "n1", "n2")
	createTasks(t, s,
		newTask("running", "n1", stRunning, stRunning),
		newTask("done", "n1", stComplete, stShutdown),
		newTask("theirs", "n2", stAssigned, stRunning),
		newTask("mine", "n1", stAssigned, stRunning),
	)
	d, _ := startDispatcher(t, s, Config{StatusBatchInterval: time.Millisecond})
	ctx := context.Background()
	// One call mixes reports to ignore with one to write: the ignored
	// ones must not fail it, nor stop the good one.
	err := d.UpdateTaskStatus(ctx, report("n1",
		upd("running", stPreparing, "late report"),             // backwards
		upd("done", stFailed, "another ending"),                // a finished task keeps its ending
		upd("theirs", stRunning, "not my task"),                // another node's
		upd("gone", stRunning, "deleted task"),                 // no such task
		upd("mine", api.TaskState_TASK_STATE_NEW, "too early"), // agents report ACCEPTED onwards
		upd("mine", stAccepted, "accepted"),
	))
	if err != nil {
		t.Fatalf("a batch with ignored reports failed: %v", err)
	}
	want := map[string]api.TaskState{"running": stRunning, "done": stComplete, "theirs": stAssigned, "mine": stAccepted}
	for id, st := range want {
		if got := getTask(s, id).Status; got.State != st {
			t.Errorf("%s: %v (%q), want %v", id, got.State, got.Message, st)
		}
	}
	// The same status again writes nothing.
	before := s.AppliedIndex()
	again := upd("mine", stAccepted, "accepted")
	if err := d.UpdateTaskStatus(ctx, report("n1", again)); err != nil {
		t.Fatal(err)
	}
	if s.AppliedIndex() != before {
		t.Fatal("a repeated report was written again")
	}
	// The reporting node must exist.
	if err := d.UpdateTaskStatus(ctx, report("ghost", upd("mine", stRunning, ""))); !errors.Is(err, ErrNodeRemoved) {
		t.Fatalf("report from an unknown node: %v, want ErrNodeRemoved", err)
	}
}

// conflictProposer makes the first status write lose a compare-and-swap
// race: just before it proposes, another writer raises the task's desired
// state.
type conflictProposer struct {
	s     *store.MemoryStore
	local *store.LocalProposer
	mu    sync.Mutex
	fired bool
}

func (p *conflictProposer) Propose(ctx context.Context, cmd *api.Command) (uint64, error) {
	p.mu.Lock()
	fire := !p.fired && len(cmd.Actions) == 1 && cmd.Actions[0].GetTask().GetStatus().GetState() == stRunning
	p.fired = p.fired || fire
	p.mu.Unlock()
	if fire {
		task := getTask(p.s, "t1")
		task = cloneTask(task)
		task.DesiredState = stShutdown
		if err := p.s.Update(ctx, func(tx store.Tx) error { return tx.UpdateTask(task) }); err != nil {
			return 0, err
		}
	}
	return p.local.Propose(ctx, cmd)
}

func TestStatusRetriesConflictsOnFreshState(t *testing.T) {
	s := store.New(nil)
	p := &conflictProposer{s: s, local: store.NewLocalProposer(s)}
	s.SetProposer(p)
	createNodes(t, s, "n1")
	createTasks(t, s, newTask("t1", "n1", stAssigned, stRunning))
	d, _ := startDispatcher(t, s, Config{StatusBatchInterval: time.Millisecond})
	if err := d.UpdateTaskStatus(context.Background(), report("n1", upd("t1", stRunning, "started"))); err != nil {
		t.Fatal(err)
	}
	got := getTask(s, "t1")
	if !p.fired || got.Status.State != stRunning || got.DesiredState != stShutdown {
		t.Fatalf("after a conflict: fired %v, status %v, desired %v; want the status written over the other write", p.fired, got.Status.State, got.DesiredState)
	}
}

func TestStatusFailsWhenNotRunning(t *testing.T) {
	s := newStore()
	createNodes(t, s, "n1")
	d := New(Config{Store: s, Members: func() []*api.RaftMember { return nil }})
	if err := d.UpdateTaskStatus(context.Background(), report("n1", upd("t1", stRunning, ""))); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("report before Run: %v, want ErrNotRunning", err)
	}
}

func TestSameStatusCoversEveryField(t *testing.T) {
	fields := (&api.TaskStatus{}).ProtoReflect().Descriptor().Fields()
	var names []string
	for i := range fields.Len() {
		names = append(names, string(fields.Get(i).Name()))
	}
	want := []string{"timestamp", "state", "message", "err", "container", "ports", "health"}
	if !slices.Equal(names, want) {
		t.Fatalf("TaskStatus fields are %v, sameStatus knows %v: compare the new field in sameStatus", names, want)
	}
}
