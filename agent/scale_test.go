package agent

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/shoalhq/shoal/agent/runtime/simulated"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// TestScaleThousandNodes runs 1,000 agents (100 with -short or the race
// detector) with 10 tasks each in one
// process against one in-process dispatcher, and checks that the 10,000
// tasks reach RUNNING, each started once, with status written in few
// store commands. It prints the numbers.
func TestScaleThousandNodes(t *testing.T) {
	nodes, perNode := 1000, 10
	if testing.Short() || raceEnabled {
		// The race detector allows 8128 goroutines: a tenth of the scale.
		nodes = 100
	}
	c := newClusterPeriod(t, 1, time.Second)
	var nodeIDs []string
	for i := range nodes {
		nodeIDs = append(nodeIDs, fmt.Sprintf("n%04d", i))
	}
	c.createNodes(nodeIDs...)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	exec := simulated.New(simulated.Config{}) // shared: one map for all nodes' containers
	goroutinesBefore := runtime.NumGoroutine()
	for _, n := range nodeIDs {
		startAgent(t, Config{NodeID: n, Managers: c.addrs(), Executor: exec, Period: time.Second, ReportInterval: 50 * time.Millisecond, Logger: quiet})
	}
	var all []string
	var tasks []*api.Task
	for _, n := range nodeIDs {
		for j := range perNode {
			id := fmt.Sprintf("%s-t%d", n, j)
			all = append(all, id)
			tasks = append(tasks, newTask(id, n, stRunning))
		}
	}
	before := c.s.AppliedIndex()
	statsBefore := c.managers[0].d.Stats()
	start := time.Now()
	// Placement writes in batches, as a scheduler would.
	for i := 0; i < len(tasks); i += 1000 {
		batch := tasks[i:min(i+1000, len(tasks))]
		c.update(func(tx store.Tx) error {
			for _, task := range batch {
				if err := tx.CreateTask(task); err != nil {
					return err
				}
			}
			return nil
		})
	}
	poll(t, "10,000 tasks RUNNING", func() error {
		running := 0
		c.s.View(func(tx store.ReadTx) {
			for _, task := range tx.FindTasks(store.ByDesiredState(stRunning)) {
				if task.GetStatus().GetState() == stRunning {
					running++
				}
			}
		})
		if running != len(all) {
			return fmt.Errorf("%d running", running)
		}
		return nil
	})
	elapsed := time.Since(start)
	st := c.managers[0].d.Stats()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%d nodes x %d tasks: all RUNNING in %s; %d status updates written in %d store commands (%d store commands in all, 10 for placement); %d goroutines (%d before the agents); heap %d MB",
		nodes, perNode, elapsed.Round(time.Millisecond),
		st.StatusWritten-statsBefore.StatusWritten, st.StatusWrites-statsBefore.StatusWrites, c.s.AppliedIndex()-before,
		runtime.NumGoroutine(), goroutinesBefore, ms.HeapInuse>>20)
	if exec.TotalStarts() != len(all) {
		t.Fatalf("%d starts for %d tasks", exec.TotalStarts(), len(all))
	}
	if writes := st.StatusWrites - statsBefore.StatusWrites; writes > 1000 {
		t.Fatalf("%d store commands for the status of %d tasks", writes, len(all))
	}
}
