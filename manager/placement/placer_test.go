package placement

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

func TestAssignsPendingTasksAcrossNodes(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("n1"), newNode("n2"), newNode("n3"))
	startPlacer(t, s, testConfig(), nil)
	createTasks(t, s, serviceTasks("web", 6, &api.TaskSpec{})...)

	waitFor(t, "all 6 tasks assigned", func() bool { return allAssigned(s, "web", 6) })
	perNode := map[string]int{}
	for _, task := range tasksOf(s, "web") {
		perNode[task.NodeId]++
		st := task.GetStatus()
		if st.GetMessage() != "assigned" || st.GetTimestamp() != testNow.UnixNano() || st.GetErr() != "" {
			t.Errorf("task %s status = %v", task.Id, st)
		}
		if task.DesiredState != api.TaskState_TASK_STATE_RUNNING || task.Slot == 0 || task.SpecVersion != 1 {
			t.Errorf("task %s lost fields: %v", task.Id, task)
		}
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if perNode[n] != 2 {
			t.Errorf("node %s got %d tasks, want 2 (%v)", n, perNode[n], perNode)
		}
	}
}

func TestImpossibleConstraintLeavesReason(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("n1", withLabels("zone", "eu")), newNode("n2"), newNode("n3", withState(api.NodeState_NODE_STATE_DOWN)))
	startPlacer(t, s, testConfig(), nil)
	spec := &api.TaskSpec{Placement: &api.Placement{Constraints: []string{"node.labels.zone==mars"}}}
	createTasks(t, s, serviceTasks("db", 2, spec)...)

	want := "no suitable node (constraint node.labels.zone==mars not met on 2 nodes; 1 node not available)"
	for _, id := range []string{"db-01", "db-02"} {
		waitFor(t, id+" to have the reason", func() bool { return hasReason(s, id, want) })
		if task := getTask(s, id); task.NodeId != "" || task.Status.Message != "pending" {
			t.Errorf("task %s = %v", id, task)
		}
	}
}

func TestNodeJoiningLaterGetsTasks(t *testing.T) {
	s := newStore(t)
	startPlacer(t, s, testConfig(), nil)
	createTasks(t, s, serviceTasks("web", 3, &api.TaskSpec{})...)
	waitFor(t, "the reason", func() bool { return hasReason(s, "web-01", "no suitable node (no nodes in the cluster)") })

	createNodes(t, s, newNode("late"))
	waitFor(t, "the tasks on the new node", func() bool { return allAssigned(s, "web", 3) })
	for _, task := range tasksOf(s, "web") {
		if task.NodeId != "late" || task.Status.Err != "" {
			t.Errorf("task %s on %q, err %q", task.Id, task.NodeId, task.Status.Err)
		}
	}
}

func TestNodeBecomingReadyGetsTasks(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("n1", withState(api.NodeState_NODE_STATE_DOWN)))
	startPlacer(t, s, testConfig(), nil)
	createTasks(t, s, serviceTasks("web", 2, &api.TaskSpec{})...)
	waitFor(t, "the reason", func() bool { return hasReason(s, "web-02", "no suitable node (1 node not available)") })

	updateNode(t, s, "n1", func(n *api.Node) { n.Status.State = api.NodeState_NODE_STATE_READY })
	waitFor(t, "the tasks on n1", func() bool { return allAssigned(s, "web", 2) })
}

func TestDrainedDownAndPausedNodesGetNothing(t *testing.T) {
	s := newStore(t)
	createNodes(t, s,
		newNode("drained", withAvailability(api.NodeAvailability_NODE_AVAILABILITY_DRAIN)),
		newNode("paused", withAvailability(api.NodeAvailability_NODE_AVAILABILITY_PAUSE)),
		newNode("down", withState(api.NodeState_NODE_STATE_DOWN)),
		newNode("active"))
	startPlacer(t, s, testConfig(), nil)
	createTasks(t, s, serviceTasks("web", 5, &api.TaskSpec{})...)
	waitFor(t, "all assigned", func() bool { return allAssigned(s, "web", 5) })
	for _, task := range tasksOf(s, "web") {
		if task.NodeId != "active" {
			t.Errorf("task %s placed on %s", task.Id, task.NodeId)
		}
	}

	// Once the active node is drained too, new tasks wait.
	updateNode(t, s, "active", func(n *api.Node) { n.Spec.Availability = api.NodeAvailability_NODE_AVAILABILITY_DRAIN })
	createTasks(t, s, newTask("api-01", "api", 1, &api.TaskSpec{}))
	waitFor(t, "the reason", func() bool { return hasReason(s, "api-01", "no suitable node (4 nodes not available)") })
}

