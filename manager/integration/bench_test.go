package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoalhq/shoal/manager"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// BenchmarkConverge measures a service create of R replicas on N simulated
// nodes (zero start delay) until every task is RUNNING in the store,
// through real gRPC and Raft over mutual TLS with three managers.
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

// BenchmarkAgentsReconnect measures how long N agents take to resume
// after the leader stops: from the old leader's Stop to every agent
// having its assignment stream open on the new leader (so each has
// reconnected, with its TLS handshakes, sent a heartbeat and been sent
// its assignments). Three managers, real gRPC and Raft over mutual TLS on
// loopback, agents with the simulated executor and in-memory state, a
// heartbeat period of 5 s. Each iteration starts a fresh cluster (not
// timed).
func BenchmarkAgentsReconnect(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("managers=3/agents=%d", n), func(b *testing.B) {
			var elect, resume time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c := Start(b, Options{Managers: 3, Agents: n, InMemoryAgents: true, HeartbeatPeriod: 5 * time.Second})
				old := c.Managers.WaitForLeader(10 * time.Second)
				waitStreaming(b, c, old, n)
				b.StartTimer()
				start := time.Now()
				old.Stop()
				var next *manager.TestManager
				c.WaitFor(30*time.Second, "a new leader", func() error {
					if next = c.Managers.Leader(); next == nil || next == old {
						return fmt.Errorf("no new leader")
					}
					return nil
				})
				elect += time.Since(start)
				waitStreaming(b, c, next, n)
				resume += time.Since(start)
				b.StopTimer()
				c.stop()
				c.Managers.Stop()
			}
			b.ReportMetric(elect.Seconds()/float64(b.N), "s/elect")
			b.ReportMetric(resume.Seconds()/float64(b.N), "s/resume")
		})
	}
}

// waitStreaming waits until n nodes stream from m's dispatcher.
func waitStreaming(b *testing.B, c *Cluster, m *manager.TestManager, n int) {
	c.WaitFor(2*time.Minute, fmt.Sprintf("%d agents streaming", n), func() error {
		if got := m.StreamingNodes(); got < n {
			return fmt.Errorf("%d of %d streaming", got, n)
		}
		return nil
	})
}
