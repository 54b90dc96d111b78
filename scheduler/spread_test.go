package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

func TestWaterfill(t *testing.T) {
	const inf = 1 << 30
	for _, tc := range []struct {
		name               string
		existing, capacity []int
		k                  int
		// want is the exact shares, or nil when a random pick decides;
		// then totals must be within one of each other.
		want []int
	}{
		{"even", []int{0, 0, 0}, []int{inf, inf, inf}, 9, []int{3, 3, 3}},
		{"fill the lowest first", []int{5, 0, 2}, []int{inf, inf, inf}, 4, []int{0, 3, 1}},
		{"up to a common level", []int{5, 0, 2}, []int{inf, inf, inf}, 11, []int{1, 6, 4}},
		{"level, last ones drawn", []int{5, 0, 2}, []int{inf, inf, inf}, 10, nil},
		{"capacity caps a branch", []int{0, 0, 0}, []int{1, inf, inf}, 9, []int{1, 4, 4}},
		{"not enough capacity", []int{0, 0}, []int{2, 3}, 9, []int{2, 3}},
		{"exactly enough", []int{0, 0}, []int{2, 3}, 5, []int{2, 3}},
		{"zero capacity", []int{0, 0}, []int{0, inf}, 3, []int{0, 3}},
		{"remainder drawn", []int{0, 0, 0}, []int{inf, inf, inf}, 4, nil},
	} {
		got := waterfill(tc.existing, tc.capacity, tc.k, rand.New(rand.NewPCG(1, 2)))
		sum := 0
		for _, s := range got {
			sum += s
		}
		capSum := 0
		for _, c := range tc.capacity {
			capSum += c
		}
		if sum != min(tc.k, capSum) {
			t.Errorf("%s: shares %v sum to %d, want %d", tc.name, got, sum, min(tc.k, capSum))
		}
		if tc.want != nil {
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: shares %v, want %v", tc.name, got, tc.want)
			}
			continue
		}
		lo, hi := got[0]+tc.existing[0], got[0]+tc.existing[0]
		for i := range got {
			lo, hi = min(lo, got[i]+tc.existing[i]), max(hi, got[i]+tc.existing[i])
		}
		if hi-lo > 1 {
			t.Errorf("%s: totals differ by %d", tc.name, hi-lo)
		}
	}
}

// zoneCounts counts a result's placements by the zone label of the
// nodes ("-" for nodes without one).
func zoneCounts(nodes []*api.Node, r *Result) map[string]int {
	zone := map[string]string{}
	for _, n := range nodes {
		z, ok := n.GetSpec().GetAnnotations().GetLabels()["zone"]
		if !ok {
			z = "-"
		}
		zone[n.Id] = z
	}
	out := map[string]int{}
	for _, d := range r.Decisions {
		if d.NodeID != "" {
			out[zone[d.NodeID]]++
		}
	}
	return out
}

func spreadSpec(keys ...string) *api.TaskSpec {
	p := &api.Placement{}
	for _, k := range keys {
		p.Preferences = append(p.Preferences, &api.PlacementPreference{Spread: k})
	}
	return &api.TaskSpec{Placement: p}
}

func TestSpreadOverZones(t *testing.T) {
	// Zones of 1, 5 and 2 nodes and one node without the label: the
	// tasks split evenly over the four values, whatever their sizes.
	var nodes []*api.Node
	add := func(zone string, n int) {
		for i := range n {
			var opts []nodeOpt
			if zone != "-" {
				opts = append(opts, labels("zone", zone))
			}
			nodes = append(nodes, newNode(fmt.Sprintf("%s%d", zone, i), opts...))
		}
	}
	add("a", 1)
	add("b", 5)
	add("c", 2)
	add("-", 1)
	r := Schedule(BuildSnapshot(nodes, nil), group("svc", spreadSpec("node.labels.zone"), 12), 1)
	want := map[string]int{"a": 3, "b": 3, "c": 3, "-": 3}
	if got := zoneCounts(nodes, r); !reflect.DeepEqual(got, want) {
		t.Errorf("per zone = %v, want %v", got, want)
	}
	// Within zone b the three tasks go to three different nodes.
	if got := perNode(r); got["b0"]+got["b1"]+got["b2"]+got["b3"]+got["b4"] != 3 || got["a0"] != 3 {
		t.Errorf("per node = %v", got)
	}
}