func TestGlobalTaskOnNodeFailingConstraint(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("eu", withLabels("zone", "eu")), newNode("us", withLabels("zone", "us")))
	startPlacer(t, s, testConfig(), nil)
	spec := &api.TaskSpec{Placement: &api.Placement{Constraints: []string{"node.labels.zone==eu"}}}
	onEU, onUS := newTask("agent-eu", "agent", 0, spec), newTask("agent-us", "agent", 0, spec)
	onEU.NodeId, onUS.NodeId = "eu", "us"
	createTasks(t, s, onEU, onUS)

	waitFor(t, "agent-us to have the reason", func() bool {
		return hasReason(s, "agent-us", "no suitable node (constraint node.labels.zone==eu not met on 1 node)")
	})
	if got := getTask(s, "agent-us"); got.NodeId != "us" {
		t.Errorf("the preset node changed to %q", got.NodeId)
	}
	waitFor(t, "agent-eu assigned", func() bool {
		got := getTask(s, "agent-eu")
		return got.Status.State == api.TaskState_TASK_STATE_ASSIGNED && got.NodeId == "eu"
	})

	// Relabelling the node lets its task be placed there.
	updateNode(t, s, "us", func(n *api.Node) { n.Spec.Annotations.Labels["zone"] = "eu" })
	waitFor(t, "agent-us assigned", func() bool {
		got := getTask(s, "agent-us")
		return got.Status.State == api.TaskState_TASK_STATE_ASSIGNED && got.NodeId == "us"
	})
}

func TestConcurrentChangeIsNotClobbered(t *testing.T) {
	t.Run("stopped", func(t *testing.T) {
		s := newStore(t)
		createNodes(t, s, newNode("n1"))
		createTasks(t, s, newTask("web-01", "web", 1, &api.TaskSpec{}))
		var once sync.Once
		r := startPlacer(t, s, testConfig(), func(p *Placer) {
			p.beforeCommit = func() {
				// The orchestrator stops the task between plan and commit.
				once.Do(func() {
					updateTask(t, s, "web-01", func(task *api.Task) { task.DesiredState = api.TaskState_TASK_STATE_SHUTDOWN })
				})
			}
		})
		waitFor(t, "two passes", func() bool { return r.passCount() >= 2 })
		got := getTask(s, "web-01")
		if got.DesiredState != api.TaskState_TASK_STATE_SHUTDOWN || got.NodeId != "" ||
			got.Status.State != api.TaskState_TASK_STATE_PENDING {
			t.Errorf("task = %v, want desired SHUTDOWN, still PENDING and unplaced", got)
		}
		if r.pass(0).skipped != 1 {
			t.Errorf("first pass skipped %d, want 1", r.pass(0).skipped)
		}
	})
	t.Run("raised to running", func(t *testing.T) {
		s := newStore(t)
		createNodes(t, s, newNode("n1"))
		held := newTask("web-01", "web", 1, &api.TaskSpec{})
		held.DesiredState = api.TaskState_TASK_STATE_READY
		createTasks(t, s, held)
		var once sync.Once
		startPlacer(t, s, testConfig(), func(p *Placer) {
			p.beforeCommit = func() {
				once.Do(func() {
					updateTask(t, s, "web-01", func(task *api.Task) { task.DesiredState = api.TaskState_TASK_STATE_RUNNING })
				})
			}
		})
		// The commit of the first plan is refused; the next pass places
		// the task, keeping the orchestrator's desired state.
		waitFor(t, "web-01 assigned", func() bool { return allAssigned(s, "web", 1) })
		if got := getTask(s, "web-01"); got.DesiredState != api.TaskState_TASK_STATE_RUNNING || got.NodeId != "n1" {
			t.Errorf("task = %v", got)
		}
	})
}

