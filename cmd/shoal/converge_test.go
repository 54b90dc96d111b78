package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

// Fixtures for convergence: a service whose current spec (version 2)
// runs nginx:2, and tasks built by ct.

// cSvc is a service of the given mode at spec version 2.
func cSvc(mode *api.ServiceMode) *api.Service {
	return &api.Service{
		Id:          "svc",
		Meta:        &api.Meta{Version: 10},
		Spec:        &api.ServiceSpec{Annotations: &api.Annotations{Name: "web"}, Mode: mode, Task: cSpec("nginx:2")},
		SpecVersion: 2,
	}
}

func cSpec(image string) *api.TaskSpec {
	return &api.TaskSpec{Container: &api.ContainerSpec{Image: image}}
}

func replicated(n uint64) *api.ServiceMode {
	return &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: n}}}
}

func globalMode() *api.ServiceMode {
	return &api.ServiceMode{Mode: &api.ServiceMode_Global{Global: &api.Global{}}}
}

func replicatedJob(total uint64) *api.ServiceMode {
	return &api.ServiceMode{Mode: &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 1, TotalCompletions: total}}}
}

func globalJob() *api.ServiceMode {
	return &api.ServiceMode{Mode: &api.ServiceMode_GlobalJob{GlobalJob: &api.GlobalJob{}}}
}

// ct is a task of the current spec (version 2) in slot (or, with slot
// 0, on node), created at created; err is its status error.
func ct(id string, slot uint64, node string, desired, state api.TaskState, created int64, err string) *api.Task {
	return &api.Task{
		Id: id, ServiceId: "svc", Slot: slot, NodeId: node,
		Meta:         &api.Meta{CreatedAt: created},
		Spec:         cSpec("nginx:2"),
		SpecVersion:  2,
		DesiredState: desired,
		Status:       &api.TaskStatus{State: state, Timestamp: created, Err: err},
	}
}

// old makes t a task of the previous spec (version 1, nginx:1).
func old(t *api.Task) *api.Task {
	t.SpecVersion = 1
	t.Spec = cSpec("nginx:1")
	return t
}

// summary is what a test checks of a convergence.
func summary(c convergence) string {
	var slots []string
	for _, s := range c.slots {
		slots = append(slots, s.label+"="+s.task.GetId())
	}
	var failures []string
	for _, f := range c.failures {
		failures = append(failures, f.label+"="+f.task.GetId())
	}
	return fmt.Sprintf("%s converged=%v slots=[%s] failures=[%s]",
		c.overall(), c.converged, strings.Join(slots, " "), strings.Join(failures, " "))
}

