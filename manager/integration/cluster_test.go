package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

func replicated(name string, n uint64) *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "registry.test:5000/app:v1"}},
		Mode:        &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: n}}},
	}
}

func (c *Cluster) create(spec *api.ServiceSpec) *api.Service {
	c.t.Helper()
	resp, err := c.Control().CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		c.t.Fatalf("create %s: %v", spec.Annotations.Name, err)
	}
	return resp.Service
}

func (c *Cluster) scale(id string, n uint64) {
	c.t.Helper()
	c.WaitFor(10*time.Second, "scale", func() error {
		cc := c.Control()
		g, err := cc.GetService(context.Background(), &api.GetServiceRequest{ServiceId: id})
		if err != nil {
			return err
		}
		spec := g.Service.Spec
		spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: n}}}
		_, err = cc.UpdateService(context.Background(), &api.UpdateServiceRequest{ServiceId: id, Version: g.Service.Meta.Version, Spec: spec})
		return err
	})
}

// checkNoDuplicates fails when a task ID runs on two live nodes, or a slot
// of the service has two running tasks.
func (c *Cluster) checkNoDuplicates(serviceID string) {
	c.t.Helper()
	where := map[string]string{}
	for _, a := range c.Agents {
		if !a.Alive() {
			continue
		}
		tasks, err := c.Tasks(serviceID)
		if err != nil {
			c.t.Fatal(err)
		}
		for _, t := range tasks {
			if a.Exec.IsRunning(t.Id) {
				if other, dup := where[t.Id]; dup {
					c.t.Fatalf("task %s runs on %s and %s", t.Id, other, a.Hostname)
				}
				where[t.Id] = a.Hostname
			}
		}
	}
	tasks, err := c.Tasks(serviceID)
	if err != nil {
		c.t.Fatal(err)
	}
	slots := map[uint64]string{}
	for _, t := range tasks {
		if t.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING && t.DesiredState == api.TaskState_TASK_STATE_RUNNING {
			if other, dup := slots[t.Slot]; dup {
				c.t.Fatalf("slot %d has two running tasks: %s and %s", t.Slot, other, t.Id)
			}
			slots[t.Slot] = t.Id
		}
	}
}

