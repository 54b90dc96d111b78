package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

func TestAssignmentsCompleteThenIncremental(t *testing.T) {
	s := newStore()
	createNodes(t, s, "n1", "n2")
	createTasks(t, s,
		newTask("t1", "n1", stAssigned, stRunning),
		newTask("t2", "", stPending, stRunning),    // not placed yet
		newTask("t3", "n2", stAssigned, stRunning), // another node's
		newTask("t4", "n1", stRunning, stRunning),
		newTask("t5", "n1", stComplete, stShutdown), // finished, still in the store
	)
	d, _ := startDispatcher(t, s, Config{})
	st, _ := openStream(t, d, "n1")

	m := st.next(t)
	up, rm := ids(m)
	sort.Strings(up)
	if m.Type != api.AssignmentsMessage_TYPE_COMPLETE || !slices.Equal(up, []string{"t1", "t4", "t5"}) || len(rm) != 0 {
		t.Fatalf("first message: %v %v %v, want COMPLETE [t1 t4 t5]", m.Type, up, rm)
	}

	steps := []struct {
		name             string
		change           func()
		updated, removed []string
		desired          api.TaskState // of the first updated task, when set
	}{
		{"newly assigned", func() {
			changeTasks(t, s, func(task *api.Task) { task.NodeId = "n1"; task.Status.State = stAssigned }, "t2")
		}, []string{"t2"}, nil, 0},
		{"status-only changes are not sent; a desired state change is", func() {
			changeTasks(t, s, func(task *api.Task) { task.Status.State = stAccepted }, "t1")
			changeTasks(t, s, func(task *api.Task) { task.Status.State = stAccepted }, "t3") // n2
			changeTasks(t, s, func(task *api.Task) { task.DesiredState = stShutdown }, "t4")
		}, []string{"t4"}, nil, stShutdown},
		{"created on the node (global)", func() {
			createTasks(t, s, newTask("t6", "n1", stAssigned, stRunning))
		}, []string{"t6"}, nil, stRunning},
		{"deleted", func() {
			update(t, s, func(tx store.Tx) error { return tx.DeleteTask("t5") })
		}, nil, []string{"t5"}, 0},
		{"another node's task is never sent", func() {
			changeTasks(t, s, func(task *api.Task) { task.DesiredState = stShutdown }, "t3")
			changeTasks(t, s, func(task *api.Task) { task.DesiredState = stShutdown }, "t1")
		}, []string{"t1"}, nil, stShutdown},
	}
	for _, step := range steps {
		step.change()
		m := st.next(t)
		up, rm := ids(m)
		if m.Type != api.AssignmentsMessage_TYPE_INCREMENTAL || !slices.Equal(up, step.updated) || !slices.Equal(rm, step.removed) {
			t.Fatalf("%s: got %v updated %v removed %v; want INCREMENTAL updated %v removed %v",
				step.name, m.Type, up, rm, step.updated, step.removed)
		}
		if step.desired != 0 && m.UpdateTasks[0].DesiredState != step.desired {
			t.Fatalf("%s: desired state %v, want %v", step.name, m.UpdateTasks[0].DesiredState, step.desired)
		}
	}
}

func TestAssignmentsBatchOneWriteIntoOneMessage(t *testing.T) {
	s := newStore()
	createNodes(t, s, "n1")
	var tasks []*api.Task
	var want []string
	for i := range 20 {
		id := fmt.Sprintf("t%02d", i)
		tasks = append(tasks, newTask(id, "n1", stAssigned, stRunning))
		want = append(want, id)
	}
	d, _ := startDispatcher(t, s, Config{})
	st, _ := openStream(t, d, "n1")
	if m := st.next(t); len(m.UpdateTasks) != 0 {
		t.Fatalf("COMPLETE of an empty node has %d tasks", len(m.UpdateTasks))
	}
	createTasks(t, s, tasks...)
	m := st.next(t)
	up, _ := ids(m)
	sort.Strings(up)
	if !slices.Equal(up, want) {
		t.Fatalf("one write of 20 tasks arrived as %v, want one message with all of them", up)
	}
}

func TestAssignmentsStartOverWhenBehind(t *testing.T) {
	s := newStore()
	createNodes(t, s, "n1")
	var all []string
	for i := range 5000 {
		all = append(all, fmt.Sprintf("t%04d", i))
	}
	for chunk := range slices.Chunk(all, 1000) {
		var tasks []*api.Task
		for _, id := range chunk {
			tasks = append(tasks, newTask(id, "n1", stAssigned, stRunning))
		}
		createTasks(t, s, tasks...)
	}
	d, _ := startDispatcher(t, s, Config{})

	t.Run("store watch closes", func(t *testing.T) {
		st, cancel := openStream(t, d, "n1")
		defer cancel()
		if m := st.next(t); len(m.UpdateTasks) != 5000 {
			t.Fatalf("COMPLETE has %d tasks, want 5000", len(m.UpdateTasks))
		}
		// A snapshot install closes every store watch, as an overflow
		// does: the stream cannot know what changed.
		snap, index := s.Snapshot()
		var tasks []*api.Task
		for _, task := range snap.Tasks[1:] {
			task = proto.Clone(task).(*api.Task)
			task.DesiredState = stShutdown
			tasks = append(tasks, task)
		}
		snap.Tasks = tasks
		if err := s.Restore(index+1, snap); err != nil {
			t.Fatal(err)
		}
		m := st.next(t)
		if m.Type != api.AssignmentsMessage_TYPE_COMPLETE || len(m.UpdateTasks) != 4999 {
			t.Fatalf("after the watch closed: %v with %d tasks, want a new COMPLETE with 4999", m.Type, len(m.UpdateTasks))
		}
		for _, task := range m.UpdateTasks {
			if task.DesiredState != stShutdown {
				t.Fatalf("COMPLETE after restore has %s desired %v", task.Id, task.DesiredState)
			}
		}
		all = all[1:]
	})

	t.Run("stream falls behind", func(t *testing.T) {
		st, cancel := openStream(t, d, "n1")
		defer cancel()
		st.next(t) // COMPLETE
		release := st.hold()
		// The first change is taken and its send blocks; the next ones
		// queue until there are too many.
		changeTasks(t, s, func(task *api.Task) { task.DesiredState = api.TaskState_TASK_STATE_REMOVE }, all[0])
		st.waitBlocked(t)
		for round := range maxQueuedEvents/len(all) + 1 {
			for chunk := range slices.Chunk(all[1:], 1000) {
				changeTasks(t, s, func(task *api.Task) {
					task.Annotations = &api.Annotations{Labels: map[string]string{"round": fmt.Sprint(round)}}
				}, chunk...)
			}
		}
		release()
		if m := st.next(t); m.Type != api.AssignmentsMessage_TYPE_INCREMENTAL || len(m.UpdateTasks) != 1 {
			t.Fatalf("the blocked message: %v with %d tasks", m.Type, len(m.UpdateTasks))
		}
		m := st.next(t)
		if m.Type != api.AssignmentsMessage_TYPE_COMPLETE || len(m.UpdateTasks) != len(all) {
			t.Fatalf("after falling behind: %v with %d tasks, want a new COMPLETE with all", m.Type, len(m.UpdateTasks))
		}
	})
}

