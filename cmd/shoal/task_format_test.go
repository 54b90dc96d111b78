package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// testNow is the "now" of the task golden files.
var testNow = time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)

// Service and node IDs of the fixtures (see format_test.go).
const (
	webID    = "kq8p7l2sd6yaw9x3m0v5c1b4n"
	agentID  = "m3n4o5p6q7r8s9t0u1v2w3x4y"
	goneID   = "removedsvc0123456789abcde"
	mgr2ID   = "b2c3d4e5f6g7h8i9j0k1l2m3n"
	worker1  = "d4e5f6g7h8i9j0k1l2m3n4o5p"
	worker2  = "aa1b2c3d4e5f6g7h8i9j0k1l2"
	lostNode = "lostnode0123456789abcdefg"
)

// task builds a task of service svc in slot (0: global, on node) whose
// status reached state ago before testNow, created created before it.
func task(id, svc string, slot uint64, node string, desired, state api.TaskState, ago, created time.Duration, err string) *api.Task {
	return &api.Task{
		Id:           id,
		Meta:         &api.Meta{Version: 9, CreatedAt: testNow.Add(-created).UnixNano()},
		ServiceId:    svc,
		Slot:         slot,
		NodeId:       node,
		Spec:         &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:1.25@sha256:0123456789abcdef"}},
		DesiredState: desired,
		Status:       &api.TaskStatus{State: state, Timestamp: testNow.Add(-ago).UnixNano(), Err: err},
		SpecVersion:  1,
	}
}

const (
	sNew       = api.TaskState_TASK_STATE_NEW
	sPending   = api.TaskState_TASK_STATE_PENDING
	sAssigned  = api.TaskState_TASK_STATE_ASSIGNED
	sPreparing = api.TaskState_TASK_STATE_PREPARING
	sReady     = api.TaskState_TASK_STATE_READY
	sStarting  = api.TaskState_TASK_STATE_STARTING
	sRunning   = api.TaskState_TASK_STATE_RUNNING
	sComplete  = api.TaskState_TASK_STATE_COMPLETE
	sShutdown  = api.TaskState_TASK_STATE_SHUTDOWN
	sFailed    = api.TaskState_TASK_STATE_FAILED
	sRejected  = api.TaskState_TASK_STATE_REJECTED
	sRemove    = api.TaskState_TASK_STATE_REMOVE
	sOrphaned  = api.TaskState_TASK_STATE_ORPHANED
)

