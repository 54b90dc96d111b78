package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

const gb = int64(1) << 30

func TestReasonNamesEveryFilter(t *testing.T) {
	nodes := []*api.Node{
		newNode("down", labels("zone", "eu"), resources(1e9, 4*gb), state(api.NodeState_NODE_STATE_DOWN)),
		newNode("us1", labels("zone", "us"), resources(1e9, 4*gb)),
		newNode("nolabel", resources(1e9, 4*gb)),
		newNode("eu1", labels("zone", "eu"), resources(1e9, gb)),
		newNode("eu2", labels("zone", "eu"), resources(1e9, gb)),
		newNode("eu3", labels("zone", "eu")),
	}
	spec := &api.TaskSpec{
		Placement: &api.Placement{Constraints: []string{"node.labels.zone==eu"}},
		Resources: &api.ResourceRequirements{Reservations: &api.Resources{MemoryBytes: 2 * gb}},
	}
	r := Schedule(BuildSnapshot(nodes, nil), group("svc", spec, 2), 1)
	want := "no suitable node (insufficient memory on 3 nodes; constraint node.labels.zone==eu not met on 2 nodes; 1 node not available)"
	for _, d := range r.Decisions {
		if d.NodeID != "" || d.Reason != want {
			t.Errorf("decision %+v,\nwant reason %q", d, want)
		}
	}
	if r.Placed != 0 {
		t.Errorf("Placed = %d", r.Placed)
	}
}

func TestNoNodes(t *testing.T) {
	r := Schedule(NewSnapshot(nil), group("svc", &api.TaskSpec{}, 1), 1)
	if got := r.Decisions[0].Reason; got != "no suitable node (no nodes in the cluster)" {
		t.Errorf("reason = %q", got)
	}
}

func TestPartialPlacementExplainsTheRest(t *testing.T) {
	spec := &api.TaskSpec{Placement: &api.Placement{MaxReplicas: 2}}
	nodes := append(nodesN(3), newNode("drained", availability(api.NodeAvailability_NODE_AVAILABILITY_DRAIN)))
	r := Schedule(BuildSnapshot(nodes, nil), group("svc", spec, 10), 1)
	if r.Placed != 6 {
		t.Fatalf("placed %d, want 6", r.Placed)
	}
	for n, c := range perNode(r) {
		if c != 2 || n == "drained" {
			t.Errorf("%s got %d", n, c)
		}
	}
	want := []string{"no suitable node (max replicas per node (2) reached on 3 nodes; 1 node not available)"}
	if got := reasons(r); !reflect.DeepEqual(got, want) {
		t.Errorf("reasons = %q, want %q", got, want)
	}
	// Every task has either a node or a reason.
	for _, d := range r.Decisions {
		if (d.NodeID == "") == (d.Reason == "") {
			t.Errorf("decision %+v has both or neither", d)
		}
	}
}

func TestResourcesAreConsumed(t *testing.T) {
	nodes := []*api.Node{newNode("a", resources(4e9, 8*gb)), newNode("b", resources(2e9, 8*gb))}
	live := []*api.Task{reserving(liveTask("old", "other", "a"), 1e9, gb)}
	spec := &api.TaskSpec{Resources: &api.ResourceRequirements{Reservations: &api.Resources{NanoCpus: 1e9}}}
	r := Schedule(BuildSnapshot(nodes, live), group("svc", spec, 6), 1)
	// a has 3 cores free, b 2: five fit.
	if got := perNode(r); r.Placed != 5 || got["a"] != 3 || got["b"] != 2 {
		t.Errorf("placed %d: %v, want a:3 b:2", r.Placed, got)
	}
	if got, want := reasons(r), []string{"no suitable node (insufficient CPU on 2 nodes)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("reasons = %q", got)
	}
}

func TestHostPortsOnePerNode(t *testing.T) {
	nodes := nodesN(3)
	used := liveTask("old", "other", "node-001")
	used.Endpoint = hostPortEndpoint(8080)
	g := group("svc", &api.TaskSpec{}, 3)
	g.Endpoint = hostPortEndpoint(8080)
	r := Schedule(BuildSnapshot(nodes, []*api.Task{used}), g, 1)
	if got := perNode(r); r.Placed != 2 || got["node-000"] != 1 || got["node-002"] != 1 {
		t.Errorf("placed %d: %v, want one each on node-000 and node-002", r.Placed, got)
	}
	if got, want := reasons(r), []string{"no suitable node (host-mode port already in use on 3 nodes)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("reasons = %q", got)
	}
}

