package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// BenchmarkConverge measures a service create of R replicas on N simulated
// nodes (zero start delay) until every task is RUNNING in the store,
// through real gRPC and Raft with three managers.
func BenchmarkConverge(b *testing.B) {
	for _, bc := range []struct{ nodes, replicas int }{{1000, 10000}} {
		b.Run(fmt.Sprintf("managers=3/nodes=%d/replicas=%d", bc.nodes, bc.replicas), func(b *testing.B) {
			c := Start(b, Options{Managers: 3, Agents: bc.nodes, InMemoryAgents: true, HeartbeatPeriod: 5 * time.Second})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				svc := c.create(replicated(fmt.Sprintf("web-%d", i), uint64(bc.replicas)))
				leader := c.Managers.WaitForLeader(5 * time.Second)
				waitStoreRunning(b, leader.Store(), svc.Id, bc.replicas, 5*time.Minute)
				b.ReportMetric(time.Since(start).Seconds(), "s/converge")
				b.StopTimer()
				if _, err := c.Control().RemoveService(context.Background(), &api.RemoveServiceRequest{ServiceId: svc.Id}); err != nil {
					b.Fatal(err)
				}
				waitStoreRunning(b, leader.Store(), svc.Id, 0, 5*time.Minute)
				b.StartTimer()
			}
		})
	}
}

// waitStoreRunning polls a manager's store until n tasks of the service
// run (status and desired state RUNNING).
func waitStoreRunning(b *testing.B, s *store.MemoryStore, serviceID string, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		running := 0
		s.View(func(tx store.ReadTx) {
			for _, t := range tx.FindTasks(store.ByServiceID(serviceID)) {
				if t.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING && t.DesiredState == api.TaskState_TASK_STATE_RUNNING {
					running++
				}
			}
		})
		if running == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d tasks running after %s", running, n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
