package placement

import (
	"reflect"
	"testing"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// taskIn returns a task of web in a state, on a node ("" for none).
func taskIn(id, node string, st, desired api.TaskState) *api.Task {
	t := newTask(id, "web", 1, &api.TaskSpec{})
	t.NodeId, t.Status.State, t.DesiredState = node, st, desired
	return t
}

const (
	stPending  = api.TaskState_TASK_STATE_PENDING
	stAssigned = api.TaskState_TASK_STATE_ASSIGNED
	stRunning  = api.TaskState_TASK_STATE_RUNNING
	stComplete = api.TaskState_TASK_STATE_COMPLETE
	stShutdown = api.TaskState_TASK_STATE_SHUTDOWN
)

func TestRelevant(t *testing.T) {
	update := func(old, cur *api.Task) store.Event {
		return store.Event{Kind: store.EventUpdate, Object: cur, Old: old}
	}
	for _, tc := range []struct {
		name string
		ev   store.Event
		want bool
	}{
		{"node created", store.Event{Kind: store.EventCreate, Object: newNode("n")}, true},
		{"node updated", store.Event{Kind: store.EventUpdate, Object: newNode("n"), Old: newNode("n")}, true},
		{"waiting task created", store.Event{Kind: store.EventCreate, Object: taskIn("t", "", stPending, stRunning)}, true},
		{"live task created", store.Event{Kind: store.EventCreate, Object: taskIn("t", "n", stRunning, stRunning)}, true},
		{"dead task created", store.Event{Kind: store.EventCreate, Object: taskIn("t", "n", stComplete, stRunning)}, false},
		{"assignment", update(taskIn("t", "", stPending, stRunning), taskIn("t", "n", stAssigned, stRunning)), false},
		{"preset assignment", update(taskIn("t", "n", stPending, stRunning), taskIn("t", "n", stAssigned, stRunning)), false},
		{"status report", update(taskIn("t", "n", stAssigned, stRunning), taskIn("t", "n", stRunning, stRunning)), false},
		{"reason written", update(taskIn("t", "", stPending, stRunning), taskIn("t", "", stPending, stRunning)), false},
		{"task ended", update(taskIn("t", "n", stRunning, stRunning), taskIn("t", "n", stComplete, stRunning)), true},
		{"task stopped", update(taskIn("t", "n", stRunning, stRunning), taskIn("t", "n", stRunning, stShutdown)), true},
		{"stopped task rewritten", update(taskIn("t", "", stPending, stShutdown), taskIn("t", "", stPending, stShutdown)), false},
		{"waiting task stopped", update(taskIn("t", "", stPending, stRunning), taskIn("t", "", stPending, stShutdown)), true},
		{"live task removed", store.Event{Kind: store.EventRemove, Object: taskIn("t", "n", stRunning, stRunning)}, true},
		{"dead task removed", store.Event{Kind: store.EventRemove, Object: taskIn("t", "n", stComplete, stRunning)}, false},
		{"service", store.Event{Kind: store.EventCreate, Object: &api.Service{Id: "s"}}, false},
	} {
		if got := relevant(tc.ev); got != tc.want {
			t.Errorf("%s: relevant = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestModelFollowsEvents(t *testing.T) {
	live := taskIn("live", "n1", stRunning, stRunning)
	live.Spec.Resources = &api.ResourceRequirements{Reservations: &api.Resources{NanoCpus: 5}}
	glob := taskIn("glob", "n2", stPending, stRunning)
	m := newModel([]*api.Task{live, glob, taskIn("dead", "n1", stComplete, stRunning), taskIn("wait", "", stPending, stRunning)})
	if n := m.load["n1"]; n == nil || n.Tasks != 1 || n.ReservedCPU != 5 || n.ServiceTasks["web"] != 1 {
		t.Fatalf("load on n1 = %+v", m.load["n1"])
	}
	if len(m.load) != 1 || !reflect.DeepEqual(m.presets, map[string]struct{}{"glob": {}}) {
		t.Fatalf("model = %+v", m)
	}

	// A new waiting task calls for a pass; a node change too.
	if !m.apply(store.Event{Kind: store.EventCreate, Object: taskIn("new", "", stPending, stRunning)}) {
		t.Error("a new waiting task does not call for a pass")
	}
	if !m.apply(store.Event{Kind: store.EventUpdate, Object: newNode("n1"), Old: newNode("n1")}) {
		t.Error("a node change does not call for a pass")
	}
	// A live task ending frees its load; it calls for a pass only while
	// some tasks did not fit.
	ended := taskIn("live", "n1", stComplete, stRunning)
	ended.Spec = live.Spec
	if m.apply(store.Event{Kind: store.EventUpdate, Object: ended, Old: live}) {
		t.Error("capacity freed with nothing unplaced calls for a pass")
	}
	if _, ok := m.load["n1"]; ok {
		t.Errorf("n1 still has load %+v after its only task ended", m.load["n1"])
	}
	m.addLive(live)
	m.unplaced = 3
	if !m.apply(store.Event{Kind: store.EventRemove, Object: live}) {
		t.Error("capacity freed while tasks wait does not call for a pass")
	}
	// A preset task stopped leaves the presets.
	stopped := taskIn("glob", "n2", stPending, stShutdown)
	m.apply(store.Event{Kind: store.EventUpdate, Object: stopped, Old: glob})
	if len(m.presets) != 0 {
		t.Errorf("presets = %v after the global task was stopped", m.presets)
	}

	snap := m.snapshot([]*api.Node{newNode("n1"), newNode("n2")})
	if snap.Len() != 2 || snap.Node(0).Tasks != 0 || snap.Node(0).Node.Id != "n1" {
		t.Errorf("snapshot node 0 = %+v", snap.Node(0))
	}
}

func TestGroupTasks(t *testing.T) {
	mk := func(id, service string, version uint64) *api.Task {
		task := newTask(id, service, 1, &api.TaskSpec{})
		task.SpecVersion = version
		return task
	}
	groups := groupTasks([]*api.Task{
		mk("a", "web", 2), mk("b", "api", 1), mk("c", "web", 1), mk("d", "web", 2), mk("e", "api", 1),
	})
	var got []string
	for _, g := range groups {
		s := g.ServiceID + ":"
		for _, task := range g.Tasks {
			s += task.Id
		}
		got = append(got, s+":"+string(rune('0'+g.SpecVersion)))
	}
	want := []string{"api:be:1", "web:c:1", "web:ad:2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("groups = %v, want %v", got, want)
	}
}

func TestChangedNodes(t *testing.T) {
	a, b, c, d := newNode("a"), newNode("b"), newNode("c"), newNode("d")
	b2 := cloneNode(b)
	if got := changedNodes([]*api.Node{a, b, c}, []*api.Node{a, b, c}); got != nil {
		t.Errorf("unchanged: %v", got)
	}
	got := changedNodes([]*api.Node{a, b, c}, []*api.Node{b2, c, d})
	want := map[string]bool{"a": true, "b": true, "d": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changedNodes = %v, want %v", got, want)
	}
	if got := changedNodes(nil, []*api.Node{a}); !got["a"] || len(got) != 1 {
		t.Errorf("added: %v", got)
	}
	if got := changedNodes([]*api.Node{a}, nil); !got["a"] || len(got) != 1 {
		t.Errorf("removed: %v", got)
	}
}

func TestModelCountsOwnAssignments(t *testing.T) {
	// The watch drops assignment events; the placer's commit counts them.
	s := newStore(t)
	n1 := newNode("n1")
	n1.Description.Resources = &api.Resources{MemoryBytes: 100}
	createNodes(t, s, n1)
	spec := &api.TaskSpec{Resources: &api.ResourceRequirements{Reservations: &api.Resources{MemoryBytes: 7}}}
	createTasks(t, s, serviceTasks("web", 3, spec)...)
	p := New(s, testConfig())
	m := newModel(nil)
	p.pass(t.Context(), m)
	n := m.load["n1"]
	if n == nil || n.Tasks != 3 || n.ReservedMemory != 21 {
		t.Errorf("load on n1 after the pass = %+v, want 3 tasks, 21 bytes", n)
	}
	var live []*api.Task
	s.View(func(tx store.ReadTx) { live = tx.FindTasks(store.ByNodeID("n1")) })
	if rebuilt := newModel(live).load["n1"]; !reflect.DeepEqual(rebuilt, n) {
		t.Errorf("the model after the pass %+v differs from a fresh listing %+v", n, rebuilt)
	}
}