func TestCommitRechecksTheNode(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("n1"))
	createTasks(t, s, serviceTasks("web", 2, &api.TaskSpec{})...)
	var once sync.Once
	r := startPlacer(t, s, testConfig(), func(p *Placer) {
		p.beforeCommit = func() {
			// The node is drained between plan and commit.
			once.Do(func() {
				updateNode(t, s, "n1", func(n *api.Node) { n.Spec.Availability = api.NodeAvailability_NODE_AVAILABILITY_DRAIN })
			})
		}
	})
	waitFor(t, "the reason", func() bool { return hasReason(s, "web-01", "no suitable node (1 node not available)") })
	for _, task := range tasksOf(s, "web") {
		if task.NodeId != "" {
			t.Errorf("task %s placed on a drained node", task.Id)
		}
	}
	if r.pass(0).skipped != 2 || r.pass(0).commits != 0 {
		t.Errorf("first pass = %+v, want 2 skipped, no commit", r.pass(0))
	}
}

func TestCommitRechecksCapacity(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("n1"))
	spec := &api.TaskSpec{Placement: &api.Placement{MaxReplicas: 1}}
	createTasks(t, s, newTask("web-01", "web", 1, spec))
	var once sync.Once
	startPlacer(t, s, testConfig(), func(p *Placer) {
		p.beforeCommit = func() {
			// Another task of the service lands on the node meanwhile.
			once.Do(func() {
				other := newTask("web-02", "web", 2, spec)
				other.NodeId = "n1"
				other.Status.State = api.TaskState_TASK_STATE_RUNNING
				createTasks(t, s, other)
			})
		}
	})
	waitFor(t, "the reason", func() bool {
		return hasReason(s, "web-01", "no suitable node (max replicas per node (1) reached on 1 node)")
	})
	if got := getTask(s, "web-01"); got.NodeId != "" {
		t.Errorf("web-01 placed on %s beyond max replicas", got.NodeId)
	}
}

func TestCapacityFreedPlacesWaitingTask(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("n1"))
	cfg := testConfig()
	cfg.RetryInterval = failAfter * 10 // only the event can wake it
	startPlacer(t, s, cfg, nil)
	spec := &api.TaskSpec{Placement: &api.Placement{MaxReplicas: 1}}
	createTasks(t, s, serviceTasks("web", 2, spec)...)
	reason := "no suitable node (max replicas per node (1) reached on 1 node)"
	waitFor(t, "one assigned, one waiting", func() bool {
		return hasReason(s, "web-01", reason) || hasReason(s, "web-02", reason)
	})
	var first, second string
	for _, task := range tasksOf(s, "web") {
		if task.NodeId == "n1" {
			first = task.Id
		} else {
			second = task.Id
		}
	}
	updateTask(t, s, first, func(task *api.Task) {
		task.Status = &api.TaskStatus{State: api.TaskState_TASK_STATE_COMPLETE}
	})
	waitFor(t, second+" assigned", func() bool {
		got := getTask(s, second)
		return got.Status.State == api.TaskState_TASK_STATE_ASSIGNED && got.NodeId == "n1"
	})
}

func TestReasonIsWrittenOnce(t *testing.T) {
	s := newStore(t)
	r := startPlacer(t, s, testConfig(), nil)
	createTasks(t, s, newTask("web-01", "web", 1, &api.TaskSpec{}))
	want := "no suitable node (no nodes in the cluster)"
	waitFor(t, "the reason", func() bool { return hasReason(s, "web-01", want) })
	version := getTask(s, "web-01").Meta.Version
	seen := r.passCount()
	waitFor(t, "three retry passes", func() bool { return r.passCount() >= seen+3 })
	if got := getTask(s, "web-01"); got.Meta.Version != version {
		t.Errorf("the task was written again (version %d → %d) though the reason did not change", version, got.Meta.Version)
	}
}

