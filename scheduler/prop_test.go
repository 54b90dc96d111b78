package scheduler

import (
	"fmt"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/shoalhq/shoal/proto/api"
)

// drawNodes draws up to 12 nodes of varied state, labels, platform and
// resources.
func drawNodes(t *rapid.T) []*api.Node {
	n := rapid.IntRange(0, 12).Draw(t, "nodes")
	out := make([]*api.Node, n)
	for i := range out {
		var opts []nodeOpt
		if rapid.IntRange(0, 4).Draw(t, "down") == 0 {
			opts = append(opts, state(api.NodeState_NODE_STATE_DOWN))
		}
		opts = append(opts, availability(rapid.SampledFrom([]api.NodeAvailability{
			api.NodeAvailability_NODE_AVAILABILITY_ACTIVE, api.NodeAvailability_NODE_AVAILABILITY_ACTIVE,
			api.NodeAvailability_NODE_AVAILABILITY_ACTIVE, api.NodeAvailability_NODE_AVAILABILITY_PAUSE,
			api.NodeAvailability_NODE_AVAILABILITY_DRAIN,
		}).Draw(t, "availability")))
		if z := rapid.SampledFrom([]string{"a", "b", "c", ""}).Draw(t, "zone"); z != "" {
			opts = append(opts, labels("zone", z))
		}
		if rapid.Bool().Draw(t, "manager") {
			opts = append(opts, manager())
		}
		opts = append(opts, platform(rapid.SampledFrom([]string{"linux", "windows"}).Draw(t, "os"),
			rapid.SampledFrom([]string{"amd64", "arm64"}).Draw(t, "arch")))
		opts = append(opts, resources(rapid.SampledFrom([]int64{0, 2e9, 4e9}).Draw(t, "cpu"),
			rapid.SampledFrom([]int64{0, 2 * gb, 4 * gb}).Draw(t, "mem")))
		out[i] = newNode(fmt.Sprintf("node-%02d", i), opts...)
	}
	return out
}

// drawLive draws tasks running on the nodes, of svc and another service.
func drawLive(t *rapid.T, nodes []*api.Node) []*api.Task {
	var out []*api.Task
	for _, n := range nodes {
		for j := range rapid.IntRange(0, 3).Draw(t, "live") {
			svc := rapid.SampledFrom([]string{"svc", "other"}).Draw(t, "service")
			task := reserving(liveTask(fmt.Sprintf("%s-live%d", n.Id, j), svc, n.Id),
				rapid.SampledFrom([]int64{0, 1e9}).Draw(t, "cpu"), rapid.SampledFrom([]int64{0, gb}).Draw(t, "mem"))
			if rapid.IntRange(0, 3).Draw(t, "port") == 0 {
				task.Endpoint = hostPortEndpoint(80)
			}
			out = append(out, task)
		}
	}
	return out
}

// drawGroup draws a group of svc with a random spec; some tasks may have
// a preset node.
func drawGroup(t *rapid.T, nodes []*api.Node) *Group {
	pl := &api.Placement{
		Constraints: rapid.SliceOfNDistinct(rapid.SampledFrom([]string{
			"node.labels.zone==a", "node.labels.zone!=b", "node.role==worker", "node.platform.os==linux",
		}), 0, 2, rapid.ID).Draw(t, "constraints"),
		MaxReplicas: rapid.Uint64Range(0, 3).Draw(t, "max"),
	}
	if rapid.Bool().Draw(t, "spread") {
		pl.Preferences = []*api.PlacementPreference{{Spread: "node.labels.zone"}}
	}
	if rapid.IntRange(0, 3).Draw(t, "platforms") == 0 {
		pl.Platforms = []*api.Platform{{Architecture: "amd64"}}
	}
	spec := &api.TaskSpec{Placement: pl, Resources: &api.ResourceRequirements{Reservations: &api.Resources{
		NanoCpus:    rapid.SampledFrom([]int64{0, 0, 1e9}).Draw(t, "cpu"),
		MemoryBytes: rapid.SampledFrom([]int64{0, 0, gb}).Draw(t, "mem"),
	}}}
	g := group("svc", spec, rapid.IntRange(0, 40).Draw(t, "tasks"))
	if rapid.IntRange(0, 3).Draw(t, "ports") == 0 {
		g.Endpoint = hostPortEndpoint(80)
	}
	for _, task := range g.Tasks {
		if len(nodes) > 0 && rapid.IntRange(0, 9).Draw(t, "preset") == 0 {
			task.NodeId = rapid.SampledFrom(append([]string{"gone"}, nodeIDs(nodes)...)).Draw(t, "node")
		}
	}
	return g
}

func nodeIDs(nodes []*api.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Id
	}
	return out
}

// finalSnapshot is the snapshot with the group's placed tasks running.
func finalSnapshot(nodes []*api.Node, live []*api.Task, g *Group, r *Result) *Snapshot {
	all := append([]*api.Task(nil), live...)
	for _, d := range r.Decisions {
		if d.NodeID != "" {
			all = append(all, &api.Task{
				Id: d.TaskID, ServiceId: g.ServiceID, NodeId: d.NodeID, Spec: g.Spec, Endpoint: g.Endpoint,
				Status:       &api.TaskStatus{State: api.TaskState_TASK_STATE_ASSIGNED},
				DesiredState: api.TaskState_TASK_STATE_RUNNING,
			})
		}
	}
	return BuildSnapshot(nodes, all)
}

func TestPropDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := drawNodes(t)
		live := drawLive(t, nodes)
		g := drawGroup(t, nodes)
		seed := rapid.Uint64().Draw(t, "seed")
		first := Schedule(BuildSnapshot(nodes, live), g, seed)
		if again := Schedule(BuildSnapshot(nodes, live), g, seed); !reflect.DeepEqual(first, again) {
			t.Fatalf("same snapshot and seed, different placement:\n%+v\n%+v", first, again)
		}
		perm := rapid.Permutation(nodes).Draw(t, "order")
		if shuffled := Schedule(BuildSnapshot(perm, live), g, seed); !reflect.DeepEqual(first, shuffled) {
			t.Fatalf("same nodes in another order, different placement")
		}
	})
}

func TestPropPlacementsAreValid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := drawNodes(t)
		live := drawLive(t, nodes)
		g := drawGroup(t, nodes)
		before := BuildSnapshot(nodes, live)
		r := Schedule(before, g, rapid.Uint64().Draw(t, "seed"))
		spec, err := NewSpec(g.ServiceID, g.Spec, g.Endpoint)
		if err != nil {
			t.Fatal(err)
		}

		// Every task is either placed or has a reason, never both.
		if len(r.Decisions) != len(g.Tasks) {
			t.Fatalf("%d decisions for %d tasks", len(r.Decisions), len(g.Tasks))
		}
		placedCount := 0
		for i, d := range r.Decisions {
			if d.TaskID != g.Tasks[i].Id {
				t.Fatalf("decision %d is for %s, task is %s", i, d.TaskID, g.Tasks[i].Id)
			}
			if (d.NodeID == "") == (d.Reason == "") {
				t.Fatalf("decision %+v has both a node and a reason, or neither", d)
			}
			if d.NodeID != "" {
				placedCount++
			}
			if pre := g.Tasks[i].NodeId; pre != "" && d.NodeID != "" && d.NodeID != pre {
				t.Fatalf("task %s preset on %s placed on %s", d.TaskID, pre, d.NodeID)
			}
		}
		if placedCount != r.Placed {
			t.Fatalf("Placed = %d, counted %d", r.Placed, placedCount)
		}

		placed := perNode(r)
		for id, c := range placed {
			n, _ := before.Find(id)
			// Placed nodes pass every filter that depends on the node.
			for _, f := range Pipeline(spec) {
				if _, dynamic := f.(capacityFilter); !dynamic && !f.Check(spec, n) {
					t.Fatalf("%s placed on %s, which fails %T", fmt.Sprint(c), id, f)
				}
			}
			// And had room for what it got.
			if spec.MaxReplicas > 0 && uint64(n.ServiceTasks["svc"]+c) > spec.MaxReplicas {
				t.Fatalf("%s runs %d + %d of svc, max replicas %d", id, n.ServiceTasks["svc"], c, spec.MaxReplicas)
			}
			res := n.Node.GetDescription().GetResources()
			if spec.CPU > 0 && n.ReservedCPU+int64(c)*spec.CPU > res.GetNanoCpus() {
				t.Fatalf("%s: CPU %d reserved + %d×%d > %d", id, n.ReservedCPU, c, spec.CPU, res.GetNanoCpus())
			}
			if spec.Memory > 0 && n.ReservedMemory+int64(c)*spec.Memory > res.GetMemoryBytes() {
				t.Fatalf("%s: memory %d reserved + %d×%d > %d", id, n.ReservedMemory, c, spec.Memory, res.GetMemoryBytes())
			}
			if len(spec.HostPorts) > 0 && (c > 1 || n.HostPorts[spec.HostPorts[0]] > 0) {
				t.Fatalf("%s: %d tasks binding %v, %d live ones already", id, c, spec.HostPorts[0], n.HostPorts[spec.HostPorts[0]])
			}
		}

		// A task without a preset node is left out only when no node
		// can take one more.
		after := finalSnapshot(nodes, live, g, r)
		for i, d := range r.Decisions {
			if d.NodeID != "" || g.Tasks[i].NodeId != "" {
				continue
			}
			for j := range after.Len() {
				if why := CheckNode(spec, after.Node(j)); why == "" {
					t.Fatalf("task %s left out (%s) but %s has room", d.TaskID, d.Reason, after.Node(j).Node.Id)
				}
			}
		}
	})
}

func TestPropSpreadEvenOverEqualZones(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		zones := rapid.IntRange(1, 5).Draw(t, "zones")
		perZone := rapid.IntRange(1, 6).Draw(t, "per zone")
		var nodes []*api.Node
		for z := range zones {
			for i := range perZone {
				nodes = append(nodes, newNode(fmt.Sprintf("z%d-n%d", z, i), labels("zone", fmt.Sprint(z))))
			}
		}
		spec := spreadSpec("node.labels.zone")
		spec.Placement.MaxReplicas = rapid.Uint64Range(0, 3).Draw(t, "max")
		g := group("svc", spec, rapid.IntRange(0, 100).Draw(t, "tasks"))
		r := Schedule(BuildSnapshot(nodes, nil), g, rapid.Uint64().Draw(t, "seed"))
		counts := zoneCounts(nodes, r)
		lo, hi := len(g.Tasks), 0
		for z := range zones {
			c := counts[fmt.Sprint(z)]
			lo, hi = min(lo, c), max(hi, c)
		}
		if hi-lo > 1 {
			t.Fatalf("zone counts %v differ by %d", counts, hi-lo)
		}
		// All fit unless max replicas caps them.
		want := len(g.Tasks)
		if m := spec.Placement.MaxReplicas; m > 0 {
			want = min(want, int(m)*len(nodes))
		}
		if r.Placed != want {
			t.Fatalf("placed %d, want %d", r.Placed, want)
		}
	})
}
