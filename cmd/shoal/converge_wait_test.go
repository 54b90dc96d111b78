package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/proto/api"
)

// fakeClock is a clock that moves only when slept on.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.t = c.t.Add(d)
	return nil
}

// frames answers each look with the next list of tasks (the last one
// repeating), and counts the looks.
type frames struct {
	svc   *api.Service
	lists [][]*api.Task
	looks int
}

func (f *frames) fetch(context.Context) (*api.Service, []*api.Task, error) {
	i := min(f.looks, len(f.lists)-1)
	f.looks++
	return f.svc, f.lists[i], nil
}

// testWaiter returns a waiter on a fake clock: looks every 200ms, stable
// after 1s, with progress and notes written to the buffers.
func testWaiter(timeout time.Duration) (*convergeWaiter, *bytes.Buffer, *bytes.Buffer) {
	var out, notes bytes.Buffer
	clock := &fakeClock{t: testNow}
	return &convergeWaiter{
		out: &out, notes: &notes,
		poll: 200 * time.Millisecond, stable: time.Second, timeout: timeout,
		now: clock.now, sleep: clock.sleep,
	}, &out, &notes
}

func TestProgressReplicated(t *testing.T) {
	run, rdy := sRunning, sReady
	noNode := "no suitable node (insufficient memory on 3 nodes)"
	pulled := ct("old", 2, "n9", api.TaskState_TASK_STATE_SHUTDOWN, sRejected, 0, "from before the command: not shown")
	f := &frames{svc: cSvc(replicated(3)), lists: [][]*api.Task{
		{pulled},
		{pulled, ct("a", 1, "", run, sPending, 1, ""), ct("b", 2, "", run, sPending, 1, ""), ct("c", 3, "", run, sPending, 1, noNode)},
		{pulled, ct("a", 1, "n1", run, run, 1, ""), ct("b", 2, "n2", run, sPreparing, 1, ""), ct("c", 3, "", run, sPending, 1, noNode)},
		{pulled, ct("a", 1, "n1", run, run, 1, ""), ct("b", 2, "n2", run, sFailed, 1, "task: non-zero exit (1)"), ct("c", 3, "", run, sPending, 1, noNode)},
		{pulled, ct("a", 1, "n1", run, run, 1, ""), ct("b", 2, "n2", sShutdown, sFailed, 1, "task: non-zero exit (1)"),
			ct("b2", 2, "n2", rdy, sReady, 2, ""), ct("c", 3, "n3", run, sAssigned, 1, "")},
		// c failed and was replaced between two looks: its error is shown once.
		{pulled, ct("a", 1, "n1", run, run, 1, ""), ct("b", 2, "n2", sShutdown, sFailed, 1, "task: non-zero exit (1)"),
			ct("b2", 2, "n2", run, run, 2, ""),
			ct("c", 3, "n3", sShutdown, sRejected, 1, "pull access denied for nginx:2"), ct("c2", 3, "", run, sPending, 2, "")},
		{pulled, ct("a", 1, "n1", run, run, 1, ""), ct("b", 2, "n2", sShutdown, sFailed, 1, "task: non-zero exit (1)"),
			ct("b2", 2, "n2", run, run, 2, ""),
			ct("c", 3, "n3", sShutdown, sRejected, 1, "pull access denied for nginx:2"), ct("c2", 3, "n1", run, run, 2, "")},
	}}
	w, out, notes := testWaiter(0)
	if err := w.wait(context.Background(), "web", f.fetch); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "progress_replicated", out.Bytes())
	if notes.Len() != 0 {
		t.Errorf("notes: %q", notes)
	}
	// Converged at the 7th look, then 5 more looks 200ms apart make 1s.
	if f.looks != 12 {
		t.Errorf("%d looks, want 12", f.looks)
	}
}

