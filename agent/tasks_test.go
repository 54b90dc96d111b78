package agent

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/agent/runtime/simulated"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

func TestAgentRunsAndStopsItsTasks(t *testing.T) {
	c := newCluster(t, 1)
	c.createNodes("n1", "n2")
	mine := ids("t", 5)
	c.assign("n1", mine...)
	c.assign("n2", "other")
	exec := simulated.New(simulated.Config{})
	a := startAgent(t, Config{NodeID: "n1", Managers: c.addrs(), Executor: exec, StateDir: t.TempDir()})

	c.waitStates(stRunning, mine...)
	checkStartedOnce(t, mine, exec)
	if exec.Starts("other") != 0 || c.task("other").Status.State != stAssigned {
		t.Fatal("the agent ran another node's task")
	}
	if got := c.task("t0").Status.Container.GetContainerId(); got != "sim-t0" {
		t.Errorf("running status has container %q, want sim-t0", got)
	}

	// Desired SHUTDOWN stops the task and reports SHUTDOWN.
	c.setDesired(stShutdown, "t0")
	c.waitStates(stShutdown, "t0")
	if exec.IsRunning("t0") {
		t.Fatal("t0 reported SHUTDOWN but still runs")
	}
	// Desired REMOVE stops it and removes its container.
	c.setDesired(stRemove, "t1")
	c.waitStates(stShutdown, "t1")
	poll(t, "t1's container removed", func() error {
		if exec.Exists("t1") {
			return fmt.Errorf("container still there")
		}
		return nil
	})
	// A task deleted from the store is stopped, removed and forgotten.
	c.update(func(tx store.Tx) error { return tx.DeleteTask("t2") })
	poll(t, "t2 forgotten", func() error {
		if _, ok := a.TaskStates()["t2"]; ok || exec.Exists("t2") {
			return fmt.Errorf("agent still has t2 (container exists: %v)", exec.Exists("t2"))
		}
		return nil
	})
	// A task held at READY (a restart delay) is prepared, not started,
	// until its desired state is raised.
	c.update(func(tx store.Tx) error { return tx.CreateTask(newTask("held", "n1", stReady)) })
	c.waitStates(stReady, "held")
	if !exec.Exists("held") || exec.Starts("held") != 0 {
		t.Fatal("a task desired READY was not prepared, or was started")
	}
	c.setDesired(stRunning, "held")
	c.waitStates(stRunning, "held")
	for _, id := range []string{"t3", "t4"} {
		if !exec.IsRunning(id) {
			t.Errorf("%s stopped, but nobody asked", id)
		}
	}
	checkStartedOnce(t, append(mine[3:], "held"), exec)
}

func TestAgentReportsInBatches(t *testing.T) {
	c := newCluster(t, 1)
	c.createNodes("n1")
	tasks := ids("t", 50)
	exec := simulated.New(simulated.Config{})
	startAgent(t, Config{NodeID: "n1", Managers: c.addrs(), Executor: exec, ReportInterval: 100 * time.Millisecond})
	c.assign("n1", tasks...)
	c.waitStates(stRunning, tasks...)
	// Each task went through five states (ACCEPTED to RUNNING): 250
	// changes, which must have travelled in far fewer calls.
	if calls := c.managers[0].status.Load(); calls >= 50 {
		t.Fatalf("%d UpdateTaskStatus calls for 250 status changes of 50 tasks", calls)
	} else {
		t.Logf("50 tasks to RUNNING: %d UpdateTaskStatus calls", calls)
	}
}

// TestAgentRestartResumesWithoutDuplicates restarts the agent process (a
// new Agent and a new executor that knows no container): with a state
// directory it resumes from worker.db; without one, from the managers'
// record of each task's status.
func TestAgentRestartResumesWithoutDuplicates(t *testing.T) {
	for _, persisted := range []bool{true, false} {
		t.Run(fmt.Sprintf("state dir %v", persisted), func(t *testing.T) {
			c := newCluster(t, 1)
			c.createNodes("n1")
			tasks := ids("t", 4)
			c.assign("n1", tasks...)
			dir := ""
			if persisted {
				dir = t.TempDir()
			}
			exec1 := simulated.New(simulated.Config{})
			a1 := startAgent(t, Config{NodeID: "n1", Managers: c.addrs(), Executor: exec1, StateDir: dir})
			c.waitStates(stRunning, tasks...)
			if err := a1.stop(); err != nil {
				t.Fatal(err)
			}
			// While the agent is down: one task is to stop, one is deleted.
			c.setDesired(stShutdown, "t1")
			c.update(func(tx store.Tx) error { return tx.DeleteTask("t2") })

			exec2 := simulated.New(simulated.Config{})
			a2 := startAgent(t, Config{NodeID: "n1", Managers: c.addrs(), Executor: exec2, StateDir: dir})
			c.waitStates(stShutdown, "t1")
			poll(t, "t2 forgotten after the COMPLETE message", func() error {
				if _, ok := a2.TaskStates()["t2"]; ok {
					return fmt.Errorf("still driven")
				}
				return nil
			})
			c.assign("n1", "t4")
			c.waitStates(stRunning, "t4")
			for _, id := range []string{"t0", "t3"} {
				if !exec2.IsRunning(id) || a2.TaskStates()[id] != stRunning {
					t.Errorf("%s not resumed as running (executor: %v, agent: %v)", id, exec2.IsRunning(id), a2.TaskStates()[id])
				}
			}
			checkStartedOnce(t, []string{"t0", "t1", "t2", "t3", "t4"}, exec1, exec2)
		})
	}
}

