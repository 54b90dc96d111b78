package containerd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// waitLines polls c until its lines include want (in order of arrival,
// as a substring of the joined text).
func waitLines(t *testing.T, c *collector, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(strings.Join(c.lines(), "\n"), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q after %v; it holds %q", want, timeout, c.lines())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A real task's output is captured with timestamps: ReadLogs honours tail
// and since, and a follower sees the lines written at shutdown, also
// after an agent restart (a new executor reattaches to the task's
// output).
func TestReadLogsOfARealTask(t *testing.T) {
	env := newEnv(t)
	ref := env.importImage(t, images.BuildOptions{Ref: "registry.test:5000/echo:v1", Programs: []string{"echo"}, Entrypoint: []string{"/bin/echo"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := controllerOf(t, env.e, task("logs1", ref, &api.ContainerSpec{StopGracePeriod: ptr(int64(5 * time.Second))}))
	before := time.Now().UnixNano()
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var all collector
	fctx, fcancel := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() { followed <- env.e.ReadLogs(fctx, "logs1", -1, 0, true, all.send) }()
	waitLines(t, &all, "echo: listening on", 15*time.Second)
	fcancel()
	if err := <-followed; err != nil {
		t.Fatalf("follow: %v", err)
	}
	start := all.msgs[0]
	if start.TaskId != "logs1" || start.Stream != api.LogMessage_STREAM_STDOUT ||
		start.Timestamp < before || start.Timestamp > time.Now().UnixNano() {
		t.Fatalf("first message %v (test began at %d)", start, before)
	}

	var tail collector
	if err := env.e.ReadLogs(ctx, "logs1", 1, 0, false, tail.send); err != nil {
		t.Fatal(err)
	}
	if len(tail.msgs) != 1 || !strings.HasPrefix(string(tail.msgs[0].Data), "echo: listening on") {
		t.Fatalf("tail 1: %q", tail.lines())
	}
	var since collector
	if err := env.e.ReadLogs(ctx, "logs1", -1, start.Timestamp+1, false, since.send); err != nil {
		t.Fatal(err)
	}
	if len(since.msgs) != len(all.msgs)-1 {
		t.Fatalf("since after the first line: %q; all: %q", since.lines(), all.lines())
	}

	// An agent restart: the old executor lets go, a new one reattaches.
	if err := env.e.closeTaskLogs(); err != nil {
		t.Fatal(err)
	}
	e2 := env.newExecutor(t)
	c2 := controllerOf(t, e2, task("logs1", ref, &api.ContainerSpec{StopGracePeriod: ptr(int64(5 * time.Second))}))
	if err := c2.Reattach(ctx, &api.TaskStatus{State: api.TaskState_TASK_STATE_RUNNING}); err != nil {
		t.Fatal(err)
	}
	var after collector
	f2ctx, f2cancel := context.WithCancel(ctx)
	defer f2cancel()
	go func() { followed <- e2.ReadLogs(f2ctx, "logs1", 0, 0, true, after.send) }()
	time.Sleep(3 * followPoll) // the follower has read the old records
	if err := c2.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitLines(t, &after, "echo: signal received, draining", 15*time.Second)
	waitLines(t, &after, "echo: stopped", 15*time.Second)
	for _, m := range after.msgs {
		if m.Timestamp <= start.Timestamp {
			t.Fatalf("tail 0 sent an old record: %v", m)
		}
	}
	f2cancel()
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	if err := c2.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	var gone collector
	if err := e2.ReadLogs(ctx, "logs1", -1, 0, false, gone.send); err != nil || len(gone.msgs) != 0 {
		t.Fatalf("after Remove: %q, %v", gone.lines(), err)
	}
	if left := env.leftovers(t); len(left) != 0 {
		t.Fatalf("left behind: %s", fmt.Sprint(left))
	}
}