func TestPresetNodes(t *testing.T) {
	nodes := []*api.Node{
		newNode("eu", labels("zone", "eu")),
		newNode("us", labels("zone", "us")),
		newNode("down", labels("zone", "eu"), state(api.NodeState_NODE_STATE_DOWN)),
	}
	spec := &api.TaskSpec{Placement: &api.Placement{Constraints: []string{"node.labels.zone==eu"}}}
	g := &Group{ServiceID: "glob", SpecVersion: 1, Spec: spec}
	for _, n := range []string{"eu", "us", "down", "gone"} {
		g.Tasks = append(g.Tasks, &api.Task{Id: "t-" + n, ServiceId: "glob", NodeId: n})
	}
	r := Schedule(BuildSnapshot(nodes, nil), g, 1)
	want := []Decision{
		{TaskID: "t-eu", NodeID: "eu"},
		{TaskID: "t-us", Reason: "no suitable node (constraint node.labels.zone==eu not met on 1 node)"},
		{TaskID: "t-down", Reason: "no suitable node (1 node not available)"},
		{TaskID: "t-gone", Reason: "no suitable node (node gone is not in the cluster)"},
	}
	if !reflect.DeepEqual(r.Decisions, want) || r.Placed != 1 {
		t.Errorf("decisions = %+v\nwant        %+v", r.Decisions, want)
	}
}

func TestPresetNodeCapacity(t *testing.T) {
	nodes := []*api.Node{newNode("a", resources(1e9, gb))}
	spec := &api.TaskSpec{Resources: &api.ResourceRequirements{Reservations: &api.Resources{MemoryBytes: gb}}}
	g := &Group{ServiceID: "glob", SpecVersion: 1, Spec: spec, Tasks: []*api.Task{
		{Id: "t1", NodeId: "a"}, {Id: "t2", NodeId: "a"},
	}}
	r := Schedule(BuildSnapshot(nodes, nil), g, 1)
	if r.Decisions[0].NodeID != "a" || r.Decisions[1].Reason != "no suitable node (insufficient memory on 1 node)" {
		t.Errorf("decisions = %+v", r.Decisions)
	}
}

func TestInvalidSpec(t *testing.T) {
	spec := &api.TaskSpec{Placement: &api.Placement{Constraints: []string{"zone=eu"}}}
	r := Schedule(BuildSnapshot(nodesN(2), nil), group("svc", spec, 2), 1)
	for _, d := range r.Decisions {
		if d.NodeID != "" || !strings.HasPrefix(d.Reason, "invalid placement constraint") {
			t.Errorf("decision %+v", d)
		}
	}
}

func TestPlannerCarriesPlacementsAcrossGroups(t *testing.T) {
	nodes := []*api.Node{newNode("a", resources(2e9, 8*gb)), newNode("b", resources(2e9, 8*gb))}
	p := NewPlanner(BuildSnapshot(nodes, nil))
	cpu := &api.TaskSpec{Resources: &api.ResourceRequirements{Reservations: &api.Resources{NanoCpus: 1e9}}}
	r1 := p.Place(group("one", cpu, 3), 1)
	r2 := p.Place(group("two", cpu, 3), 2)
	if r1.Placed != 3 || r2.Placed != 1 {
		t.Errorf("placed %d then %d, want 3 then 1 (4 cores in all)", r1.Placed, r2.Placed)
	}
	// Max replicas counts the service's tasks placed by an earlier group
	// (another spec version of the same service).
	p = NewPlanner(BuildSnapshot(nodes, nil))
	capped := &api.TaskSpec{Placement: &api.Placement{MaxReplicas: 1}}
	v1 := group("svc", capped, 1)
	v2 := &Group{ServiceID: "svc", SpecVersion: 2, Spec: capped, Tasks: pendingTasks("v2", "svc", 2)}
	if r := p.Place(v1, 1); r.Placed != 1 {
		t.Fatalf("v1 placed %d", r.Placed)
	}
	if r := p.Place(v2, 1); r.Placed != 1 {
		t.Errorf("v2 placed %d, want 1 (one node left under max replicas 1)", r.Placed)
	}
	// The second group also spreads away from the first one's node.
	p = NewPlanner(BuildSnapshot(nodes, nil))
	a := p.Place(group("svc", &api.TaskSpec{}, 1), 1).Decisions[0].NodeID
	b := p.Place(&Group{ServiceID: "svc", SpecVersion: 2, Spec: &api.TaskSpec{}, Tasks: pendingTasks("x", "svc", 1)}, 1).Decisions[0].NodeID
	if a == b {
		t.Errorf("both groups went to %s", a)
	}
}