func TestProgressStabilityResets(t *testing.T) {
	run := sRunning
	up := []*api.Task{ct("a", 1, "n1", run, run, 1, "")}
	down := []*api.Task{ct("a", 1, "n1", run, sFailed, 1, "oom"), ct("a2", 1, "", sReady, sPending, 2, "")}
	f := &frames{svc: cSvc(replicated(1)), lists: [][]*api.Task{up, up, down, up}}
	w, out, _ := testWaiter(0)
	if err := w.wait(context.Background(), "web", f.fetch); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"overall progress: 1 out of 1 tasks\n" +
		"1/1: running   [==================================================>]\n" +
		"verify: Waiting 1s to verify that tasks are stable...\n" +
		"overall progress: 0 out of 1 tasks\n" +
		"1/1: failed: oom\n" +
		"1/1: pending   [============>                                      ]\n" +
		"overall progress: 1 out of 1 tasks\n" +
		"1/1: running   [==================================================>]\n" +
		"verify: Waiting 1s to verify that tasks are stable...\n" +
		"verify: Service converged\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	if f.looks != 4+5 {
		t.Errorf("%d looks, want 9: the window restarts after the failure", f.looks)
	}
}

func TestProgressGlobalAndJob(t *testing.T) {
	run, cpl := sRunning, sComplete
	f := &frames{svc: cSvc(globalMode()), lists: [][]*api.Task{
		nil,
		{ct("a", 0, "node1aaaaaaaaaaaaa", run, sStarting, 1, ""), ct("b", 0, "node2bbbbbbbbbbbbb", run, run, 1, "")},
		{ct("a", 0, "node1aaaaaaaaaaaaa", run, run, 1, ""), ct("b", 0, "node2bbbbbbbbbbbbb", run, run, 1, "")},
	}}
	w, out, _ := testWaiter(0)
	w.stable = 0
	if err := w.wait(context.Background(), "agent", f.fetch); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"overall progress: waiting for the first task\n" +
		"overall progress: 1 out of 2 tasks\n" +
		"node1aaaaaaa: starting  [===========================================>       ]\n" +
		"node2bbbbbbb: running   [==================================================>]\n" +
		"overall progress: 2 out of 2 tasks\n" +
		"node1aaaaaaa: running   [==================================================>]\n" +
		"verify: Service converged\n"
	if out.String() != want {
		t.Errorf("global: got\n%s\nwant\n%s", out, want)
	}

	// A job needs no stability window: completion is final.
	f = &frames{svc: cSvc(replicatedJob(2)), lists: [][]*api.Task{
		{ct("a", 1, "n1", cpl, run, 1, ""), ct("b", 2, "n1", cpl, run, 1, "")},
		{ct("a", 1, "n1", cpl, cpl, 1, ""), ct("b", 2, "n1", cpl, cpl, 1, "")},
	}}
	w, out, _ = testWaiter(0)
	if err := w.wait(context.Background(), "migrate", f.fetch); err != nil {
		t.Fatal(err)
	}
	want = "" +
		"overall progress: 0 out of 2 tasks\n" +
		"1/2: running   [============================================>      ]\n" +
		"2/2: running   [============================================>      ]\n" +
		"overall progress: 2 out of 2 tasks\n" +
		"1/2: complete  [==================================================>]\n" +
		"2/2: complete  [==================================================>]\n" +
		"verify: Service converged\n"
	if out.String() != want {
		t.Errorf("job: got\n%s\nwant\n%s", out, want)
	}
}

func TestProgressCompact(t *testing.T) {
	var pending, running []*api.Task
	for i := uint64(1); i <= 150; i++ {
		id := fmt.Sprint("t", i)
		reason := ""
		if i > 140 {
			reason = "no suitable node (insufficient memory on 3 nodes)"
		}
		pending = append(pending, ct(id, i, "", sRunning, sPending, 1, reason))
		running = append(running, ct(id, i, "n1", sRunning, sRunning, 1, ""))
	}
	f := &frames{svc: cSvc(replicated(150)), lists: [][]*api.Task{pending, pending, running}}
	w, out, _ := testWaiter(0)
	w.stable = 0
	if err := w.wait(context.Background(), "web", f.fetch); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"overall progress: 0 out of 150 tasks\n" +
		"no suitable node (insufficient memory on 3 nodes)\n" +
		"overall progress: 150 out of 150 tasks\n" +
		"verify: Service converged\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
}

