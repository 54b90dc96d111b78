package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// TestRollingUpdateUnderLoad updates web (6 replicas over 3 hosts, with
// a health check) from v1 to v2, 2 at a time, in each order, while a
// client container sends requests through the VIP as fast as they are
// answered: not one fails, the answers move from v1 to v2, start-first
// never runs more than 6 + 2 tasks and stop-first never serves with
// fewer than 6 - 2. The update's duration is logged next to three times
// the start of a single task of v2 (three batches), measured just before.
func TestRollingUpdateUnderLoad(t *testing.T) {
	for _, tc := range []struct{ scenario, order string }{
		{"start-first", "start-first"},
		{"stop-first", "stop-first"},
	} {
		order := tc.order
		t.Run(tc.scenario, func(t *testing.T) {
			c := newCluster(t, 3, 1)
			o := api.UpdateConfig_ORDER_STOP_FIRST
			if order == "start-first" {
				o = api.UpdateConfig_ORDER_START_FIRST
			}
			r := newRig(t, c, rigSpec{clientHost: "h1",
				update: &api.UpdateConfig{Parallelism: proto.Uint64(2), Order: o, Monitor: proto.Int64(int64(time.Second))}})
			v2 := proto.Clone(r.web).(*api.Service)
			v2.Spec.Task.Container.Image = c.ref("web:v2")
			single := c.taskStart(t, v2)

			run, err := r.underLoad(t, tc.scenario, func() error {
				out, err := c.Host(1).CLI(t.Context(), "service", "update", "--wait-timeout", "2m", "--image", c.ref("web:v2"), "web")
				if err != nil {
					return fmt.Errorf("service update: %v\n%s", err, out)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// The command waits for the status, which follows the last
			// monitor period; the rollout itself runs from started_at to
			// completed_at.
			st := c.waitUpdateState(r.web.GetId(), api.UpdateStatus_STATE_COMPLETED, 30*time.Second).GetUpdateStatus()
			t.Logf("rolling-update scenario=%s single-task-start=%s 3x=%s monitor=1s rollout=%s command=%s",
				tc.scenario, single.Round(time.Millisecond), (3 * single).Round(time.Millisecond),
				time.Duration(st.GetCompletedAt()-st.GetStartedAt()).Round(time.Millisecond), run.took.Round(time.Millisecond))
			if run.failed.Load() != 0 || run.sent.Load() < minRequests {
				t.Fatalf("update under load: %s", run.summary())
			}
			if v := run.versions(); v["v1"] == 0 || v["v2"] == 0 {
				t.Fatalf("answers did not move from v1 to v2: %s", run.summary())
			}
			switch {
			case order == "start-first" && run.maxRunning > 6+2:
				t.Fatalf("start-first ran %d tasks at once, more than replicas + parallelism = 8", run.maxRunning)
			case order == "stop-first" && run.minServing < 6-2:
				t.Fatalf("stop-first served with %d tasks, fewer than replicas - parallelism = 4", run.minServing)
			}
			final := c.waitRunning(r.web.GetId(), 6, 30*time.Second)
			for _, tk := range final {
				if !strings.HasSuffix(tk.GetSpec().GetContainer().GetImage(), "web:v2") {
					t.Fatalf("task %s still runs %s", tk.GetId(), tk.GetSpec().GetContainer().GetImage())
				}
			}
		})
	}
}

// TestRollingUpdateHealthRollback updates web to an image whose health
// check never passes, failure action rollback: the new tasks never enter
// the VIP, the update rolls back by itself to v1, not one request fails,
// and the service's update status ends ROLLBACK_COMPLETED saying why.
func TestRollingUpdateHealthRollback(t *testing.T) {
	c := newCluster(t, 3, 1)
	r := newUpdateRig(t, c, &api.UpdateConfig{Parallelism: proto.Uint64(2), Monitor: proto.Int64(int64(2 * time.Second)),
		FailureAction: api.UpdateConfig_FAILURE_ACTION_ROLLBACK}, "h1")
	out, run := r.failingUpdate(t, "health-rollback", c.ref("web:bad"))
	if !strings.Contains(out, "rolled back") || !strings.Contains(out, "unhealthy") {
		t.Fatalf("service update does not say it rolled back because tasks were unhealthy:\n%s", out)
	}
	if run.failed.Load() != 0 || run.sent.Load() < minRequests {
		t.Fatalf("update under load: %s", run.summary())
	}
	if n := run.versions()["bad"]; n != 0 {
		t.Fatalf("%d requests reached the unhealthy version: %s", n, run.summary())
	}
	svc := c.waitUpdateState(r.web.GetId(), api.UpdateStatus_STATE_ROLLBACK_COMPLETED, 60*time.Second)
	if msg := svc.GetUpdateStatus().GetMessage(); !strings.Contains(msg, "unhealthy") {
		t.Fatalf("rollback completed without the reason: %q", msg)
	}
	if img := svc.GetSpec().GetTask().GetContainer().GetImage(); !strings.HasSuffix(img, "web:v1") {
		t.Fatalf("spec after the rollback runs %s, want web:v1", img)
	}
	for _, tk := range c.waitRunning(r.web.GetId(), 6, 60*time.Second) {
		if img := tk.GetSpec().GetContainer().GetImage(); !strings.HasSuffix(img, "web:v1") {
			t.Fatalf("task %s runs %s after the rollback", tk.GetId(), img)
		}
	}
}

// TestRollingUpdateMissingImage updates web to an image the registry
// does not have: the new tasks are REJECTED, the update pauses (failure
// action pause, the default), and the old tasks keep serving: not one
// request fails.
func TestRollingUpdateMissingImage(t *testing.T) {
	c := newCluster(t, 3, 1)
	r := newUpdateRig(t, c, &api.UpdateConfig{Parallelism: proto.Uint64(2), Monitor: proto.Int64(int64(2 * time.Second))}, "h1")
	out, run := r.failingUpdate(t, "missing-image", c.ref("web:missing"))
	if !strings.Contains(out, "paused") || !strings.Contains(out, "WARNING: image "+c.ref("web:missing")+" could not be resolved") {
		t.Fatalf("service update does not warn of the unknown image and say the update paused:\n%s", out)
	}
	if run.failed.Load() != 0 || run.sent.Load() < minRequests {
		t.Fatalf("update under load: %s", run.summary())
	}
	svc := c.waitUpdateState(r.web.GetId(), api.UpdateStatus_STATE_PAUSED, 30*time.Second)
	if msg := svc.GetUpdateStatus().GetMessage(); !strings.Contains(msg, "REJECTED") {
		t.Fatalf("paused without saying a task was rejected: %q", msg)
	}
	ts, err := c.allTasks(r.web.GetId())
	if err != nil {
		t.Fatal(err)
	}
	rejected, servingV1 := 0, 0
	for _, tk := range ts {
		img := tk.GetSpec().GetContainer().GetImage()
		switch {
		case strings.HasSuffix(img, "web:missing") && tk.GetStatus().GetState() == api.TaskState_TASK_STATE_REJECTED:
			rejected++
		case strings.HasSuffix(img, "web:v1") && tk.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING &&
			tk.GetDesiredState() == api.TaskState_TASK_STATE_RUNNING:
			servingV1++
		}
	}
	if rejected == 0 || servingV1 < 6-2 {
		t.Fatalf("%d tasks of the missing image rejected, %d of v1 serving; want some and at least 4", rejected, servingV1)
	}
	// Still serving, after the pause.
	if _, err := getEcho(httpClientIn(r.clientNS, 2*time.Second), r.url); err != nil {
		t.Fatalf("web does not answer while the update is paused: %v", err)
	}
}

// TestRollingUpdateLeaderKilled powers the leader off in the middle of an
// update of web (tasks on the two workers, parallelism 1): a new leader
// resumes the update where it was and completes it, no slot is updated
// twice, and not one request through the VIP fails.
func TestRollingUpdateLeaderKilled(t *testing.T) {
	c := newCluster(t, 5, 3)
	r := newUpdateRig(t, c, &api.UpdateConfig{Parallelism: proto.Uint64(1), Monitor: proto.Int64(int64(time.Second)),
		Order: api.UpdateConfig_ORDER_START_FIRST}, "h4", "node.role==worker")
	var killed, elected time.Duration
	run, err := r.underLoad(t, "leader-killed", func() error {
		start := time.Now()
		if out, err := c.Host(1).CLI(t.Context(), "service", "update", "-d", "--image", c.ref("web:v2"), "web"); err != nil {
			return fmt.Errorf("service update: %v\n%s", err, out)
		}
		version := c.service(r.web.GetId()).GetSpecVersion()
		// Two slots done, the third under way: kill the leader.
		poll(t, 60*time.Second, "two slots updated", func() error {
			ts, err := c.running(r.web.GetId())
			if err != nil {
				return err
			}
			n := 0
			for _, tk := range ts {
				if tk.GetSpecVersion() == version {
					n++
				}
			}
			if n < 2 {
				return fmt.Errorf("%d slots updated", n)
			}
			return nil
		})
		leader := c.leader()
		if leader == nil {
			return fmt.Errorf("no leader")
		}
		if err := leader.Kill(); err != nil {
			return err
		}
		killed = time.Since(start)
		poll(t, 20*time.Second, "new leader", func() error {
			for _, h := range c.ManagerHosts() {
				if h != leader && c.confirmsLeadership(h) {
					elected = time.Since(start) - killed
					return nil
				}
			}
			return fmt.Errorf("no new leader")
		})
		c.waitUpdateState(r.web.GetId(), api.UpdateStatus_STATE_COMPLETED, 90*time.Second)
		return nil
	})
	t.Logf("rolling-update scenario=leader-killed killed-after=%s new-leader-in=%s", killed.Round(time.Millisecond), elected.Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if run.failed.Load() != 0 || run.sent.Load() < minRequests {
		t.Fatalf("update under load: %s", run.summary())
	}
	svc := c.service(r.web.GetId())
	ts, err := c.allTasks(r.web.GetId())
	if err != nil {
		t.Fatal(err)
	}
	perSlot := map[uint64]int{}
	for _, tk := range ts {
		if tk.GetSpecVersion() == svc.GetSpecVersion() {
			perSlot[tk.GetSlot()]++
		}
	}
	for slot, n := range perSlot {
		if n != 1 {
			t.Fatalf("slot %d got %d tasks of the new spec: updated more than once (%v)", slot, n, perSlot)
		}
	}
	for _, tk := range c.waitRunning(r.web.GetId(), 6, 30*time.Second) {
		if tk.GetSpecVersion() != svc.GetSpecVersion() || !strings.HasSuffix(tk.GetSpec().GetContainer().GetImage(), "web:v2") {
			t.Fatalf("task %s of slot %d runs spec version %d (%s) after the update", tk.GetId(), tk.GetSlot(), tk.GetSpecVersion(), tk.GetSpec().GetContainer().GetImage())
		}
	}
}

// TestRollingUpdateGlobalUnderLoad updates a global web (one task on
// each of 3 hosts) from v1 to v2, one node at a time, start-first, under
// load: not one request fails, each node is replaced once, and never
// more than 3 + 1 tasks run.
func TestRollingUpdateGlobalUnderLoad(t *testing.T) {
	c := newCluster(t, 3, 1)
	r := newRig(t, c, rigSpec{mode: &api.ServiceMode{Mode: &api.ServiceMode_Global{Global: &api.Global{}}}, tasks: 3, clientHost: "h1",
		update: &api.UpdateConfig{Parallelism: proto.Uint64(1), Order: api.UpdateConfig_ORDER_START_FIRST, Monitor: proto.Int64(int64(time.Second))}})
	run, err := r.underLoad(t, "global-start-first", func() error {
		out, err := c.Host(1).CLI(t.Context(), "service", "update", "--wait-timeout", "2m", "--image", c.ref("web:v2"), "web")
		if err != nil {
			return fmt.Errorf("service update: %v\n%s", err, out)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if run.failed.Load() != 0 || run.sent.Load() < minRequests {
		t.Fatalf("update under load: %s", run.summary())
	}
	if v := run.versions(); v["v1"] == 0 || v["v2"] == 0 {
		t.Fatalf("answers did not move from v1 to v2: %s", run.summary())
	}
	if run.maxRunning > 3+1 {
		t.Fatalf("start-first ran %d tasks at once, more than nodes + parallelism = 4", run.maxRunning)
	}
	svc := c.waitUpdateState(r.web.GetId(), api.UpdateStatus_STATE_COMPLETED, 30*time.Second)
	ts, err := c.allTasks(r.web.GetId())
	if err != nil {
		t.Fatal(err)
	}
	perNode := map[string]int{}
	for _, tk := range ts {
		if tk.GetSpecVersion() == svc.GetSpecVersion() {
			perNode[tk.GetNodeId()]++
		}
	}
	if len(perNode) != 3 {
		t.Fatalf("new-spec tasks on %d nodes, want 3: %v", len(perNode), perNode)
	}
	for node, n := range perNode {
		if n != 1 {
			t.Fatalf("node %s got %d tasks of the new spec, want 1", node, n)
		}
	}
}
