package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/deploy/lab"
	"github.com/shoalhq/shoal/proto/api"
)

// downBound is how long after a host dies its node may still be READY:
// the heartbeat grace, plus a period of slack.
const downBound = labHeartbeat*heartbeatGrace + labHeartbeat

// TestHostsSpreadAndDrain deploys 6 replicas on 5 hosts (3 managers, 2
// workers): every host runs some, none more than one above another; the
// containers match the store. Draining a host moves its tasks away.
func TestHostsSpreadAndDrain(t *testing.T) {
	c := newCluster(t, 5, 3)
	svc := c.createService("web", "web:v1", 6)
	tasks := c.waitRunning(svc.GetId(), 6, 60*time.Second)
	counts := c.perHost(tasks)
	for _, h := range c.Hosts {
		if n := counts[h.Name]; n < 1 || n > 2 {
			t.Errorf("%s runs %d tasks, want 1 or 2 (spread): %v", h.Name, n, counts)
		}
	}
	poll(t, 10*time.Second, "containers match the store", func() error { return c.checkContainersMatch(tasks) })

	drained := c.Host(4)
	start := time.Now()
	if _, err := c.manager().CLI(t.Context(), "node", "update", "--availability", "drain", drained.Name); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "tasks moved off the drained host", func() error {
		ts, err := c.running(svc.GetId())
		if err != nil {
			return err
		}
		if n := c.perHost(ts)[drained.Name]; n != 0 {
			return fmt.Errorf("%s still runs %d", drained.Name, n)
		}
		if len(ts) != 6 {
			return fmt.Errorf("%d running", len(ts))
		}
		if err := checkSlots(ts); err != nil {
			return err
		}
		tasks = ts
		return c.checkContainersMatch(ts)
	})
	t.Logf("fault scenario=drain moved=%s", time.Since(start).Round(time.Millisecond))
	ids, err := c.containers(drained)
	if err != nil || len(ids) != 0 {
		t.Fatalf("drained host runs containers %v (%v)", ids, err)
	}
}

// TestHostsKillWorker powers a worker off: its node goes DOWN within the
// heartbeat grace and its tasks run elsewhere within that + 10 s.
func TestHostsKillWorker(t *testing.T) {
	c := newCluster(t, 4, 1)
	svc := c.createService("web", "web:v1", 6)
	tasks := c.waitRunning(svc.GetId(), 6, 60*time.Second)
	victim := c.Host(4)
	lost := c.perHost(tasks)[victim.Name]
	if lost == 0 {
		t.Fatalf("%s runs no task: %v", victim.Name, c.perHost(tasks))
	}

	start := time.Now()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	c.waitNodeState(victim.Name, api.NodeState_NODE_STATE_DOWN, downBound+5*time.Second)
	down := time.Since(start)
	var replaced time.Duration
	poll(t, downBound+10*time.Second, "replacements running", func() error {
		ts, err := c.running(svc.GetId())
		if err != nil {
			return err
		}
		if n := c.perHost(ts)[victim.Name]; n != 0 {
			return fmt.Errorf("%d tasks still counted on the dead host", n)
		}
		if len(ts) != 6 {
			return fmt.Errorf("%d running", len(ts))
		}
		replaced = time.Since(start)
		return checkSlots(ts)
	})
	t.Logf("fault scenario=kill-worker tasks-lost=%d node-down=%s replacements-running=%s (bound %s)",
		lost, down.Round(time.Millisecond), replaced.Round(time.Millisecond), downBound+10*time.Second)
	if down > downBound+time.Second {
		t.Errorf("node DOWN after %s, more than the heartbeat grace (%s) + 1 s", down, downBound)
	}
	final := c.waitRunning(svc.GetId(), 6, 10*time.Second)
	poll(t, 10*time.Second, "containers match the store", func() error { return c.checkContainersMatch(final) })
}

// TestHostsKillLeaderDuringScale scales 6 → 12 and powers the leader off
// right after the write: a new leader finishes the scale and no slot
// ever runs twice.
func TestHostsKillLeaderDuringScale(t *testing.T) {
	c := newCluster(t, 5, 3)
	svc := c.createService("web", "web:v1", 6)
	c.waitRunning(svc.GetId(), 6, 60*time.Second)
	leader := c.leader()
	if leader == nil {
		t.Fatal("no leader")
	}
	// Scale through the leader, and kill it as soon as the write is
	// committed: the orchestrator and scheduler work happens after.
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	cc, err := leader.Control()
	if err != nil {
		t.Fatal(err)
	}
	cur, err := cc.GetService(ctx, &api.GetServiceRequest{ServiceId: svc.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	spec := proto.Clone(cur.GetService().GetSpec()).(*api.ServiceSpec)
	spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 12}}}
	if _, err := cc.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.GetId(), Version: cur.GetService().GetMeta().GetVersion(), Spec: spec}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}

	// Watch for a slot running twice the whole time.
	var twice error
	var mu sync.Mutex
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if ts, err := c.running(svc.GetId()); err == nil {
				if err := checkSlots(ts); err != nil {
					mu.Lock()
					twice = err
					mu.Unlock()
				}
			}
		}
	}()
	var elected time.Duration
	poll(t, 20*time.Second, "new leader", func() error {
		for _, h := range c.ManagerHosts() {
			if h != leader && c.confirmsLeadership(h) {
				elected = time.Since(start)
				return nil
			}
		}
		return fmt.Errorf("no new leader")
	})
	// 12 run, none of them counted on the dead leader (its node must be
	// DOWN and its tasks replaced).
	var final map[string]*api.Task
	poll(t, downBound+30*time.Second, "12 tasks running on live hosts", func() error {
		ts, err := c.running(svc.GetId())
		if err != nil {
			return err
		}
		if n := c.perHost(ts)[leader.Name]; n != 0 {
			return fmt.Errorf("%d tasks still counted on the dead leader", n)
		}
		if len(ts) != 12 {
			return fmt.Errorf("%d running", len(ts))
		}
		final = ts
		return checkSlots(ts)
	})
	converged := time.Since(start)
	close(stop)
	<-done
	if twice != nil {
		t.Fatal(twice)
	}
	poll(t, 10*time.Second, "containers match the store", func() error { return c.checkContainersMatch(final) })
	t.Logf("fault scenario=kill-leader-during-scale leader-elected=%s scaled-to-12=%s",
		elected.Round(time.Millisecond), converged.Round(time.Millisecond))
}

