package orchestrator

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// t0 is the instant the pure tests decide at.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func ns(d time.Duration) *int64 { v := int64(d); return &v }

// Service builders.

func service(id string, mode *api.ServiceMode) *api.Service {
	return &api.Service{
		Id:          id,
		Meta:        &api.Meta{Version: 10},
		SpecVersion: 1,
		Spec: &api.ServiceSpec{
			Annotations: &api.Annotations{Name: "svc-" + id},
			Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:1"}},
			Mode:        mode,
		},
	}
}

func replicatedService(id string, replicas uint64) *api.Service {
	return service(id, &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: replicas}}})
}

func globalService(id string) *api.Service {
	return service(id, &api.ServiceMode{Mode: &api.ServiceMode_Global{Global: &api.Global{}}})
}

func replicatedJob(id string, maxConcurrent, total uint64) *api.Service {
	return service(id, &api.ServiceMode{Mode: &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: maxConcurrent, TotalCompletions: total}}})
}

func globalJob(id string) *api.Service {
	return service(id, &api.ServiceMode{Mode: &api.ServiceMode_GlobalJob{GlobalJob: &api.GlobalJob{}}})
}

// withRestart sets the service's restart policy and returns the service.
func withRestart(s *api.Service, p *api.RestartPolicy) *api.Service {
	s.Spec.Task.Restart = p
	return s
}

// withUpdate sets the service's update order and parallelism.
func withUpdate(s *api.Service, startFirst bool, parallelism uint64) *api.Service {
	u := &api.UpdateConfig{Parallelism: &parallelism}
	if startFirst {
		u.Order = api.UpdateConfig_ORDER_START_FIRST
	}
	s.Spec.Update = u
	return s
}

// Node builders.

type nodeOpt func(*api.Node)

func node(id string, opts ...nodeOpt) *api.Node {
	n := &api.Node{
		Id:          id,
		Meta:        &api.Meta{Version: 1},
		Spec:        &api.NodeSpec{Annotations: &api.Annotations{Labels: map[string]string{}}},
		Description: &api.NodeDescription{Hostname: "host-" + id},
		Status:      &api.NodeStatus{State: api.NodeState_NODE_STATE_READY},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func isDown(n *api.Node)    { n.Status.State = api.NodeState_NODE_STATE_DOWN }
func isDrained(n *api.Node) { n.Spec.Availability = api.NodeAvailability_NODE_AVAILABILITY_DRAIN }
func isPaused(n *api.Node)  { n.Spec.Availability = api.NodeAvailability_NODE_AVAILABILITY_PAUSE }
func isManager(n *api.Node) { n.Role = api.NodeRole_NODE_ROLE_MANAGER }
func label(k, v string) nodeOpt {
	return func(n *api.Node) { n.Spec.Annotations.Labels[k] = v }
}

// task returns a task of svc in slot on node, with the given state and
// desired state, created at created and last changed at changed.
func task(id string, svc *api.Service, slot uint64, nodeID string, state, desired api.TaskState, created, changed time.Time) *api.Task {
	return &api.Task{
		Id:           id,
		Meta:         &api.Meta{Version: 5, CreatedAt: created.UnixNano(), UpdatedAt: changed.UnixNano()},
		ServiceId:    svc.GetId(),
		Slot:         slot,
		NodeId:       nodeID,
		Spec:         svc.GetSpec().GetTask(),
		SpecVersion:  svc.GetSpecVersion(),
		Status:       &api.TaskStatus{State: state, Timestamp: changed.UnixNano()},
		DesiredState: desired,
	}
}

// running returns a RUNNING task desired RUNNING, created and started d
// before t0.
func running(id string, svc *api.Service, slot uint64, nodeID string, d time.Duration) *api.Task {
	return task(id, svc, slot, nodeID, stateRunning, stateRunning, t0.Add(-d), t0.Add(-d))
}

// compute runs the reconciler at t0.
func compute(svc *api.Service, tasks []*api.Task, nodes []*api.Node, cluster *api.Cluster) *Plan {
	return computeAt(t0, svc, tasks, nodes, cluster)
}

func computeAt(now time.Time, svc *api.Service, tasks []*api.Task, nodes []*api.Node, cluster *api.Cluster) *Plan {
	id := svc.GetId()
	if svc == nil && len(tasks) > 0 {
		id = tasks[0].GetServiceId()
	}
	return NewReconciler(Input{ServiceID: id, Service: svc, Tasks: tasks, Nodes: nodes, Cluster: cluster, Now: now}).Compute()
}

// summary renders a plan's actions as short sorted lines, independent of
// the new tasks' (absent) IDs: "create 3 RUNNING", "create @n1 READY",
// "raise t1 SHUTDOWN", "orphan+raise t1 SHUTDOWN", "delete t1".
func summary(p *Plan) []string {
	var out []string
	for _, a := range p.Actions {
		switch a.Kind {
		case ActionCreate:
			where := fmt.Sprint(a.Task.GetSlot())
			if a.Task.GetNodeId() != "" {
				where = "@" + a.Task.GetNodeId()
			}
			out = append(out, fmt.Sprintf("create %s %s", where, short(a.Task.GetDesiredState())))
		case ActionUpdate:
			s := "raise " + a.TaskID
			if a.Orphan {
				s = "orphan+" + s
			}
			if a.DesiredState != 0 {
				s += " " + short(a.DesiredState)
			}
			out = append(out, s)
		case ActionDelete:
			out = append(out, "delete "+a.TaskID)
		}
	}
	slices.Sort(out)
	return out
}

func short(s api.TaskState) string { return strings.TrimPrefix(s.String(), "TASK_STATE_") }

// wantPlan fails unless the plan's summary is exactly want (any order).
func wantPlan(t *testing.T, p *Plan, want ...string) {
	t.Helper()
	got := summary(p)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Fatalf("plan:\n  got  %q\n  want %q\n%s", got, w, p)
	}
}

// clusterWithRetention returns a cluster with the retention limit.
func clusterWithRetention(n int64) *api.Cluster {
	return &api.Cluster{Id: "c", Spec: &api.ClusterSpec{TaskHistoryRetentionLimit: &n}}
}
