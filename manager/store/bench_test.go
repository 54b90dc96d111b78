package store

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

// populate adds n running tasks of serviceID, spread over 100 nodes, in
// commands of 1000 creates, and returns their IDs.
func populate(tb testing.TB, s *MemoryStore, serviceID string, n int) []string {
	tb.Helper()
	spec := &api.TaskSpec{}
	taskIDs := make([]string, 0, n)
	for start := 0; start < n; start += 1000 {
		cmd := &api.Command{}
		for i := start; i < min(start+1000, n); i++ {
			id := NewID()
			taskIDs = append(taskIDs, id)
			cmd.Actions = append(cmd.Actions, createAct(&api.Task{
				Id:           id,
				Meta:         &api.Meta{CreatedAt: 1, UpdatedAt: 1},
				Spec:         spec,
				ServiceId:    serviceID,
				NodeId:       fmt.Sprintf("node%03d", i%100),
				Slot:         uint64(i + 1),
				Status:       &api.TaskStatus{State: api.TaskState_TASK_STATE_RUNNING},
				DesiredState: api.TaskState_TASK_STATE_RUNNING,
			}))
		}
		if err := s.Apply(s.AppliedIndex()+1, cmd); err != nil {
			tb.Fatal(err)
		}
	}
	return taskIDs
}

// BenchmarkApply applies commands of one task status update each (the
// dispatcher's steady state) to a store of 100,000 tasks.
func BenchmarkApply(b *testing.B) {
	s := New(nil)
	taskIDs := populate(b, s, "svc", 100_000)
	var tasks []*api.Task
	s.View(func(tx ReadTx) {
		for _, id := range taskIDs {
			tasks = append(tasks, tx.GetTask(id))
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		cur := tasks[i%len(tasks)]
		next := &api.Task{
			Id:           cur.Id,
			Meta:         &api.Meta{Version: cur.Meta.Version, CreatedAt: cur.Meta.CreatedAt, UpdatedAt: int64(i)},
			Spec:         cur.Spec,
			ServiceId:    cur.ServiceId,
			NodeId:       cur.NodeId,
			Slot:         cur.Slot,
			Status:       &api.TaskStatus{State: cur.Status.State, Timestamp: int64(i)},
			DesiredState: cur.DesiredState,
		}
		if err := s.Apply(s.AppliedIndex()+1, cmdOf(updateAct(next))); err != nil {
			b.Fatal(err)
		}
		tasks[i%len(tasks)] = next
	}
}

// BenchmarkUpdate is one task status update through Update and a
// LocalProposer: the transaction, its clone of the task, and Apply.
func BenchmarkUpdate(b *testing.B) {
	s := New(nil)
	s.SetProposer(NewLocalProposer(s))
	taskIDs := populate(b, s, "svc", 100_000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := taskIDs[i%len(taskIDs)]
		if err := s.Update(ctx, func(tx Tx) error {
			t := protoClone(tx.GetTask(id))
			t.Status.Timestamp = int64(i)
			return tx.UpdateTask(t)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFindTasksByService finds the 100,000 tasks of one service in a
// store that holds 100,000 tasks of other services too.
func BenchmarkFindTasksByService(b *testing.B) {
	benchmarkFindTasksByService(b, 100_000)
}

// BenchmarkFindTasksByService1M is the same with a service of 1,000,000
// tasks.
func BenchmarkFindTasksByService1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a store of 1,100,000 tasks")
	}
	benchmarkFindTasksByService(b, 1_000_000)
}

func benchmarkFindTasksByService(b *testing.B, n int) {
	s := New(nil)
	populate(b, s, "big", n)
	for i := range 10 {
		populate(b, s, fmt.Sprintf("other%d", i), 10_000)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var got int
		s.View(func(tx ReadTx) { got = len(tx.FindTasks(ByServiceID("big"))) })
		if got != n {
			b.Fatalf("found %d tasks, want %d", got, n)
		}
	}
}

// BenchmarkFindTasksByNodeInTx finds one node's tasks inside a transaction
// that has staged 100 task updates (the overlay merge).
func BenchmarkFindTasksByNodeInTx(b *testing.B) {
	s := New(nil)
	s.SetProposer(NewLocalProposer(s))
	taskIDs := populate(b, s, "svc", 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		_ = s.Update(context.Background(), func(tx Tx) error {
			for _, id := range taskIDs[:100] {
				t := protoClone(tx.GetTask(id))
				t.Status.Timestamp++
				if err := tx.UpdateTask(t); err != nil {
					return err
				}
			}
			if n := len(tx.FindTasks(ByNodeID("node007"))); n != 1000 {
				b.Fatalf("found %d tasks, want 1000", n)
			}
			return errSkip
		})
	}
}

var errSkip = errors.New("benchmark: do not propose")
