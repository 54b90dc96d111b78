package placement

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// benchCase is one workload of BenchmarkSchedule: one replicated service
// of tasks pending tasks on nodes READY ACTIVE nodes that declare no
// resources (and tasks that reserve none). With third, only every third
// node has the label the service's constraint asks for.
type benchCase struct {
	nodes, tasks int
	third        bool
}

func (bc benchCase) name() string {
	n := fmt.Sprintf("nodes=%d/tasks=%d", bc.nodes, bc.tasks)
	if bc.third {
		n += "/constraint=third"
	}
	return n
}

// BenchmarkSchedule measures placement from "tasks pending in the store"
// to "all assignments written to the store", through a store with a
// LocalProposer: the placer's listing, planning, and every commit
// transaction (task clones, Apply, index updates, events). Building the
// store is outside the timed region.
//
// Run each once: go test -run '^$' -bench BenchmarkSchedule -benchtime 1x ./manager/placement/
func BenchmarkSchedule(b *testing.B) {
	for _, bc := range []benchCase{
		{nodes: 1000, tasks: 100_000},
		{nodes: 100_000, tasks: 100_000},
		{nodes: 100_000, tasks: 1_000_000},
		{nodes: 5000, tasks: 100_000, third: true},
	} {
		b.Run(bc.name(), func(b *testing.B) {
			if bc.tasks >= 1_000_000 && testing.Short() {
				b.Skip("builds a store of 1,000,000 tasks")
			}
			b.ReportAllocs()
			var cpu time.Duration
			for range b.N {
				cpu += benchmarkOnce(b, bc)
			}
			b.ReportMetric(float64(bc.tasks)*float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// benchmarkOnce builds the store (timer stopped), then times one placer
// from its start until the last assignment is applied. It returns the
// CPU time the process used meanwhile (all goroutines, the garbage
// collector's included): on a shared machine it varies less than the
// wall time.
func benchmarkOnce(b *testing.B, bc benchCase) time.Duration {
	b.StopTimer()
	s := benchStore(b, bc)
	var assigned atomic.Int64
	done := make(chan struct{})
	// Only the placer updates tasks here, each once: count the updates to
	// ASSIGNED (looking at the new object only, which is in cache).
	_, cancelWatch := s.Watch(func(ev store.Event) bool {
		if cur, ok := ev.Object.(*api.Task); ok && ev.Kind == store.EventUpdate &&
			cur.GetStatus().GetState() == api.TaskState_TASK_STATE_ASSIGNED {
			if assigned.Add(1) == int64(bc.tasks) {
				close(done)
			}
		}
		return false
	})
	defer cancelWatch()
	p := New(s, Config{Logger: slog.New(slog.DiscardHandler)})
	p.afterPass = func(st passStats) {
		if st.waiting > 0 {
			b.Logf("pass: %d waiting, %d placed in %d commits; list %v, plan %v, commit %v",
				st.waiting, st.placed, st.commits, st.list, st.plan, st.commit)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	runtime.GC()

	cpu0 := cpuTime()
	b.StartTimer()
	go func() { defer close(exited); p.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("%d of %d tasks assigned after 10 minutes", assigned.Load(), bc.tasks)
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0

	cancel()
	<-exited
	checkBench(b, s, bc)
	return cpu
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchStore builds the workload straight through Apply (no clones), in
// commands of 10,000 creates.
func benchStore(b *testing.B, bc benchCase) *store.MemoryStore {
	s := store.New(nil)
	s.SetProposer(store.NewLocalProposer(s))
	apply := func(actions []*api.StoreAction) {
		if err := s.Apply(s.AppliedIndex()+1, &api.Command{Actions: actions}); err != nil {
			b.Fatal(err)
		}
	}
	var actions []*api.StoreAction
	for i := range bc.nodes {
		n := newNode(fmt.Sprintf("node-%06d", i))
		if bc.third && i%3 == 0 {
			n.Spec.Annotations.Labels = map[string]string{"pool": "blue"}
		}
		n.Meta = &api.Meta{CreatedAt: 1, UpdatedAt: 1}
		actions = append(actions, &api.StoreAction{Target: &api.StoreAction_Node{Node: n}})
		if len(actions) == 10_000 {
			apply(actions)
			actions = nil
		}
	}
	spec := &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:1.27"}}
	if bc.third {
		spec.Placement = &api.Placement{Constraints: []string{"node.labels.pool==blue"}}
	}
	for i := range bc.tasks {
		t := newTask(store.NewID(), "svc", uint64(i+1), spec)
		t.Annotations = &api.Annotations{Name: fmt.Sprintf("web.%d", i+1)}
		t.Meta = &api.Meta{CreatedAt: 1, UpdatedAt: 1}
		actions = append(actions, &api.StoreAction{Target: &api.StoreAction_Task{Task: t}})
		if len(actions) == 10_000 {
			apply(actions)
			actions = nil
		}
	}
	if len(actions) > 0 {
		apply(actions)
	}
	return s
}

// checkBench checks the outcome: every task assigned, to a node that
// satisfies the constraint, and the load even.
func checkBench(b *testing.B, s *store.MemoryStore, bc benchCase) {
	perNode := map[string]int{}
	s.View(func(tx store.ReadTx) {
		for _, t := range tx.FindTasks(store.ByServiceID("svc")) {
			if t.GetStatus().GetState() != api.TaskState_TASK_STATE_ASSIGNED {
				b.Fatalf("task %s is %s", t.Id, t.GetStatus().GetState())
			}
			perNode[t.NodeId]++
		}
	})
	eligible := bc.nodes
	if bc.third {
		eligible = (bc.nodes + 2) / 3
		for n := range perNode {
			var i int
			if _, err := fmt.Sscanf(n, "node-%06d", &i); err != nil || i%3 != 0 {
				b.Fatalf("task placed on %s, which lacks the label", n)
			}
		}
	}
	lo, hi := bc.tasks, 0
	for _, c := range perNode {
		lo, hi = min(lo, c), max(hi, c)
	}
	if len(perNode) != min(eligible, bc.tasks) || hi-lo > 1 {
		b.Fatalf("tasks on %d nodes, %d to %d per node; want %d nodes within one", len(perNode), lo, hi, min(eligible, bc.tasks))
	}
}

// BenchmarkCommitFloor is the store's own cost of the writes
// BenchmarkSchedule makes, without placement: every pending task updated
// to ASSIGNED through store.Update, in transactions of
// DefaultMaxCommitTasks, with no reads, checks, planning or watch. It is
// the floor under BenchmarkSchedule's numbers.
func BenchmarkCommitFloor(b *testing.B) {
	bc := benchCase{nodes: 100_000, tasks: 1_000_000}
	if testing.Short() {
		b.Skip("builds a store of 1,000,000 tasks")
	}
	b.ReportAllocs()
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		s := benchStore(b, bc)
		var tasks []*api.Task
		s.View(func(tx store.ReadTx) { tasks = tx.FindTasks(store.All()) })
		runtime.GC()
		cpu0 := cpuTime()
		b.StartTimer()
		for c := 0; c < len(tasks); c += DefaultMaxCommitTasks {
			chunk := tasks[c:min(c+DefaultMaxCommitTasks, len(tasks))]
			if err := s.Update(context.Background(), func(tx store.Tx) error {
				var task api.Task
				var status api.TaskStatus
				for i, cur := range chunk {
					status = api.TaskStatus{State: api.TaskState_TASK_STATE_ASSIGNED, Message: "assigned"}
					setStatus(&task, cur, fmt.Sprintf("node-%06d", (c+i)%bc.nodes), &status)
					if err := tx.UpdateTask(&task); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu += cpuTime() - cpu0
	}
	b.ReportMetric(float64(bc.tasks)*float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}