func TestReadyDesiredTaskIsPlacedAndOthersAreNot(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("n1"))
	ready := newTask("web-01", "web", 1, &api.TaskSpec{})
	ready.DesiredState = api.TaskState_TASK_STATE_READY
	stopped := newTask("web-02", "web", 2, &api.TaskSpec{})
	stopped.DesiredState = api.TaskState_TASK_STATE_SHUTDOWN
	startPlacer(t, s, testConfig(), nil)
	createTasks(t, s, ready, stopped)
	created := getTask(s, "web-02").Meta.Version
	// The pass that assigns web-01 saw web-02 too: they were created
	// together.
	waitFor(t, "web-01 assigned", func() bool {
		return getTask(s, "web-01").Status.State == api.TaskState_TASK_STATE_ASSIGNED
	})
	if got := getTask(s, "web-02"); got.Meta.Version != created || got.NodeId != "" {
		t.Errorf("a task desired SHUTDOWN was touched: %v", got)
	}
}

func TestCommitsAreBounded(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("n1"), newNode("n2"))
	cfg := testConfig()
	cfg.MaxCommitTasks = 7
	indexes := map[uint64]bool{}
	var mu sync.Mutex
	_, cancelWatch := s.Watch(func(ev store.Event) bool {
		if task, ok := ev.Object.(*api.Task); ok && task.GetStatus().GetState() == api.TaskState_TASK_STATE_ASSIGNED {
			mu.Lock()
			indexes[ev.Index] = true
			mu.Unlock()
		}
		return false
	})
	defer cancelWatch()
	createTasks(t, s, serviceTasks("web", 50, &api.TaskSpec{})...)
	r := startPlacer(t, s, cfg, nil)
	waitFor(t, "all assigned", func() bool { return allAssigned(s, "web", 50) })
	mu.Lock()
	defer mu.Unlock()
	if len(indexes) != 8 {
		t.Errorf("assignments written in %d commands, want 8 (50 by 7)", len(indexes))
	}
	if r.pass(0).commits != 8 || r.pass(0).placed != 50 {
		t.Errorf("first pass = %+v", r.pass(0))
	}
}

func TestListsAgainAfterWatchOverflow(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("n1"), newNode("n2"))
	startPlacer(t, s, testConfig(), nil)
	// One command of more tasks than a watch buffers closes the watch.
	n := store.WatchBufferSize + 100
	tasks := make([]*api.Task, n)
	for i := range tasks {
		tasks[i] = newTask(fmt.Sprintf("big-%05d", i), "big", uint64(i+1), &api.TaskSpec{})
	}
	createTasks(t, s, tasks...)
	waitFor(t, "all assigned", func() bool { return allAssigned(s, "big", n) })
}

func TestRunsAgainAfterLeadershipChange(t *testing.T) {
	s := newStore(t)
	createNodes(t, s, newNode("n1"))
	spec := &api.TaskSpec{Placement: &api.Placement{MaxReplicas: 1}}
	r := startPlacer(t, s, testConfig(), nil)
	createTasks(t, s, newTask("web-01", "web", 1, spec))
	waitFor(t, "web-01 assigned", func() bool { return allAssigned(s, "web", 1) })
	r.stop()

	// Tasks created while no placer runs are seen by the next one, which
	// counts web-01 on n1 from its listing.
	createTasks(t, s, newTask("web-02", "web", 2, spec), newTask("api-01", "api", 1, &api.TaskSpec{}))
	startPlacer(t, s, testConfig(), nil)
	waitFor(t, "api-01 assigned", func() bool { return allAssigned(s, "api", 1) })
	waitFor(t, "web-02 to have the reason", func() bool {
		return hasReason(s, "web-02", "no suitable node (max replicas per node (1) reached on 1 node)")
	})
}

