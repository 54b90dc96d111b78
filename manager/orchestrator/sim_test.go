package orchestrator

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/shoalhq/shoal/proto/api"
)

// TestPropertyConverges plays the whole cluster over time with the pure
// reconciler: passes interleaved with placement, agents, task failures,
// nodes going down, coming back and being drained or paused, scaling,
// and time passing. It checks that no desired state is ever lowered,
// that each pass keeps the service within its bounds (replicated: live
// slots at most replicas; jobs: live tasks at most max_concurrent), and
// that once the nodes are healthy again and agents run what they are
// given, the service reaches its goal: replicas running tasks, one
// running task per eligible node, or a job's completions.
func TestPropertyConverges(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		now := t0
		mode := rapid.IntRange(0, 3).Draw(t, "mode")
		var svc *api.Service
		switch mode {
		case 0:
			svc = replicatedService("s", rapid.Uint64Range(0, 5).Draw(t, "replicas"))
		case 1:
			svc = globalService("s")
		case 2:
			total := rapid.Uint64Range(1, 5).Draw(t, "total")
			svc = replicatedJob("s", rapid.Uint64Range(0, total).Draw(t, "max-concurrent"), total)
		case 3:
			svc = globalJob("s")
		}
		svc.Spec.Task.Restart = &api.RestartPolicy{Delay: ns(time.Duration(rapid.IntRange(0, 6).Draw(t, "delay")) * time.Second)}
		if rapid.Bool().Draw(t, "update") {
			withUpdate(svc, rapid.Bool().Draw(t, "start-first"), rapid.Uint64Range(0, 2).Draw(t, "parallelism"))
		}
		var nodes []*api.Node
		for i := 1; i <= rapid.IntRange(1, 4).Draw(t, "nodes"); i++ {
			nodes = append(nodes, node(fmt.Sprintf("n%d", i)))
		}
		var cluster *api.Cluster
		if v := rapid.IntRange(-1, 2).Draw(t, "retention"); v >= 0 {
			cluster = clusterWithRetention(int64(v))
		}
		f := func() facts { return newFacts(nodes) }
		ids := 0
		newID := func() string { ids++; return fmt.Sprintf("t%05d", ids) }
		var tasks []*api.Task
		desired := map[string]api.TaskState{}

		pass := func() {
			p := NewReconciler(Input{ServiceID: "s", Service: svc, Tasks: tasks, Nodes: nodes, Cluster: cluster, Now: now}).Compute()
			tasks = applyPlanIDs(tasks, p, newID)
			for _, tk := range tasks {
				if d, ok := desired[tk.GetId()]; ok && tk.GetDesiredState() < d {
					t.Fatalf("task %s desired state lowered from %v to %v", tk.GetId(), d, tk.GetDesiredState())
				}
				desired[tk.GetId()] = tk.GetDesiredState()
			}
			checkBounds(t, svc, f(), tasks)
		}
		setState := func(tk *api.Task, st api.TaskState) {
			if st > tk.GetStatus().GetState() {
				tk.Status = &api.TaskStatus{State: st, Timestamp: now.UnixNano()}
			}
		}
		usable := func(n *api.Node) bool {
			return n.GetStatus().GetState() != api.NodeState_NODE_STATE_DOWN && n.GetSpec().GetAvailability() == 0
		}
		place := func(tk *api.Task) {
			if tk.GetStatus().GetState() != statePending || tk.GetDesiredState() > stateRunning {
				return
			}
			if tk.GetNodeId() == "" {
				var ok []*api.Node
				for _, n := range nodes {
					if usable(n) {
						ok = append(ok, n)
					}
				}
				if len(ok) == 0 {
					return
				}
				tk.NodeId = ok[int(ids+len(tasks))%len(ok)].GetId()
			}
			setState(tk, stateAssigned)
		}
		// agent moves one task one step, as its node's agent would.
		agent := func(tk *api.Task, finish bool) {
			n := f().nodes[tk.GetNodeId()]
			if n == nil || n.GetStatus().GetState() == api.NodeState_NODE_STATE_DOWN {
				return
			}
			st := tk.GetStatus().GetState()
			switch {
			case tk.GetDesiredState() >= stateShutdown && st < stateComplete:
				setState(tk, stateShutdown)
			case tk.GetDesiredState() == stateRunning && st >= stateAssigned && st < stateRunning:
				setState(tk, stateRunning)
			case finish && st == stateRunning:
				setState(tk, stateComplete)
			}
		}
		isJob := mode == 2 || mode == 3

		for range rapid.IntRange(0, 40).Draw(t, "steps") {
			switch rapid.IntRange(0, 8).Draw(t, "event") {
			case 0, 1:
				pass()
			case 2:
				for _, tk := range tasks {
					place(tk)
				}
			case 3:
				if len(tasks) > 0 {
					agent(rapid.SampledFrom(tasks).Draw(t, "agent-task"), isJob && rapid.Bool().Draw(t, "finish"))
				}
			case 4:
				if len(tasks) > 0 {
					tk := rapid.SampledFrom(tasks).Draw(t, "failing-task")
					if tk.GetStatus().GetState() >= stateAssigned && tk.GetStatus().GetState() <= stateRunning {
						setState(tk, rapid.SampledFrom([]api.TaskState{stateFailed, stateComplete, stateRejected}).Draw(t, "end"))
					}
				}
			case 5:
				n := rapid.SampledFrom(nodes).Draw(t, "node")
				n.Status.State = rapid.SampledFrom([]api.NodeState{api.NodeState_NODE_STATE_READY, api.NodeState_NODE_STATE_DOWN}).Draw(t, "node-state")
				n.Meta.Version++
			case 6:
				n := rapid.SampledFrom(nodes).Draw(t, "node")
				n.Spec.Availability = rapid.SampledFrom([]api.NodeAvailability{0, 1, 2}).Draw(t, "availability")
				n.Meta.Version++
			case 7:
				now = now.Add(time.Duration(rapid.IntRange(0, 10).Draw(t, "seconds")) * time.Second)
			case 8:
				if mode == 0 {
					svc = proto.Clone(svc).(*api.Service)
					svc.Spec.GetMode().GetReplicated().Replicas = rapid.Uint64Range(0, 5).Draw(t, "scale")
					svc.SpecVersion++
					svc.Meta.Version++
				}
			}
		}

		// Heal: every node up, the first one active (the others keep
		// their availability: drained ones must be emptied); agents run
		// what they are given (and jobs complete).
		for _, n := range nodes {
			n.Status.State = api.NodeState_NODE_STATE_READY
		}
		nodes[0].Spec.Availability = api.NodeAvailability_NODE_AVAILABILITY_ACTIVE
		for range 30 {
			pass()
			for _, tk := range tasks {
				place(tk)
			}
			for _, tk := range tasks {
				agent(tk, false)
			}
			if isJob {
				for _, tk := range tasks {
					agent(tk, true)
				}
			}
			now = now.Add(10 * time.Second)
		}
		pass()

		fa := f()
		running := 0
		perNode := map[string]int{}
		completions := map[string]bool{}
		for _, tk := range tasks {
			if fa.live(tk) && tk.GetStatus().GetState() == stateRunning {
				running++
				perNode[tk.GetNodeId()]++
			}
			if tk.GetStatus().GetState() == stateComplete {
				key := tk.GetNodeId()
				if mode == 2 {
					key = fmt.Sprint(tk.GetSlot())
				}
				completions[key] = true
			}
		}
		avail := func(id string) api.NodeAvailability { return fa.nodes[id].GetSpec().GetAvailability() }
		for id, c := range perNode {
			if c > 0 && avail(id) == api.NodeAvailability_NODE_AVAILABILITY_DRAIN {
				t.Fatalf("healed: drained node %s still runs %d tasks", id, c)
			}
		}
		switch mode {
		case 0:
			if want := int(svc.GetSpec().GetMode().GetReplicated().GetReplicas()); running != want {
				t.Fatalf("healed: %d running tasks, want %d", running, want)
			}
		case 1:
			for _, n := range nodes {
				if a := avail(n.GetId()); (a == api.NodeAvailability_NODE_AVAILABILITY_ACTIVE && perNode[n.GetId()] != 1) || perNode[n.GetId()] > 1 {
					t.Fatalf("healed: node %s (%v) runs %d tasks", n.GetId(), a, perNode[n.GetId()])
				}
			}
		case 2:
			if want := int(svc.GetSpec().GetMode().GetReplicatedJob().GetTotalCompletions()); len(completions) < want || running != 0 {
				t.Fatalf("healed: %d slots completed of %d, %d still running", len(completions), want, running)
			}
		case 3:
			for _, n := range nodes {
				if avail(n.GetId()) == api.NodeAvailability_NODE_AVAILABILITY_ACTIVE && !completions[n.GetId()] {
					t.Fatalf("healed: node %s has not completed the job", n.GetId())
				}
			}
		}
	})
}