func TestCreateScaleRemove(t *testing.T) {
	c := Start(t, Options{Managers: 3, Agents: 20, HeartbeatPeriod: 300 * time.Millisecond})
	svc := c.create(replicated("web", 40))
	c.WaitRunning(svc.Id, 40, 30*time.Second)
	// Spread: fewest tasks of the service first, so 2 per node.
	for _, a := range c.Agents {
		if n := a.Exec.Running(); n != 2 {
			t.Fatalf("%s runs %d tasks, want 2 (spread)", a.Hostname, n)
		}
	}
	c.scale(svc.Id, 60)
	c.WaitRunning(svc.Id, 60, 30*time.Second)
	c.scale(svc.Id, 10)
	c.WaitRunning(svc.Id, 10, 30*time.Second)
	c.WaitFor(30*time.Second, "surplus containers stopped", func() error {
		total := 0
		for _, a := range c.Agents {
			total += a.Exec.Running()
		}
		if total != 10 {
			return fmt.Errorf("%d containers running", total)
		}
		return nil
	})
	c.checkNoDuplicates(svc.Id)
	if _, err := c.Control().RemoveService(context.Background(), &api.RemoveServiceRequest{ServiceId: svc.Id}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(30*time.Second, "all containers stopped after rm", func() error {
		total := 0
		for _, a := range c.Agents {
			total += a.Exec.Running()
		}
		if total != 0 {
			return fmt.Errorf("%d containers still running", total)
		}
		return nil
	})
}

func TestKilledAgentsTasksMoveElsewhere(t *testing.T) {
	const period = 300 * time.Millisecond
	c := Start(t, Options{Managers: 3, Agents: 20, HeartbeatPeriod: period})
	svc := c.create(replicated("web", 40))
	c.WaitRunning(svc.Id, 40, 30*time.Second)
	victim := c.Agents[3]
	var lost []string
	tasks, _ := c.Tasks(svc.Id)
	for _, tk := range tasks {
		if tk.NodeId == victim.ID && tk.DesiredState == api.TaskState_TASK_STATE_RUNNING {
			lost = append(lost, tk.Id)
		}
	}
	if len(lost) == 0 {
		t.Fatal("victim runs no task")
	}
	killed := time.Now()
	victim.Kill()
	// The bound: heartbeat grace (3 periods) + 5 s.
	c.WaitFor(3*period+5*time.Second, "replacements running elsewhere", func() error {
		tasks, err := c.Tasks(svc.Id)
		if err != nil {
			return err
		}
		running := 0
		for _, tk := range tasks {
			if tk.NodeId != victim.ID && tk.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING && tk.DesiredState == api.TaskState_TASK_STATE_RUNNING {
				running++
			}
		}
		if running != 40 {
			return fmt.Errorf("%d running on live nodes", running)
		}
		return nil
	})
	t.Logf("tasks of a killed node running elsewhere %v after the kill (heartbeat period %v)", time.Since(killed), period)
	c.checkNoDuplicates(svc.Id)
}

func TestLeaderKilledMidScale(t *testing.T) {
	c := Start(t, Options{Managers: 3, Agents: 20, HeartbeatPeriod: 300 * time.Millisecond})
	svc := c.create(replicated("web", 20))
	c.WaitRunning(svc.Id, 20, 30*time.Second)
	c.scale(svc.Id, 200)
	leader := c.Managers.WaitForLeader(5 * time.Second)
	leader.Stop()
	for i, m := range c.Managers.Managers {
		if m == leader {
			c.Managers.Managers[i] = nil
		}
	}
	c.WaitRunning(svc.Id, 200, 60*time.Second)
	c.checkNoDuplicates(svc.Id)
	// Every task started at most once anywhere.
	for _, a := range c.Agents {
		tasks, _ := c.Tasks(svc.Id)
		for _, tk := range tasks {
			if n := a.Exec.Starts(tk.Id); n > 1 {
				t.Fatalf("task %s started %d times on %s", tk.Id, n, a.Hostname)
			}
		}
	}
}

func TestAgentRestartResumesWithoutDuplicates(t *testing.T) {
	c := Start(t, Options{Managers: 3, Agents: 5, HeartbeatPeriod: 300 * time.Millisecond})
	svc := c.create(replicated("web", 10))
	c.WaitRunning(svc.Id, 10, 30*time.Second)
	a := c.Agents[0]
	before, _ := c.Tasks(svc.Id)
	starts := a.Exec.TotalStarts()
	a.Restart()
	// Give the restarted agent time to report, then the set is unchanged.
	c.WaitFor(10*time.Second, "restarted agent reports", func() error {
		tasks, err := c.Tasks(svc.Id)
		if err != nil {
			return err
		}
		if Running(tasks) != 10 {
			return fmt.Errorf("%d running", Running(tasks))
		}
		return nil
	})
	after, _ := c.Tasks(svc.Id)
	ids := func(ts []*api.Task) map[string]bool {
		m := map[string]bool{}
		for _, tk := range ts {
			if tk.DesiredState == api.TaskState_TASK_STATE_RUNNING {
				m[tk.Id] = true
			}
		}
		return m
	}
	b, af := ids(before), ids(after)
	for id := range b {
		if !af[id] {
			t.Fatalf("task %s no longer wanted after an agent restart", id)
		}
	}
	if len(af) != len(b) {
		t.Fatalf("%d tasks wanted after restart, %d before", len(af), len(b))
	}
	if got := a.Exec.TotalStarts(); got != starts {
		t.Fatalf("restarted agent started %d new containers", got-starts)
	}
}

// A node that was down comes back: the tasks it ran were replaced while
// it was away, so its agent stops them and exactly the desired count runs.
func TestReturningNodeStopsStaleTasks(t *testing.T) {
	const period = 300 * time.Millisecond
	c := Start(t, Options{Managers: 3, Agents: 6, HeartbeatPeriod: period})
	svc := c.create(replicated("web", 12))
	c.WaitRunning(svc.Id, 12, 30*time.Second)
	victim := c.Agents[2]
	if victim.Exec.Running() == 0 {
		t.Fatal("victim runs no task")
	}
	victim.Stop() // partitioned: its containers keep running
	c.WaitFor(3*period+5*time.Second, "replacements running on the other nodes", func() error {
		tasks, err := c.Tasks(svc.Id)
		if err != nil {
			return err
		}
		n := 0
		for _, tk := range tasks {
			if tk.NodeId != victim.ID && tk.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING && tk.DesiredState == api.TaskState_TASK_STATE_RUNNING {
				n++
			}
		}
		if n != 12 {
			return fmt.Errorf("%d running elsewhere", n)
		}
		return nil
	})
	victim.Restart() // heals: same state dir, same containers
	c.WaitFor(10*time.Second, "stale tasks stopped on the returning node", func() error {
		if n := victim.Exec.Running(); n != 0 {
			return fmt.Errorf("%d stale containers still running", n)
		}
		return nil
	})
	total := 0
	for _, a := range c.Agents {
		total += a.Exec.Running()
	}
	if total != 12 {
		t.Fatalf("%d containers run after the node returned, want 12", total)
	}
	c.checkNoDuplicates(svc.Id)
}