func TestAssignmentsEndWithRun(t *testing.T) {
	s := newStore()
	createNodes(t, s, "n1")
	// Not running: refused at once.
	idle := New(Config{Store: s, Members: func() []*api.RaftMember { return nil }})
	if err := idle.Assignments(context.Background(), "n1", func(*api.AssignmentsMessage) error { return nil }); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Assignments before Run: %v, want ErrNotRunning", err)
	}
	d, stop := startDispatcher(t, s, Config{})
	if err := d.Assignments(context.Background(), "ghost", func(*api.AssignmentsMessage) error { return nil }); !errors.Is(err, ErrNodeRemoved) {
		t.Fatalf("Assignments of an unknown node: %v, want ErrNodeRemoved", err)
	}
	st, _ := openStream(t, d, "n1")
	st.next(t)
	stop() // leadership lost
	select {
	case err := <-st.done:
		if !errors.Is(err, ErrNotRunning) {
			t.Fatalf("stream ended with %v, want ErrNotRunning", err)
		}
	case <-timeout():
		t.Fatal("the stream outlived Run")
	}
}

func TestSameForAgentCoversEveryTaskField(t *testing.T) {
	fields := (&api.Task{}).ProtoReflect().Descriptor().Fields()
	var names []string
	for i := range fields.Len() {
		names = append(names, string(fields.Get(i).Name()))
	}
	if !slices.Equal(names, sameForAgentFields) {
		t.Fatalf("Task fields are %v; sameForAgent knows %v: decide whether agents must be sent a change of the new field and update sameForAgent and sameForAgentFields", names, sameForAgentFields)
	}
	a := newTask("t1", "n1", stAssigned, stRunning)
	b := newTask("t1", "n1", stRunning, stRunning)
	b.Meta = &api.Meta{Version: 9}
	if !sameForAgent(a, b) {
		t.Fatal("a status and meta change counts as a change for the agent")
	}
	b.Spec.Container.Image = "app:v2"
	if sameForAgent(a, b) {
		t.Fatal("a spec change does not count")
	}
}

// TestAssignmentsCarryNetworks: a node is sent the networks its tasks
// attach to, once, and told to forget them when no task needs them.
func TestAssignmentsCarryNetworks(t *testing.T) {
	s := newStore()
	createNodes(t, s, "n1")
	update(t, s, func(tx store.Tx) error {
		for i, id := range []string{"netA", "netB"} {
			if err := tx.CreateNetwork(&api.Network{Id: id, Vni: uint32(4096 + i), Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: id}}}); err != nil {
				return err
			}
		}
		return nil
	})
	onNets := func(task *api.Task, nets ...string) *api.Task {
		for _, n := range nets {
			task.Networks = append(task.Networks, &api.NetworkAttachment{NetworkId: n, Addresses: []string{"10.0.0.9/24"}})
		}
		return task
	}
	createTasks(t, s, onNets(newTask("t1", "n1", stAssigned, stRunning), "netA"))
	d, _ := startDispatcher(t, s, Config{})
	st, _ := openStream(t, d, "n1")
	netIDs := func(ns []*api.Network) (out []string) {
		for _, n := range ns {
			out = append(out, n.GetId())
		}
		return out
	}
	m := st.next(t)
	if got := netIDs(m.GetUpdateNetworks()); !slices.Equal(got, []string{"netA"}) {
		t.Fatalf("COMPLETE networks %v, want [netA]", got)
	}
	createTasks(t, s, onNets(newTask("t2", "n1", stAssigned, stRunning), "netA", "netB"))
	m = st.next(t)
	if got := netIDs(m.GetUpdateNetworks()); !slices.Equal(got, []string{"netB"}) || len(m.GetRemoveNetworks()) != 0 {
		t.Fatalf("second task: networks %v removed %v, want [netB] and none", got, m.GetRemoveNetworks())
	}
	update(t, s, func(tx store.Tx) error { return tx.DeleteTask("t2") })
	m = st.next(t)
	if len(m.GetUpdateNetworks()) != 0 || !slices.Equal(m.GetRemoveNetworks(), []string{"netB"}) {
		t.Fatalf("after t2 left: networks %v removed %v, want none and [netB]", netIDs(m.GetUpdateNetworks()), m.GetRemoveNetworks())
	}
}