func TestBuildSnapshotCountsLiveTasks(t *testing.T) {
	task := func(id, node string, st, desired api.TaskState) *api.Task {
		t := reserving(liveTask(id, "svc", node), 1, 10)
		t.Status.State, t.DesiredState = st, desired
		return t
	}
	running, pending, assigned := api.TaskState_TASK_STATE_RUNNING, api.TaskState_TASK_STATE_PENDING, api.TaskState_TASK_STATE_ASSIGNED
	tasks := []*api.Task{
		task("run", "a", running, running),
		task("assigned", "a", assigned, running),
		task("ready", "a", api.TaskState_TASK_STATE_PREPARING, api.TaskState_TASK_STATE_READY),
		task("stopping", "a", running, api.TaskState_TASK_STATE_SHUTDOWN),
		task("done", "a", api.TaskState_TASK_STATE_COMPLETE, running),
		task("preset", "a", pending, running),
		task("unplaced", "", pending, running),
		task("elsewhere", "zz", running, running),
	}
	snap := BuildSnapshot([]*api.Node{newNode("b"), newNode("a")}, tasks)
	a, ok := snap.Find("a")
	if !ok {
		t.Fatal("node a not found")
	}
	if a.Tasks != 3 || a.ServiceTasks["svc"] != 3 || a.ReservedCPU != 3 || a.ReservedMemory != 30 {
		t.Errorf("node a = %+v, want 3 live tasks (run, assigned, ready)", a)
	}
	if snap.Len() != 2 || snap.Node(0).Node.Id != "a" || snap.Node(1).Node.Id != "b" {
		t.Errorf("snapshot is not sorted by ID")
	}
	if _, ok := snap.Find("zz"); ok {
		t.Error("found a node that is not in the list")
	}
}

func TestNodeInfoAddRemove(t *testing.T) {
	n := &NodeInfo{Node: newNode("a")}
	t1 := reserving(liveTask("t1", "svc", "a"), 5, 7)
	t1.Endpoint = hostPortEndpoint(80)
	t2 := liveTask("t2", "other", "a")
	n.AddTask(t1)
	n.AddTask(t2)
	if n.Tasks != 2 || n.ServiceTasks["svc"] != 1 || n.ReservedCPU != 5 || n.HostPorts[HostPort{Port: 80}] != 1 {
		t.Errorf("after adds: %+v", n)
	}
	n.RemoveTask(t1)
	n.RemoveTask(t2)
	if n.Tasks != 0 || len(n.ServiceTasks) != 0 || n.ReservedCPU != 0 || n.ReservedMemory != 0 || len(n.HostPorts) != 0 {
		t.Errorf("after removes: %+v", n)
	}
}

func TestScheduleLeavesSnapshotAlone(t *testing.T) {
	nodes := []*api.Node{newNode("a", resources(8e9, 8*gb)), newNode("b", resources(8e9, 8*gb))}
	live := []*api.Task{reserving(liveTask("old", "svc", "a"), 1e9, gb)}
	live[0].Endpoint = hostPortEndpoint(81)
	snap := BuildSnapshot(nodes, live)
	before := fmt.Sprintf("%v %v %v %v", *snap.Node(0), snap.Node(0).ServiceTasks, snap.Node(0).HostPorts, *snap.Node(1))
	nodeBefore := proto.Clone(nodes[0])
	g := group("svc", &api.TaskSpec{
		Placement: &api.Placement{MaxReplicas: 3},
		Resources: &api.ResourceRequirements{Reservations: &api.Resources{NanoCpus: 1e9, MemoryBytes: gb}},
	}, 4)
	g.Endpoint = hostPortEndpoint(80)
	p := NewPlanner(snap)
	p.Place(g, 1)
	p.Place(g, 2)
	after := fmt.Sprintf("%v %v %v %v", *snap.Node(0), snap.Node(0).ServiceTasks, snap.Node(0).HostPorts, *snap.Node(1))
	if before != after || !proto.Equal(nodeBefore, nodes[0]) {
		t.Errorf("the snapshot changed:\n%s\n%s", before, after)
	}
}

func TestScheduleIgnoresNodeOrder(t *testing.T) {
	nodes := nodesN(30, labels("zone", "x"))
	for i, n := range nodes {
		n.Spec.Annotations.Labels["zone"] = fmt.Sprint(i % 3)
	}
	g := group("svc", spreadSpec("node.labels.zone"), 50)
	want := Schedule(BuildSnapshot(nodes, nil), g, 9)
	shuffled := append([]*api.Node(nil), nodes...)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if got := Schedule(BuildSnapshot(shuffled, nil), g, 9); !reflect.DeepEqual(got, want) {
		t.Error("the placement depends on the order nodes are given in")
	}
}