func TestAssess(t *testing.T) {
	run, sd, rdy, cpl := sRunning, sShutdown, sReady, sComplete
	for _, tc := range []struct {
		name  string
		svc   *api.Service
		tasks []*api.Task
		want  string
	}{
		{"replicated, all running", cSvc(replicated(3)), []*api.Task{
			ct("c", 3, "n1", run, run, 1, ""), ct("a", 1, "n1", run, run, 1, ""), ct("b", 2, "n2", run, run, 1, ""),
		}, "3 out of 3 tasks converged=true slots=[1/3=a 2/3=b 3/3=c] failures=[]"},
		{"replicated, no tasks yet", cSvc(replicated(2)), nil,
			"0 out of 2 tasks converged=false slots=[] failures=[]"},
		{"zero replicas converge at once", cSvc(replicated(0)), nil,
			"0 out of 0 tasks converged=true slots=[] failures=[]"},
		{"pending with the scheduler's reason", cSvc(replicated(2)), []*api.Task{
			ct("a", 1, "n1", run, run, 1, ""), ct("b", 2, "", run, sPending, 1, "no suitable node (insufficient memory on 3 nodes)"),
		}, "1 out of 2 tasks converged=false slots=[1/2=a 2/2=b] failures=[]"},
		{"scaled down, extra tasks not yet told to stop", cSvc(replicated(2)), []*api.Task{
			ct("a", 1, "n1", run, run, 1, ""), ct("b", 2, "n1", run, run, 1, ""), ct("c", 3, "n1", run, run, 1, ""),
		}, "2 out of 2 tasks (1 more to stop) converged=false slots=[1/2=a 2/2=b] failures=[]"},
		{"scaled to zero, tasks not yet told to stop", cSvc(replicated(0)), []*api.Task{
			ct("a", 1, "n1", run, run, 1, ""), ct("b", 2, "n1", run, run, 1, ""),
		}, "0 out of 0 tasks (2 more to stop) converged=false slots=[] failures=[]"},
		{"scaled down, extra task stopping", cSvc(replicated(2)), []*api.Task{
			ct("a", 1, "n1", run, run, 1, ""), ct("b", 2, "n1", run, run, 1, ""), ct("c", 3, "n1", sd, run, 1, ""),
		}, "2 out of 2 tasks converged=true slots=[1/2=a 2/2=b] failures=[]"},
		{"rolling update: old tasks do not count", cSvc(replicated(2)), []*api.Task{
			ct("a2", 1, "n1", run, run, 2, ""), old(ct("a1", 1, "n1", sd, run, 1, "")), old(ct("b1", 2, "n1", run, run, 1, "")),
		}, "1 out of 2 tasks converged=false slots=[1/2=a2] failures=[]"},
		{"scaled: tasks of an older version with the same template count", cSvc(replicated(2)), []*api.Task{
			func() *api.Task { t := ct("a", 1, "n1", run, run, 1, ""); t.SpecVersion = 1; return t }(),
			ct("b", 2, "n1", run, run, 2, ""),
		}, "2 out of 2 tasks converged=true slots=[1/2=a 2/2=b] failures=[]"},
		{"restart: the replacement held by a delay is current", cSvc(replicated(2)), []*api.Task{
			ct("a", 1, "n1", run, run, 1, ""),
			ct("b1", 2, "n1", run, sFailed, 1, "task: non-zero exit (1)"),
			ct("b2", 2, "n1", rdy, sReady, 2, ""),
		}, "1 out of 2 tasks converged=false slots=[1/2=a 2/2=b2] failures=[2/2=b1]"},
		{"failed task still current is not also a failure", cSvc(replicated(1)), []*api.Task{
			ct("a", 1, "n1", run, sFailed, 1, "boom"),
		}, "0 out of 1 tasks converged=false slots=[1/1=a] failures=[]"},
		{"newest of two live tasks is current", cSvc(replicated(1)), []*api.Task{
			ct("a", 1, "n1", run, run, 1, ""), ct("b", 1, "n1", run, sStarting, 2, ""),
		}, "1 out of 1 tasks converged=true slots=[1/1=b] failures=[]"},
		{"global without tasks", cSvc(globalMode()), nil,
			"waiting for the first task converged=false slots=[] failures=[]"},
		{"global, all running", cSvc(globalMode()), []*api.Task{
			ct("b", 0, "node2", run, run, 1, ""), ct("a", 0, "node1", run, run, 1, ""), ct("x", 0, "node3", sd, sShutdown, 1, ""),
		}, "2 out of 2 tasks converged=true slots=[node1=a node2=b] failures=[]"},
		{"global, one node still on the old spec", cSvc(globalMode()), []*api.Task{
			ct("a", 0, "node1", run, run, 1, ""), ct("b", 0, "node2", run, run, 1, ""), old(ct("c", 0, "node3", run, run, 1, "")),
		}, "2 out of 3 tasks converged=false slots=[node1=a node2=b] failures=[]"},
		{"replicated job, running", cSvc(replicatedJob(3)), []*api.Task{
			ct("a", 1, "n1", cpl, cpl, 1, ""), ct("b", 2, "n1", cpl, cpl, 1, ""), ct("c", 3, "n1", run, run, 1, ""),
		}, "2 out of 3 tasks converged=false slots=[1/3=a 2/3=b 3/3=c] failures=[]"},
		{"replicated job, done", cSvc(replicatedJob(2)), []*api.Task{
			ct("a", 1, "n1", cpl, cpl, 1, ""), ct("b", 2, "n1", run, cpl, 1, ""), old(ct("z", 3, "n1", cpl, cpl, 1, "")),
		}, "2 out of 2 tasks converged=true slots=[1/2=a 2/2=b] failures=[]"},
		{"global job, one node left", cSvc(globalJob()), []*api.Task{
			ct("a", 0, "node1", cpl, cpl, 1, ""), ct("b", 0, "node2", run, sPreparing, 1, ""), old(ct("z", 0, "node3", cpl, sRunning, 1, "")),
		}, "1 out of 2 tasks converged=false slots=[node1=a node2=b] failures=[]"},
		{"global job, done", cSvc(globalJob()), []*api.Task{
			ct("a", 0, "node1", cpl, cpl, 1, ""), ct("b", 0, "node2", run, cpl, 1, ""),
		}, "2 out of 2 tasks converged=true slots=[node1=a node2=b] failures=[]"},
	} {
		if got := summary(assess(tc.svc, tc.tasks)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestSlotText(t *testing.T) {
	for _, tc := range []struct {
		task *api.Task
		job  bool
		want string
	}{
		{ct("a", 1, "", sRunning, sNew, 0, ""), false, "new       [======>                                            ]"},
		{ct("a", 1, "", sRunning, sPreparing, 0, ""), false, "preparing [===============================>                   ]"},
		{ct("a", 1, "", sRunning, sRunning, 0, ""), false, "running   [==================================================>]"},
		{ct("a", 1, "", sRunning, sRunning, 0, ""), true, "running   [============================================>      ]"},
		{ct("a", 1, "", sComplete, sComplete, 0, ""), true, "complete  [==================================================>]"},
		{ct("a", 1, "", sRunning, sComplete, 0, ""), false, "complete"},
		{ct("a", 1, "", sRunning, sPending, 0, "no suitable node\n(x)"), false, "no suitable node (x)"},
		{ct("a", 1, "", sRunning, sFailed, 0, "task: non-zero exit (1)"), false, "failed: task: non-zero exit (1)"},
		{ct("a", 1, "", sRunning, sRejected, 0, ""), false, "rejected"},
	} {
		if got := slotText(tc.task, tc.job); got != tc.want {
			t.Errorf("slotText(%s, job %v) = %q, want %q", tc.task.Status.State, tc.job, got, tc.want)
		}
	}
}