func TestAgentStateDirIsExclusive(t *testing.T) {
	c := newCluster(t, 1)
	c.createNodes("n1")
	dir := t.TempDir()
	startAgent(t, Config{NodeID: "n1", Managers: c.addrs(), Executor: simulated.New(simulated.Config{}), StateDir: dir})
	// The state is opened before the first heartbeat.
	poll(t, "first agent heartbeats", func() error {
		var n *api.Node
		c.s.View(func(tx store.ReadTx) { n = tx.GetNode("n1") })
		if n.GetStatus().GetState() != api.NodeState_NODE_STATE_READY {
			return fmt.Errorf("node %v", n.GetStatus().GetState())
		}
		return nil
	})
	second := New(Config{NodeID: "n1", Managers: c.addrs(), Dial: dial, Executor: simulated.New(simulated.Config{}), StateDir: dir})
	done := make(chan error, 1)
	go func() { done <- second.Run(t.Context()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), ErrStateLocked.Error()) {
			t.Fatalf("second agent on the same state: %v, want ErrStateLocked", err)
		}
	case <-time.After(failAfter):
		t.Fatal("a second agent ran on the same state directory")
	}
}

func TestAgentFollowsTheLeader(t *testing.T) {
	c := newCluster(t, 3)
	c.createNodes("n1")
	tasks := ids("t", 3)
	c.assign("n1", tasks...)
	exec := simulated.New(simulated.Config{})
	// A follower first: it refuses the stream and names the leader.
	startAgent(t, Config{NodeID: "n1", Managers: []string{c.managers[1].addr, c.managers[0].addr, c.managers[2].addr}, Executor: exec})
	c.waitStates(stRunning, tasks...)

	// The leader dies; another manager takes over.
	c.kill(c.managers[0])
	c.lead(c.managers[1])
	c.setDesired(stShutdown, "t0")
	c.assign("n1", "t3")
	c.waitStates(stShutdown, "t0")
	c.waitStates(stRunning, "t3")

	// The leader steps down but lives on: its stream ends, naming the
	// next leader.
	c.lead(c.managers[2])
	c.setDesired(stShutdown, "t1")
	c.assign("n1", "t4")
	c.waitStates(stShutdown, "t1")
	c.waitStates(stRunning, "t4")
	if !exec.IsRunning("t2") {
		t.Error("t2 stopped across the failovers")
	}
	checkStartedOnce(t, append(tasks, "t3", "t4"), exec)
}

func TestAgentReportsFailuresAndExits(t *testing.T) {
	c := newCluster(t, 1)
	c.createNodes("n1", "n2")
	cfg := simulated.Config{FailureRate: 0.5, Seed: 42}
	tasks := ids("t", 20)
	// Which tasks fail is a function of the seed: learn it from a twin.
	twin := simulated.New(cfg)
	var wantFailed []string
	for _, id := range tasks {
		ctlr, _ := twin.Controller(&api.Task{Id: id})
		_ = ctlr.Prepare(t.Context())
		if ctlr.Start(t.Context()) != nil {
			wantFailed = append(wantFailed, id)
		}
	}
	if len(wantFailed) == 0 || len(wantFailed) == len(tasks) {
		t.Fatalf("seed gives %d failures of %d: pick another", len(wantFailed), len(tasks))
	}
	startAgent(t, Config{NodeID: "n1", Managers: c.addrs(), Executor: simulated.New(cfg)})
	c.assign("n1", tasks...)
	var failed []string
	poll(t, "every task RUNNING or FAILED", func() error {
		failed = failed[:0]
		for _, id := range tasks {
			switch st := c.task(id).Status; st.State {
			case stFailed:
				failed = append(failed, id)
				if !strings.Contains(st.Err, simulated.ErrStartFailed.Error()) {
					return fmt.Errorf("%s failed with %q", id, st.Err)
				}
			case stRunning:
			default:
				return fmt.Errorf("%s is %v", id, st.State)
			}
		}
		return nil
	})
	if !slices.Equal(failed, wantFailed) {
		t.Fatalf("FAILED tasks %v, want %v", failed, wantFailed)
	}

	// Jobs: exit 0 completes, another code fails.
	for code, want := range map[int]api.TaskState{0: stComplete, 3: stFailed} {
		node := fmt.Sprintf("job%d", code)
		c.createNodes(node)
		startAgent(t, Config{NodeID: node, Managers: c.addrs(),
			Executor: simulated.New(simulated.Config{RunDuration: 10 * time.Millisecond, ExitCode: code})})
		c.assign(node, node)
		c.waitStates(want, node)
		if got := c.task(node).Status.Container.GetExitCode(); got != int32(code) {
			t.Errorf("job exit code %d recorded as %d", code, got)
		}
	}
}