// testTasks are the tasks of the golden files, in no particular order: a
// replicated service with history, a pending task and its scheduler
// reason, a slot being scaled away, a global service, and a task of a
// removed service.
func testTasks() []*api.Task {
	m, h := time.Minute, time.Hour
	web2 := task("w2aaaaaaaaaaaaaaaaaaaaaaa", webID, 2, worker2, sRunning, sRunning, 3*h, 3*h, "")
	web2.Status.Ports = []*api.PortConfig{{TargetPort: 80, PublishedPort: 8080, PublishMode: api.PortConfig_PUBLISH_MODE_HOST}}
	web2.Status.Health = "healthy"
	agentOld := task("a1oldaaaaaaaaaaaaaaaaaaaa", agentID, 0, selfID, sShutdown, sComplete, 49*h, 60*h, "")
	agentOld.Spec.Container.Image = "shoal/agent:0.9"
	tasks := []*api.Task{
		task("w10aaaaaaaaaaaaaaaaaaaaaa", webID, 10, mgr2ID, sShutdown, sRunning, 500*time.Millisecond, 20*m, ""),
		task("w1oldestaaaaaaaaaaaaaaaaa", webID, 1, worker1, sShutdown, sShutdown, 61*m, 2*h, ""),
		task("w3aaaaaaaaaaaaaaaaaaaaaaa", webID, 3, "", sRunning, sPending, 3*time.Second, 4*time.Second,
			"no suitable node (insufficient memory on 3 nodes)"),
		task("w1aaaaaaaaaaaaaaaaaaaaaaa", webID, 1, mgr2ID, sRunning, sRunning, 2*m, 3*m, ""),
		web2,
		task("w1olderaaaaaaaaaaaaaaaaaa", webID, 1, worker1, sShutdown, sFailed, 5*m, 10*m,
			"task: non-zero exit (137): killed by the kernel: out of memory"),
		task("w3oldaaaaaaaaaaaaaaaaaaaa", webID, 3, lostNode, sShutdown, sRejected, 40*time.Second, 45*time.Second,
			"pull access denied for nginx:1.25, repository does not exist or may require 'docker login'"),
		task("a1aaaaaaaaaaaaaaaaaaaaaaa", agentID, 0, selfID, sRunning, sRunning, 90*time.Second, 2*m, ""),
		agentOld,
		task("a2aaaaaaaaaaaaaaaaaaaaaaa", agentID, 0, worker1, sReady, sReady, 4*time.Second, 9*time.Second, ""),
		task("a3aaaaaaaaaaaaaaaaaaaaaaa", agentID, 0, mgr2ID, sRemove, sOrphaned, 15*24*h, 20*24*h, ""),
		task("g1aaaaaaaaaaaaaaaaaaaaaaa", goneID, 1, selfID, sRemove, sShutdown, 150*24*h, 151*24*h, ""),
	}
	for _, t := range tasks {
		if t.ServiceId == agentID && t != agentOld {
			t.Spec.Container.Image = "shoal/agent:latest"
		}
	}
	return tasks
}

// testTaskNames resolves the fixtures' IDs: the removed service and the
// lost node are unknown.
func testTaskNames() taskNames {
	names := taskNames{services: map[string]string{}, nodes: map[string]string{}}
	for _, s := range testServices().Services {
		names.services[s.Id] = s.Spec.Annotations.Name
	}
	for _, n := range testNodes() {
		names.nodes[n.Id] = n.Description.Hostname
	}
	return names
}

// onNode keeps the tasks placed on node.
func onNode(tasks []*api.Task, node string) []*api.Task {
	var out []*api.Task
	for _, t := range tasks {
		if t.NodeId == node {
			out = append(out, t)
		}
	}
	return out
}

func TestTaskListGolden(t *testing.T) {
	all := testTasks()
	var services []*api.Task
	for _, t := range all {
		if t.ServiceId != goneID {
			services = append(services, t)
		}
	}
	for _, tc := range []struct {
		golden string
		tasks  []*api.Task
		opts   taskListOptions
	}{
		{"service_ps", services, taskListOptions{format: formatTable}},
		{"service_ps_no_trunc", services, taskListOptions{format: formatTable, noTrunc: true}},
		{"service_ps_json", services, taskListOptions{format: formatJSON}},
		{"service_ps_quiet", services, taskListOptions{format: formatTable, quiet: true}},
		{"node_ps", onNode(all, selfID), taskListOptions{format: formatTable}},
		{"node_ps_json", onNode(all, selfID), taskListOptions{format: formatJSON}},
		{"task_ps_empty", nil, taskListOptions{format: formatTable}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			tc.opts.now = testNow
			var out bytes.Buffer
			if err := writeTaskList(&out, tc.tasks, testTaskNames(), tc.opts); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.golden, out.Bytes())
		})
	}
}