func TestWaitEnds(t *testing.T) {
	pending := []*api.Task{ct("a", 1, "", sRunning, sPending, 1, "")}
	f := &frames{svc: cSvc(replicated(1)), lists: [][]*api.Task{pending}}
	w, _, _ := testWaiter(2 * time.Second)
	err := w.wait(context.Background(), "web", f.fetch)
	want := "service web did not converge within 2s (overall progress: 0 out of 1 tasks); it keeps converging in the background: see shoal service ps web"
	if err == nil || err.Error() != want {
		t.Errorf("timeout: %v, want %q", err, want)
	}
	if f.looks != 11 {
		t.Errorf("%d looks in 2s, want 11", f.looks)
	}

	ctx, cancel := context.WithCancel(context.Background())
	w, _, notes := testWaiter(0)
	w.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	if err := w.wait(ctx, "web", f.fetch); err != nil {
		t.Errorf("interrupted: %v, want nil", err)
	}
	if want := "service web is still converging in the background: see shoal service ps web\n"; notes.String() != want {
		t.Errorf("notes %q, want %q", notes, want)
	}

	w, _, _ = testWaiter(0)
	gone := func(context.Context) (*api.Service, []*api.Task, error) {
		return nil, nil, &apiError{st: status.New(codes.NotFound, `no service "web"`)}
	}
	if err := w.wait(context.Background(), "web", gone); err == nil || err.Error() != "service web was removed while waiting for it to converge" {
		t.Errorf("removed: %v", err)
	}
	broken := func(context.Context) (*api.Service, []*api.Task, error) {
		return nil, nil, &apiError{st: status.New(codes.Unavailable, "no Raft leader")}
	}
	if err := w.wait(context.Background(), "web", broken); err == nil || err.Error() != "stopped waiting for service web to converge: no Raft leader" {
		t.Errorf("read error: %v", err)
	}
}

// shortWaits makes the CLI's waiting fast for a test.
func shortWaits(t *testing.T) {
	poll, stable := convergePollInterval, convergeStableFor
	convergePollInterval, convergeStableFor = time.Millisecond, 0
	t.Cleanup(func() { convergePollInterval, convergeStableFor = poll, stable })
}

func TestServiceCreateWaits(t *testing.T) {
	shortWaits(t)
	f := newFake()
	const id = "newserviceid0123456789abc"
	spec := &api.TaskSpec{Container: &api.ContainerSpec{Image: "busybox"}}
	f.taskFrames = [][]*api.Task{
		nil,
		{{Id: "t1", ServiceId: id, Slot: 1, Spec: spec, SpecVersion: 1, DesiredState: sRunning,
			Status: &api.TaskStatus{State: sPending, Err: "no suitable node (2 nodes down)"}}},
		{{Id: "t1", ServiceId: id, Slot: 1, NodeId: "n", Spec: spec, SpecVersion: 1, DesiredState: sRunning,
			Status: &api.TaskStatus{State: sRunning}}},
	}
	host := startFake(t, f)
	stdout, _, err := runCLI("--host", host, "service", "create", "--name", "hello", "busybox")
	if err != nil {
		t.Fatal(err)
	}
	want := id + "\n" +
		"overall progress: 0 out of 1 tasks\n" +
		"1/1: no suitable node (2 nodes down)\n" +
		"overall progress: 1 out of 1 tasks\n" +
		"1/1: running   [==================================================>]\n" +
		"verify: Service converged\n"
	if stdout != want {
		t.Errorf("got\n%s\nwant\n%s", stdout, want)
	}
	if !strings.HasPrefix(f.callNames(), "CreateService,GetService,ListTasks,GetService,ListTasks") {
		t.Errorf("calls %s", f.callNames())
	}

	// Quiet waits without a word but the ID.
	f = newFake()
	f.tasks = []*api.Task{{Id: "t1", ServiceId: id, Slot: 1, Spec: spec, SpecVersion: 1, DesiredState: sRunning,
		Status: &api.TaskStatus{State: sRunning}}}
	host = startFake(t, f)
	stdout, _, err = runCLI("--host", host, "service", "create", "-q", "--name", "hello", "busybox")
	if err != nil || stdout != id+"\n" {
		t.Errorf("quiet: %q, %v", stdout, err)
	}
	if !strings.Contains(f.callNames(), "ListTasks") {
		t.Errorf("quiet did not wait: %s", f.callNames())
	}

	_, _, err = runCLI("--host", host, "service", "create", "--wait-timeout=-1s", "busybox")
	if err == nil || !strings.Contains(err.Error(), "--wait-timeout: must not be negative") {
		t.Errorf("negative --wait-timeout: %v", err)
	}
}