// TestHostsRestartAllManagers stops every manager's daemon at once and
// starts them again: tasks and containers are untouched.
func TestHostsRestartAllManagers(t *testing.T) {
	c := newCluster(t, 5, 3)
	svc := c.createService("web", "web:v1", 6)
	before := c.waitRunning(svc.GetId(), 6, 60*time.Second)
	poll(t, 10*time.Second, "containers match the store", func() error { return c.checkContainersMatch(before) })
	ctrsBefore, err := c.runningContainers()
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := lab.ForEach(c.ManagerHosts(), (*lab.Host).StopDaemonGracefully); err != nil {
		t.Fatal(err)
	}
	if err := lab.ForEach(c.ManagerHosts(), func(h *lab.Host) error { return h.StartDaemon(t.Context()) }); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(t.Context(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("fault scenario=restart-all-managers cluster-ready=%s", time.Since(start).Round(time.Millisecond))

	after := c.waitRunning(svc.GetId(), 6, 30*time.Second)
	for id := range before {
		if after[id] == nil {
			t.Errorf("task %s no longer running after the restart", id)
		}
	}
	ctrsAfter, err := c.runningContainers()
	if err != nil {
		t.Fatal(err)
	}
	for host, ids := range ctrsBefore {
		for id := range ids {
			if !ctrsAfter[host][id] {
				t.Errorf("container %s on %s gone after the restart", id, host)
			}
		}
	}
	if err := c.checkContainersMatch(after); err != nil {
		t.Fatal(err)
	}
}

// TestHostsPartitionWorker cuts a worker off for 30 s: its tasks are
// replaced elsewhere; after healing, exactly 6 run and the stale ones on
// the healed host are stopped.
func TestHostsPartitionWorker(t *testing.T) {
	c := newCluster(t, 4, 1)
	svc := c.createService("web", "web:v1", 6)
	tasks := c.waitRunning(svc.GetId(), 6, 60*time.Second)
	victim := c.Host(4)
	stale := c.perHost(tasks)[victim.Name]
	if stale == 0 {
		t.Fatalf("%s runs no task: %v", victim.Name, c.perHost(tasks))
	}

	start := time.Now()
	if err := victim.Partition(); err != nil {
		t.Fatal(err)
	}
	c.waitNodeState(victim.Name, api.NodeState_NODE_STATE_DOWN, downBound+5*time.Second)
	down := time.Since(start)
	c.waitRunning(svc.GetId(), 6, downBound+10*time.Second)
	replaced := time.Since(start)
	if ids, err := c.containers(victim); err != nil || len(ids) != stale {
		t.Logf("during the partition %s runs %d containers (%v); it ran %d tasks", victim.Name, len(ids), err, stale)
	}
	if rest := 30*time.Second - time.Since(start); rest > 0 {
		time.Sleep(rest) // the partition lasts 30 s, as asked
	}

	healed := time.Now()
	if err := victim.Heal(); err != nil {
		t.Fatal(err)
	}
	c.waitNodeState(victim.Name, api.NodeState_NODE_STATE_READY, 20*time.Second)
	ready := time.Since(healed)
	var final map[string]*api.Task
	poll(t, 30*time.Second, "exactly 6 running, stale containers stopped", func() error {
		ts, err := c.running(svc.GetId())
		if err != nil {
			return err
		}
		if len(ts) != 6 {
			return fmt.Errorf("%d running", len(ts))
		}
		if err := checkSlots(ts); err != nil {
			return err
		}
		final = ts
		return c.checkContainersMatch(ts)
	})
	t.Logf("fault scenario=partition-worker node-down=%s replacements-running=%s ready-after-heal=%s stale-stopped=%s",
		down.Round(time.Millisecond), replaced.Round(time.Millisecond), ready.Round(time.Millisecond), time.Since(healed).Round(time.Millisecond))
	_ = final
}
