package simulated

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/proto/api"
)

// failAfter bounds waits for things that should happen at once; it is a
// deadline, not a sleep.
const failAfter = 10 * time.Second

func ctlr(t *testing.T, e *Executor, id string) runtime.Controller {
	t.Helper()
	c, err := e.Controller(&api.Task{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStartIsIdempotentAndShutdownEndsWait(t *testing.T) {
	ctx := context.Background()
	e := New(Config{})
	c := ctlr(t, e, "t1")
	if err := c.Start(ctx); !errors.Is(err, runtime.ErrContainerGone) {
		t.Fatalf("Start before Prepare: %v, want ErrContainerGone", err)
	}
	for range 2 {
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A second controller of the same task finds the same container.
	if err := ctlr(t, e, "t1").Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.Starts("t1"); n != 1 {
		t.Fatalf("starts %d, want 1", n)
	}
	if !e.IsRunning("t1") || e.Running() != 1 {
		t.Fatal("task not running after Start")
	}
	waited := make(chan error, 1)
	go func() {
		code, err := c.Wait(ctx)
		if err == nil && code != ExitCodeShutdown {
			err = fmt.Errorf("exit code %d, want %d", code, ExitCodeShutdown)
		}
		waited <- err
	}()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(failAfter):
		t.Fatal("Wait did not return after Shutdown")
	}
	if err := c.Remove(ctx); err != nil || e.Exists("t1") {
		t.Fatalf("Remove: %v, exists %v", err, e.Exists("t1"))
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestJobExitsAfterRunDuration(t *testing.T) {
	ctx := context.Background()
	e := New(Config{RunDuration: 20 * time.Millisecond, ExitCode: 3})
	c := ctlr(t, e, "job")
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, failAfter)
	defer cancel()
	code, err := c.Wait(wctx)
	if err != nil || code != 3 {
		t.Fatalf("Wait = %d, %v; want 3", code, err)
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	e := New(Config{})
	c := ctlr(t, e, "t1")
	ctx := context.Background()
	_ = c.Prepare(ctx)
	_ = c.Start(ctx)
	wctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Wait(wctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with an ended context: %v", err)
	}
	if !e.IsRunning("t1") {
		t.Fatal("an abandoned Wait stopped the task")
	}
}

func TestStartDelayHonoursContext(t *testing.T) {
	e := New(Config{StartDelay: time.Hour})
	c := ctlr(t, e, "t1")
	_ = c.Prepare(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := c.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start: %v, want DeadlineExceeded", err)
	}
	if e.Starts("t1") != 0 {
		t.Fatal("a cancelled start counted")
	}
}

func TestFailureRateIsSeededPerTask(t *testing.T) {
	const n = 4000
	count := func(seed uint64) (int, map[string]bool) {
		e := New(Config{FailureRate: 0.25, Seed: seed})
		failed := map[string]bool{}
		for i := range n {
			id := fmt.Sprintf("task-%d", i)
			c := ctlr(t, e, id)
			_ = c.Prepare(context.Background())
			if err := c.Start(context.Background()); err != nil {
				if !errors.Is(err, ErrStartFailed) {
					t.Fatal(err)
				}
				failed[id] = true
			}
		}
		return len(failed), failed
	}
	a, fa := count(7)
	b, fb := count(7)
	c, _ := count(8)
	if a != b || fmt.Sprint(fa) != fmt.Sprint(fb) {
		t.Fatalf("same seed gave %d and %d failures", a, b)
	}
	// 25% of 4000 is 1000, standard deviation about 27.
	for _, k := range []int{a, c} {
		if k < 850 || k > 1150 {
			t.Fatalf("%d failures of %d starts at rate 0.25", k, n)
		}
	}
	if a == c {
		t.Logf("seeds 7 and 8 gave the same count %d (possible, unlikely)", a)
	}
}

func TestReattachFromPersistedStatus(t *testing.T) {
	ctx := context.Background()
	e := New(Config{RunDuration: time.Hour})
	running := ctlr(t, e, "running").(runtime.Reattacher)
	if err := running.Reattach(ctx, &api.TaskStatus{State: api.TaskState_TASK_STATE_RUNNING, Timestamp: time.Now().UnixNano()}); err != nil {
		t.Fatal(err)
	}
	if !e.IsRunning("running") || e.Starts("running") != 0 {
		t.Fatal("a task persisted RUNNING is not running, or counted a start")
	}
	// Start on the reattached task is a no-op.
	if err := running.(runtime.Controller).Start(ctx); err != nil || e.Starts("running") != 0 {
		t.Fatalf("Start after reattach: %v, starts %d", err, e.Starts("running"))
	}
	ready := ctlr(t, e, "ready")
	_ = ready.(runtime.Reattacher).Reattach(ctx, &api.TaskStatus{State: api.TaskState_TASK_STATE_READY})
	if !e.Exists("ready") || e.IsRunning("ready") {
		t.Fatal("a task persisted READY is not prepared-only")
	}
	// A job whose run time passed while the agent was down exits at once.
	job := New(Config{RunDuration: time.Millisecond, ExitCode: 0})
	jc := ctlr(t, job, "job")
	_ = jc.(runtime.Reattacher).Reattach(ctx, &api.TaskStatus{State: api.TaskState_TASK_STATE_RUNNING, Timestamp: time.Now().Add(-time.Minute).UnixNano()})
	wctx, cancel := context.WithTimeout(ctx, failAfter)
	defer cancel()
	if code, err := jc.Wait(wctx); err != nil || code != 0 {
		t.Fatalf("reattached job Wait = %d, %v", code, err)
	}
	// An unknown task has nothing to wait for.
	if _, err := ctlr(t, e, "unknown").Wait(ctx); !errors.Is(err, runtime.ErrContainerGone) {
		t.Fatalf("Wait on an unknown task: %v", err)
	}
}
