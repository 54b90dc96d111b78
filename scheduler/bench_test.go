package scheduler

import (
	"fmt"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

// BenchmarkPlace is the pure placement of one group, without the store:
// what manager/placement's BenchmarkSchedule spends in the scheduler.
func BenchmarkPlace(b *testing.B) {
	for _, bc := range []struct {
		nodes, tasks int
		spread       bool
	}{
		{1000, 100_000, false},
		{100_000, 100_000, false},
		{100_000, 1_000_000, false},
		{100_000, 1_000_000, true},
	} {
		name := fmt.Sprintf("nodes=%d/tasks=%d", bc.nodes, bc.tasks)
		if bc.spread {
			name += "/spread=zone"
		}
		b.Run(name, func(b *testing.B) {
			nodes := make([]*api.Node, bc.nodes)
			for i := range nodes {
				nodes[i] = newNode(fmt.Sprintf("node-%06d", i), labels("zone", fmt.Sprint(i%7)))
			}
			spec := &api.TaskSpec{}
			if bc.spread {
				spec = spreadSpec("node.labels.zone")
			}
			g := group("svc", spec, bc.tasks)
			snap := BuildSnapshot(nodes, nil)
			seed := Seed(g)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if r := Schedule(snap, g, seed); r.Placed != bc.tasks {
					b.Fatalf("placed %d", r.Placed)
				}
			}
			b.ReportMetric(float64(bc.tasks)*float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
	}
}
