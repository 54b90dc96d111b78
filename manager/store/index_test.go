package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

const (
	stNew      = api.TaskState_TASK_STATE_NEW
	stPending  = api.TaskState_TASK_STATE_PENDING
	stAssigned = api.TaskState_TASK_STATE_ASSIGNED
	stRunning  = api.TaskState_TASK_STATE_RUNNING
	stShutdown = api.TaskState_TASK_STATE_SHUTDOWN
)

func TestTaskIndexes(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error {
		for _, task := range []*api.Task{
			newTask("t3", "svcA", "n1", stRunning, stRunning),
			newTask("t1", "svcA", "n2", stRunning, stRunning),
			newTask("t2", "svcB", "n1", stAssigned, stRunning),
			newTask("t4", "svcA", "", stPending, stRunning),
			newTask("t5", "svcB", "n2", stShutdown, stShutdown),
		} {
			if err := tx.CreateTask(task); err != nil {
				return err
			}
		}
		return nil
	})
	check := func(when string, by By, want ...string) {
		t.Helper()
		s.View(func(tx ReadTx) {
			if got := ids(tx.FindTasks(by)); !slices.Equal(got, want) {
				t.Errorf("%s: FindTasks(%#v) = %v, want %v", when, by, got, want)
			}
		})
	}
	check("initial", All(), "t1", "t2", "t3", "t4", "t5")
	check("initial", ByServiceID("svcA"), "t1", "t3", "t4")
	check("initial", ByServiceID("svcB"), "t2", "t5")
	check("initial", ByServiceID("svcC"))
	check("initial", ByNodeID("n1"), "t2", "t3")
	check("initial", ByNodeID(""), "t4")
	check("initial", ByDesiredState(stRunning), "t1", "t2", "t3", "t4")
	check("initial", ByDesiredState(stShutdown), "t5")
	check("initial", ByIDPrefix("t"), "t1", "t2", "t3", "t4", "t5")
	check("initial", ByIDPrefix("t3"), "t3")
	check("initial", ByIDPrefix("x"))
	check("initial", ByRole(api.NodeRole_NODE_ROLE_WORKER)) // not a task selector

	// Move t4 onto n1 and shut t3 down: the indexes follow.
	mustUpdate(t, s, func(tx Tx) error {
		t4 := protoClone(tx.GetTask("t4"))
		t4.NodeId = "n1"
		t4.Status.State = stAssigned
		if err := tx.UpdateTask(t4); err != nil {
			return err
		}
		t3 := protoClone(tx.GetTask("t3"))
		t3.DesiredState = stShutdown
		if err := tx.UpdateTask(t3); err != nil {
			return err
		}
		return tx.DeleteTask("t1")
	})
	check("after updates", ByNodeID("n1"), "t2", "t3", "t4")
	check("after updates", ByNodeID(""))
	check("after updates", ByNodeID("n2"), "t5")
	check("after updates", ByDesiredState(stRunning), "t2", "t4")
	check("after updates", ByDesiredState(stShutdown), "t3", "t5")
	check("after updates", ByServiceID("svcA"), "t3", "t4")
}

func TestNodeIndexes(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error {
		for _, n := range []*api.Node{
			newNode("n1", "", "host-a", api.NodeRole_NODE_ROLE_MANAGER),
			newNode("n2", "named", "host-b", api.NodeRole_NODE_ROLE_WORKER),
			newNode("n3", "", "host-a", api.NodeRole_NODE_ROLE_WORKER), // names need not be unique
			newNode("n4", "", "", api.NodeRole_NODE_ROLE_WORKER),
		} {
			if err := tx.CreateNode(n); err != nil {
				return err
			}
		}
		return nil
	})
	s.View(func(tx ReadTx) {
		for _, tc := range []struct {
			by   By
			want []string
		}{
			{ByName("host-a"), []string{"n1", "n3"}},
			{ByName("named"), []string{"n2"}},
			{ByName("host-b"), nil}, // the spec name wins over the hostname
			{ByName(""), nil},
			{ByRole(api.NodeRole_NODE_ROLE_MANAGER), []string{"n1"}},
			{ByRole(api.NodeRole_NODE_ROLE_WORKER), []string{"n2", "n3", "n4"}},
			{ByServiceID("x"), nil},
		} {
			if got := ids(tx.FindNodes(tc.by)); !slices.Equal(got, tc.want) {
				t.Errorf("FindNodes(%#v) = %v, want %v", tc.by, got, tc.want)
			}
		}
	})
}