func TestWithStatusCopiesEveryField(t *testing.T) {
	// Every field set, so a field withStatus forgets shows up as a
	// difference.
	full := &api.Task{
		Id:           "t",
		Meta:         &api.Meta{Version: 3, CreatedAt: 1, UpdatedAt: 2},
		Spec:         &api.TaskSpec{Container: &api.ContainerSpec{Image: "img"}},
		ServiceId:    "svc",
		Slot:         4,
		NodeId:       "n",
		Annotations:  &api.Annotations{Name: "web.4"},
		Status:       &api.TaskStatus{State: api.TaskState_TASK_STATE_PENDING, Err: "old"},
		DesiredState: api.TaskState_TASK_STATE_RUNNING,
		Networks:     []*api.NetworkAttachment{{NetworkId: "net"}},
		Endpoint:     &api.Endpoint{VirtualIps: []*api.VirtualIP{{Addr: "10.0.0.2"}}},
		SpecVersion:  5,
		ImageDigest:  "sha256:abc",
		Drain:        7,
	}
	fields := full.ProtoReflect().Descriptor().Fields()
	set := 0
	full.ProtoReflect().Range(func(protoreflect.FieldDescriptor, protoreflect.Value) bool { set++; return true })
	if set != fields.Len() {
		t.Fatalf("the test task sets %d of the %d fields of api.Task: set the new ones here and in withStatus", set, fields.Len())
	}
	if got := withStatus(full, full.NodeId, full.Status); !proto.Equal(got, full) {
		t.Errorf("withStatus lost fields:\n got %v\nwant %v", got, full)
	}
	got := withReason(full, "new")
	if got.Status.Err != "new" || full.Status.Err != "old" || got.Status.State != api.TaskState_TASK_STATE_PENDING {
		t.Errorf("withReason: %v (original %v)", got.Status, full.Status)
	}
}

// flakyProposer fails the first proposals with an error that leaves the
// outcome unknown: before applying the command (applied false) or after
// (applied true).
type flakyProposer struct {
	inner   *store.LocalProposer
	mu      sync.Mutex
	fail    int
	applied bool
}

func (f *flakyProposer) Propose(ctx context.Context, cmd *api.Command) (uint64, error) {
	f.mu.Lock()
	failing := f.fail > 0
	f.fail--
	f.mu.Unlock()
	if !failing {
		return f.inner.Propose(ctx, cmd)
	}
	if f.applied {
		index, _ := f.inner.Propose(ctx, cmd)
		return index, errors.New("leadership lost after the entry was appended")
	}
	return 0, errors.New("leadership lost")
}

func TestCommitWithUnknownOutcome(t *testing.T) {
	for _, applied := range []bool{false, true} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			s := store.New(nil)
			fp := &flakyProposer{inner: store.NewLocalProposer(s)}
			s.SetProposer(fp)
			createNodes(t, s, newNode("n1"), newNode("n2"))
			fp.mu.Lock()
			fp.applied = applied
			fp.mu.Unlock()
			spec := &api.TaskSpec{Placement: &api.Placement{MaxReplicas: 2}}
			createTasks(t, s, serviceTasks("web", 4, spec)...)
			fp.mu.Lock()
			fp.fail = 1
			fp.mu.Unlock()
			r := startPlacer(t, s, testConfig(), nil)
			waitFor(t, "all assigned", func() bool { return allAssigned(s, "web", 4) })
			if r.pass(0).failed != 4 {
				t.Errorf("first pass = %+v, want its 4 writes failed", r.pass(0))
			}
			// Two per node (max replicas 2), and each task written once:
			// when the failed commit was in fact applied, it is not
			// repeated.
			perNode := map[string]int{}
			versions := map[uint64]bool{}
			for _, task := range tasksOf(s, "web") {
				perNode[task.NodeId]++
				versions[task.Meta.Version] = true
			}
			if perNode["n1"] != 2 || perNode["n2"] != 2 || len(versions) != 1 {
				t.Errorf("per node %v, written at indexes %v", perNode, versions)
			}
		})
	}
}
