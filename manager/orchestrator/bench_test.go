package orchestrator

import (
	"fmt"
	"testing"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// largeService returns a service of n running tasks spread over 100
// nodes, one node drained and one down, with a dead task of history in
// every tenth slot.
func largeService(n int) ([]*api.Task, []*api.Node) {
	var nodes []*api.Node
	for i := range 100 {
		var opts []nodeOpt
		switch i {
		case 0:
			opts = append(opts, isDrained)
		case 1:
			opts = append(opts, isDown)
		}
		nodes = append(nodes, node(fmt.Sprintf("n%03d", i), opts...))
	}
	svc := replicatedService("s", uint64(n))
	var tasks []*api.Task
	for i := range n {
		slot := uint64(i + 1)
		tasks = append(tasks, running(fmt.Sprintf("t%06d", i), svc, slot, nodes[i%100].GetId(), time.Duration(n-i)*time.Second))
		if i%10 == 0 {
			tasks = append(tasks, task(fmt.Sprintf("h%06d", i), svc, slot, nodes[i%100].GetId(), stateFailed, stateShutdown, t0.Add(-time.Hour), t0.Add(-time.Hour)))
		}
	}
	return tasks, nodes
}

// BenchmarkComputeSteady measures a pass over a large service with some
// work to do (moves off a drained node, replacements of a down node's
// tasks).
func BenchmarkComputeSteady(b *testing.B) {
	tasks, nodes := largeService(10000)
	svc := replicatedService("s", 10000)
	for b.Loop() {
		NewReconciler(Input{ServiceID: "s", Service: svc, Tasks: tasks, Nodes: nodes, Now: t0}).Compute()
	}
}

// BenchmarkComputeScaleDown measures a pass that halves a large service.
func BenchmarkComputeScaleDown(b *testing.B) {
	tasks, nodes := largeService(10000)
	svc := replicatedService("s", 5000)
	for b.Loop() {
		NewReconciler(Input{ServiceID: "s", Service: svc, Tasks: tasks, Nodes: nodes, Now: t0}).Compute()
	}
}

// BenchmarkComputeUpdate measures an update pass over a large service
// whose every task is outdated (parallelism 100, start-first).
func BenchmarkComputeUpdate(b *testing.B) {
	tasks, nodes := largeService(10000)
	svc := replicatedService("s", 10000)
	svc.PreviousSpec = svc.Spec
	svc.Spec = &api.ServiceSpec{Annotations: svc.Spec.GetAnnotations(), Mode: svc.Spec.GetMode(),
		Task:   &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:2"}},
		Update: &api.UpdateConfig{Parallelism: par(100), Order: api.UpdateConfig_ORDER_START_FIRST}}
	svc.SpecVersion = 2
	for b.Loop() {
		NewReconciler(Input{ServiceID: "s", Service: svc, Tasks: tasks, Nodes: nodes, Now: t0}).Compute()
	}
}