func TestUniqueNameIndexes(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error {
		for _, err := range []error{
			tx.CreateCluster(&api.Cluster{Id: "c1", Spec: &api.ClusterSpec{Annotations: ann("default")}}),
			tx.CreateSecret(&api.Secret{Id: "x1", Spec: &api.SecretSpec{Annotations: ann("pw")}}),
			tx.CreateConfig(&api.Config{Id: "g1", Spec: &api.ConfigSpec{Annotations: ann("conf")}}),
			tx.CreateNetwork(newNetwork("w1", "net")),
			tx.CreateService(newService("s1", "web")),
			// Unnamed objects do not conflict with each other.
			tx.CreateService(newService("s2", "")),
			tx.CreateService(newService("s3", "")),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	s.View(func(tx ReadTx) {
		if got := ids(tx.FindClusters(ByName("default"))); !slices.Equal(got, []string{"c1"}) {
			t.Errorf("FindClusters(ByName) = %v", got)
		}
		if got := ids(tx.FindSecrets(ByName("pw"))); !slices.Equal(got, []string{"x1"}) {
			t.Errorf("FindSecrets(ByName) = %v", got)
		}
		if got := ids(tx.FindConfigs(ByName("conf"))); !slices.Equal(got, []string{"g1"}) {
			t.Errorf("FindConfigs(ByName) = %v", got)
		}
		if got := ids(tx.FindNetworks(ByName("net"))); !slices.Equal(got, []string{"w1"}) {
			t.Errorf("FindNetworks(ByName) = %v", got)
		}
		if got := ids(tx.FindServices(ByName("web"))); !slices.Equal(got, []string{"s1"}) {
			t.Errorf("FindServices(ByName) = %v", got)
		}
		if got := tx.FindServices(ByName("")); len(got) != 0 {
			t.Errorf("FindServices(ByName(\"\")) = %v, want none", ids(got))
		}
		if got := ids(tx.FindServices(All())); !slices.Equal(got, []string{"s1", "s2", "s3"}) {
			t.Errorf("FindServices(All) = %v", got)
		}
		if got := tx.FindServices(ByServiceID("s1")); len(got) != 0 {
			t.Errorf("a task selector on services returned %v", ids(got))
		}
	})
}

// TestTxFindSeesStagedWrites checks that Find inside a transaction merges
// the staged creates, updates and deletes into the index results, in ID
// order.
func TestTxFindSeesStagedWrites(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error {
		for _, id := range []string{"t2", "t4", "t6"} {
			if err := tx.CreateTask(newTask(id, "svc", "n1", stNew, stRunning)); err != nil {
				return err
			}
		}
		return nil
	})
	mustUpdate(t, s, func(tx Tx) error {
		if err := tx.CreateTask(newTask("t5", "svc", "n2", stNew, stRunning)); err != nil {
			return err
		}
		if err := tx.CreateTask(newTask("t1", "svc", "n1", stNew, stRunning)); err != nil {
			return err
		}
		t4 := protoClone(tx.GetTask("t4"))
		t4.NodeId = "n2"
		if err := tx.UpdateTask(t4); err != nil {
			return err
		}
		if err := tx.DeleteTask("t6"); err != nil {
			return err
		}
		for _, tc := range []struct {
			by   By
			want []string
		}{
			{ByServiceID("svc"), []string{"t1", "t2", "t4", "t5"}},
			{ByNodeID("n1"), []string{"t1", "t2"}},
			{ByNodeID("n2"), []string{"t4", "t5"}},
			{All(), []string{"t1", "t2", "t4", "t5"}},
			{ByIDPrefix("t6"), nil},
		} {
			if got := ids(tx.FindTasks(tc.by)); !slices.Equal(got, tc.want) {
				t.Errorf("in tx: FindTasks(%#v) = %v, want %v", tc.by, got, tc.want)
			}
		}
		return nil
	})
}

// TestSortedList drives a sortedList through random inserts and removals
// large enough to split and merge blocks, comparing it with a map.
func TestSortedList(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var l sortedList[*api.Task]
	model := make(map[string]bool)
	key := func() string { return fmt.Sprintf("k%05d", rng.IntN(20000)) }
	for step := range 60000 {
		id := key()
		// Grow for the first half, then shrink.
		if rng.IntN(100) < 70 == (step < 30000) {
			l.insert(&entry[*api.Task]{id: id, obj: &api.Task{Id: id}})
			model[id] = true
		} else {
			if got := l.remove(id); got != model[id] {
				t.Fatalf("remove(%s) = %v, want %v", id, got, model[id])
			}
			delete(model, id)
		}
		if step%5000 == 0 || step == 59999 {
			checkSortedList(t, &l, model)
			from := key()
			var got []string
			l.ascend(from, func(e *entry[*api.Task]) bool { got = append(got, e.id); return len(got) < 10 })
			var want []string
			for id := range model {
				if id >= from {
					want = append(want, id)
				}
			}
			sort.Strings(want)
			if len(want) > 10 {
				want = want[:10]
			}
			if !slices.Equal(got, want) {
				t.Fatalf("ascend(%s) = %v, want %v", from, got, want)
			}
		}
	}
}

func checkSortedList(t *testing.T, l *sortedList[*api.Task], model map[string]bool) {
	t.Helper()
	if l.len() != len(model) {
		t.Fatalf("len = %d, want %d", l.len(), len(model))
	}
	want := make([]string, 0, len(model))
	for id := range model {
		want = append(want, id)
	}
	sort.Strings(want)
	if got := ids(l.objects()); !slices.Equal(got, want) {
		t.Fatalf("objects() out of order or incomplete: %d entries, want %d", len(got), len(want))
	}
	for i, b := range l.blocks {
		if len(b) == 0 || len(b) > blockSize {
			t.Fatalf("block %d has %d entries, want 1..%d", i, len(b), blockSize)
		}
	}
}