// checkBounds fails unless the tasks are within the service's bounds
// after a pass.
func checkBounds(t *rapid.T, svc *api.Service, f facts, tasks []*api.Task) {
	stay, leaving := slotStats(f, tasks)
	switch m := svc.GetSpec().GetMode().GetMode().(type) {
	case *api.ServiceMode_Replicated:
		slots := 0
		for s, n := range stay {
			if n > 1 {
				t.Fatalf("slot %d has %d live tasks", s, n)
			}
			slots++
		}
		for s := range leaving {
			if stay[s] == 0 {
				slots++
			}
		}
		if slots > int(m.Replicated.GetReplicas()) {
			t.Fatalf("%d slots live, replicas %d", slots, m.Replicated.GetReplicas())
		}
	case *api.ServiceMode_ReplicatedJob:
		live := 0
		for _, tk := range tasks {
			if f.live(tk) {
				live++
			}
		}
		if maxc := int(max(1, m.ReplicatedJob.GetMaxConcurrent())); live > maxc {
			t.Fatalf("job: %d live tasks, max_concurrent %d", live, maxc)
		}
	case *api.ServiceMode_Global, *api.ServiceMode_GlobalJob:
		perNode := map[string]int{}
		for _, tk := range tasks {
			if f.live(tk) {
				perNode[tk.GetNodeId()]++
			}
		}
		for id, n := range perNode {
			if n > 1 {
				t.Fatalf("node %s has %d live tasks", id, n)
			}
		}
	}
}