func TestSpreadCountsExistingTasks(t *testing.T) {
	nodes := []*api.Node{
		newNode("a1", labels("zone", "a")), newNode("a2", labels("zone", "a")),
		newNode("b1", labels("zone", "b")),
	}
	var live []*api.Task
	for i := range 4 {
		live = append(live, liveTask(fmt.Sprintf("old%d", i), "svc", "a1"))
	}
	r := Schedule(BuildSnapshot(nodes, live), group("svc", spreadSpec("node.labels.zone"), 6), 1)
	// a holds 4: b gets 4 to catch up, then one each: a 5, b 5.
	if got, want := zoneCounts(nodes, r), map[string]int{"a": 1, "b": 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("per zone = %v, want %v", got, want)
	}
	// Tasks of another service do not count for the spread.
	var other []*api.Task
	for i := range 4 {
		other = append(other, liveTask(fmt.Sprintf("o%d", i), "other", "a1"))
	}
	r = Schedule(BuildSnapshot(nodes, other), group("svc", spreadSpec("node.labels.zone"), 6), 1)
	if got, want := zoneCounts(nodes, r), map[string]int{"a": 3, "b": 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("per zone with other services' tasks = %v, want %v", got, want)
	}
}

func TestSpreadRespectsCapacity(t *testing.T) {
	// Zone a has one node and max replicas is 2: it takes 2, b the rest.
	nodes := []*api.Node{
		newNode("a1", labels("zone", "a")),
		newNode("b1", labels("zone", "b")), newNode("b2", labels("zone", "b")), newNode("b3", labels("zone", "b")),
	}
	spec := spreadSpec("node.labels.zone")
	spec.Placement.MaxReplicas = 2
	r := Schedule(BuildSnapshot(nodes, nil), group("svc", spec, 8), 1)
	if got, want := zoneCounts(nodes, r), map[string]int{"a": 2, "b": 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("per zone = %v, want %v", got, want)
	}
	if r.Placed != 8 {
		t.Errorf("placed %d of 8", r.Placed)
	}
	// Two more do not fit anywhere.
	r = Schedule(BuildSnapshot(nodes, nil), group("svc", spec, 10), 1)
	if r.Placed != 8 {
		t.Errorf("placed %d of 10, want 8", r.Placed)
	}
	if got, want := reasons(r), []string{"no suitable node (max replicas per node (2) reached on 4 nodes)"}; !reflect.DeepEqual(got, want) {
		t.Errorf("reasons = %q, want %q", got, want)
	}
}

func TestSpreadTwoLevels(t *testing.T) {
	var nodes []*api.Node
	for _, z := range []string{"a", "b"} {
		for _, rack := range []string{"r1", "r2", "r3"} {
			nodes = append(nodes, newNode(z+rack, labels("zone", z), engineLabels("rack", rack)))
		}
	}
	// One more rack in zone a does not draw more tasks to zone a.
	nodes = append(nodes, newNode("ar4", labels("zone", "a"), engineLabels("rack", "r4")))
	r := Schedule(BuildSnapshot(nodes, nil), group("svc", spreadSpec("node.labels.zone", "engine.labels.rack"), 12), 5)
	if got, want := zoneCounts(nodes, r), map[string]int{"a": 6, "b": 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("per zone = %v, want %v", got, want)
	}
	counts := perNode(r)
	for _, n := range []string{"br1", "br2", "br3"} {
		if counts[n] != 2 {
			t.Errorf("%s got %d, want 2 (zone b's 6 over 3 racks)", n, counts[n])
		}
	}
	for _, n := range []string{"ar1", "ar2", "ar3", "ar4"} {
		if c := counts[n]; c < 1 || c > 2 {
			t.Errorf("%s got %d, want 1 or 2 (zone a's 6 over 4 racks)", n, c)
		}
	}
}
