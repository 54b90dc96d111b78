package scheduler

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

func TestHeapOrder(t *testing.T) {
	h := nodeHeap{
		{service: 1, tasks: 0, tie: 0, room: 1, node: 0},
		{service: 0, tasks: 9, tie: 5, room: 1, node: 1},
		{service: 0, tasks: 2, tie: 9, room: 1, node: 2},
		{service: 0, tasks: 2, tie: 3, room: 1, node: 3},
	}
	h.init()
	var got []int32
	h.place(10, func(n int32) { got = append(got, n) })
	// fewest of the service first, then fewest tasks, then the tie-break.
	want := []int32{3, 2, 1, 0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestHeapRoomAndCounts(t *testing.T) {
	h := nodeHeap{
		{room: 3, tie: 1, node: 0},
		{room: 1, tie: 2, node: 1},
	}
	h.init()
	var got []int32
	n := h.place(10, func(m int32) { got = append(got, m) })
	// node 0 takes one, node 1 one (then full), node 0 its other two.
	if want := []int32{0, 1, 0, 0}; n != 4 || !reflect.DeepEqual(got, want) {
		t.Errorf("placed %d: %v, want 4: %v", n, got, want)
	}
	if len(h) != 0 {
		t.Errorf("heap keeps %d full nodes", len(h))
	}
}

func TestScoreFewestOfServiceFirst(t *testing.T) {
	nodes := []NodeInfo{
		{Node: newNode("a"), Tasks: 10, ServiceTasks: map[string]int{"other": 10}},
		{Node: newNode("b"), Tasks: 1, ServiceTasks: map[string]int{"svc": 1}},
	}
	r := Schedule(NewSnapshot(nodes), group("svc", &api.TaskSpec{}, 1), 1)
	if got := r.Decisions[0].NodeID; got != "a" {
		t.Errorf("task went to %s, want a (no task of the service, though busier)", got)
	}
}

func TestScoreFewestTasksSecond(t *testing.T) {
	nodes := []NodeInfo{
		{Node: newNode("a"), Tasks: 5, ServiceTasks: map[string]int{"other": 5}},
		{Node: newNode("b"), Tasks: 1, ServiceTasks: map[string]int{"other": 1}},
		{Node: newNode("c"), Tasks: 3, ServiceTasks: map[string]int{"other": 3}},
	}
	r := Schedule(NewSnapshot(nodes), group("svc", &api.TaskSpec{}, 3), 1)
	// b (1 task) first; then b has svc 1, so a and c (svc 0) come next,
	// c before a.
	var got []string
	for _, d := range r.Decisions {
		got = append(got, d.NodeID)
	}
	if want := []string{"b", "c", "a"}; !reflect.DeepEqual(got, want) {
		t.Errorf("placements = %v, want %v", got, want)
	}
}

func TestScoreEvenSpread(t *testing.T) {
	r := Schedule(BuildSnapshot(nodesN(5), nil), group("svc", &api.TaskSpec{}, 12), 7)
	counts := perNode(r)
	if r.Placed != 12 || len(counts) != 5 {
		t.Fatalf("placed %d on %d nodes, want 12 on 5", r.Placed, len(counts))
	}
	for n, c := range counts {
		if c < 2 || c > 3 {
			t.Errorf("%s got %d tasks, want 2 or 3", n, c)
		}
	}
}

func TestTieBreakSeeded(t *testing.T) {
	snap := BuildSnapshot(nodesN(20), nil)
	g := group("svc", &api.TaskSpec{}, 1)
	first := Schedule(snap, g, 42).Decisions[0].NodeID
	for range 5 {
		if got := Schedule(snap, g, 42).Decisions[0].NodeID; got != first {
			t.Fatalf("same seed chose %s then %s", first, got)
		}
	}
	seen := map[string]bool{}
	for seed := range uint64(50) {
		seen[Schedule(snap, g, seed).Decisions[0].NodeID] = true
	}
	if len(seen) < 5 {
		t.Errorf("50 seeds chose only %d distinct nodes among 20 equal ones: the tie-break is not random", len(seen))
	}
}

func TestSeed(t *testing.T) {
	g := group("svc", &api.TaskSpec{}, 3)
	s := Seed(g)
	if Seed(g) != s {
		t.Error("Seed is not stable")
	}
	g2 := *g
	g2.SpecVersion = 2
	if Seed(&g2) == s {
		t.Error("Seed ignores the spec version")
	}
	g3 := *g
	g3.Tasks = g.Tasks[:2]
	if Seed(&g3) == s {
		t.Error("Seed ignores the tasks")
	}
	g4 := *g
	g4.ServiceID = "other"
	if Seed(&g4) == s {
		t.Error("Seed ignores the service")
	}
	// Many tasks go through the buffered path.
	big := group("svc", &api.TaskSpec{}, 2000)
	if Seed(big) == Seed(&Group{ServiceID: "svc", SpecVersion: 1, Tasks: big.Tasks[:1999]}) {
		t.Error("Seed ignores the last of many tasks")
	}
}

func TestScheduleDistributesLargeGroup(t *testing.T) {
	nodes := nodesN(100)
	var live []*api.Task
	// node-000 already runs 30 tasks of the service.
	for i := range 30 {
		live = append(live, liveTask(fmt.Sprintf("old%d", i), "svc", "node-000"))
	}
	r := Schedule(BuildSnapshot(nodes, live), group("svc", &api.TaskSpec{}, 1000), 3)
	counts := perNode(r)
	if r.Placed != 1000 {
		t.Fatalf("placed %d of 1000", r.Placed)
	}
	// Totals level out: 1000 over the 99 other nodes is 10 or 11 each;
	// node-000 with its 30 gets nothing.
	if counts["node-000"] != 0 {
		t.Errorf("node-000 (30 running) got %d more", counts["node-000"])
	}
	for _, n := range nodes[1:] {
		if c := counts[n.Id]; c < 10 || c > 11 {
			t.Errorf("%s got %d, want 10 or 11", n.Id, c)
		}
	}
}