func TestHumanAge(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Hour, "less than a second"},
		{999 * time.Millisecond, "less than a second"},
		{time.Second, "1 second"},
		{59 * time.Second, "59 seconds"},
		{60 * time.Second, "about a minute"},
		{119 * time.Second, "about a minute"},
		{2 * time.Minute, "2 minutes"},
		{59 * time.Minute, "59 minutes"},
		{89 * time.Minute, "about an hour"},
		{90 * time.Minute, "2 hours"},
		{47 * time.Hour, "47 hours"},
		{48 * time.Hour, "2 days"},
		{13 * 24 * time.Hour, "13 days"},
		{14 * 24 * time.Hour, "2 weeks"},
		{60 * 24 * time.Hour, "2 months"},
		{800 * 24 * time.Hour, "2 years"},
	} {
		if got := humanAge(tc.d); got != tc.want {
			t.Errorf("humanAge(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestTaskErrorText(t *testing.T) {
	table := taskStyle{trunc: true, quoteErr: true}
	for _, tc := range []struct {
		err   string
		style taskStyle
		want  string
	}{
		{"", table, ""},
		{"short", table, `"short"`},
		{"exactly thirty characters long", table, `"exactly thirty characters long"`},
		{"no suitable node (insufficient memory on 3 nodes)", table, `"no suitable node (insufficien…"`},
		{"ünïcödé ünïcödé ünïcödé ünïcödé ünïcödé", table, `"ünïcödé ünïcödé ünïcödé ünïcö…"`},
		{"two\nlines", table, `"two lines"`},
		{"no suitable node (insufficient memory on 3 nodes)", taskStyle{quoteErr: true}, `"no suitable node (insufficient memory on 3 nodes)"`},
		{"two\nlines", taskStyle{}, "two\nlines"},
	} {
		if got := taskErrorText(tc.err, tc.style); got != tc.want {
			t.Errorf("taskErrorText(%q, %+v) = %q, want %q", tc.err, tc.style, got, tc.want)
		}
	}
}

func TestParseTaskFilters(t *testing.T) {
	got, err := parseTaskFilters([]string{"desired-state=running", "desired-state=Shutdown", "desired-state=running"})
	want := []api.TaskState{sReady, sRunning, sShutdown, sRemove}
	if err != nil || !equalStates(got, want) {
		t.Errorf("got %v, %v; want %v", got, err, want)
	}
	for _, tc := range []struct{ in, want string }{
		{"desired-state", `invalid argument "desired-state" for --filter: expected desired-state=running|shutdown|complete|accepted`},
		{"node=x", `invalid argument "node=x" for --filter: unknown filter "node" (the valid filter is desired-state)`},
		{"desired-state=gone", `invalid argument "desired-state=gone" for --filter: desired-state must be running, shutdown, complete or accepted`},
	} {
		if _, err := parseTaskFilters([]string{tc.in}); err == nil || err.Error() != tc.want {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func equalStates(a, b []api.TaskState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestServicePsCLI(t *testing.T) {
	f := newFake()
	now := time.Now()
	f.tasks = []*api.Task{
		{Id: "w1aaaaaaaaaaaaaaaaaaaaaaa", ServiceId: webID, Slot: 1, NodeId: mgr2ID, DesiredState: sRunning,
			Meta:   &api.Meta{CreatedAt: 2},
			Spec:   &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:1.25"}},
			Status: &api.TaskStatus{State: sRunning, Timestamp: now.Add(-2*time.Minute - time.Second).UnixNano()}},
		{Id: "w1oldaaaaaaaaaaaaaaaaaaaa", ServiceId: webID, Slot: 1, NodeId: mgr2ID, DesiredState: sShutdown,
			Meta:   &api.Meta{CreatedAt: 1},
			Spec:   &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:1.25"}},
			Status: &api.TaskStatus{State: sFailed, Timestamp: now.Add(-5*time.Minute - time.Second).UnixNano(), Err: "boom"}},
		{Id: "a1aaaaaaaaaaaaaaaaaaaaaaa", ServiceId: agentID, NodeId: selfID, DesiredState: sRunning,
			Spec:   &api.TaskSpec{Container: &api.ContainerSpec{Image: "shoal/agent"}},
			Status: &api.TaskStatus{State: sRunning, Timestamp: now.Add(-10 * time.Second).UnixNano()}},
	}
	host := startFake(t, f)
	stdout, _, err := runCLI("--host", host, "service", "ps", "web", "agent", "web")
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID             NAME                 IMAGE         NODE        DESIRED STATE   CURRENT STATE            ERROR     PORTS\n" +
		"a1aaaaaaaaaa   agent.a1b2c3d4e5f6   shoal/agent   manager-1   Running         Running 10 seconds ago\n" +
		"w1aaaaaaaaaa   web.1                nginx:1.25    manager-2   Running         Running 2 minutes ago\n" +
		"w1oldaaaaaaa    \\_ web.1            nginx:1.25    manager-2   Shutdown        Failed 5 minutes ago     \"boom\"\n"
	if stdout != want {
		t.Errorf("got\n%s\nwant\n%s", stdout, want)
	}
	req := f.sent[3].(*api.ListTasksRequest)
	if !proto.Equal(req, &api.ListTasksRequest{ServiceIds: []string{webID, agentID}}) {
		t.Errorf("ListTasks request %v", req)
	}

	f.calls, f.sent = nil, nil
	stdout, _, err = runCLI("--host", host, "service", "ps", "-q", "-f", "desired-state=running", "web", "nope")
	if err == nil || err.Error() != `no service "nope"` {
		t.Errorf("error %v, want the missing service reported", err)
	}
	if stdout != "w1aaaaaaaaaaaaaaaaaaaaaaa\n" {
		t.Errorf("quiet output %q", stdout)
	}
	if got, want := f.callNames(), "GetService,GetService,ListTasks"; got != want {
		t.Errorf("calls %s, want %s (quiet needs no hostnames)", got, want)
	}
	req = f.sent[2].(*api.ListTasksRequest)
	if !proto.Equal(req, &api.ListTasksRequest{ServiceIds: []string{webID}, DesiredStates: []api.TaskState{sReady, sRunning}}) {
		t.Errorf("ListTasks request %v", req)
	}
}

func TestNodePsCLI(t *testing.T) {
	f := newFake()
	f.tasks = []*api.Task{
		{Id: "a1aaaaaaaaaaaaaaaaaaaaaaa", ServiceId: agentID, NodeId: selfID, DesiredState: sRunning,
			Spec:   &api.TaskSpec{Container: &api.ContainerSpec{Image: "shoal/agent"}},
			Status: &api.TaskStatus{State: sRunning}},
		{Id: "w1aaaaaaaaaaaaaaaaaaaaaaa", ServiceId: webID, Slot: 1, NodeId: mgr2ID, DesiredState: sRunning,
			Spec:   &api.TaskSpec{Container: &api.ContainerSpec{Image: "nginx:1.25"}},
			Status: &api.TaskStatus{State: sRunning}},
	}
	host := startFake(t, f)
	stdout, _, err := runCLI("--host", host, "node", "ps", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"CurrentState":"Running","DesiredState":"Running","Error":"","ID":"a1aaaaaaaaaaaaaaaaaaaaaaa","Image":"shoal/agent","Name":"agent.` + selfID + `","Node":"manager-1","Ports":""}` + "\n"
	if stdout != want {
		t.Errorf("got %s, want %s", stdout, want)
	}
	if got, want := f.callNames(), "GetClusterInfo,ListTasks,ListServices,ListNodes"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}

	f.calls, f.sent = nil, nil
	stdout, _, err = runCLI("--host", host, "node", "ps", "-q", "manager-2", mgr2ID)
	if err != nil || stdout != "w1aaaaaaaaaaaaaaaaaaaaaaa\n" {
		t.Errorf("node ps manager-2: %q, %v", stdout, err)
	}
	if req := f.sent[2].(*api.ListTasksRequest); !proto.Equal(req, &api.ListTasksRequest{NodeIds: []string{mgr2ID}}) {
		t.Errorf("ListTasks request %v", req)
	}

	_, _, err = runCLI("--host", host, "node", "ps", "--filter", "desired-state=maybe")
	if err == nil || !strings.Contains(err.Error(), "desired-state must be") {
		t.Errorf("bad filter: %v", err)
	}
}
