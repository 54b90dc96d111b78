package containerd

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// TestPullAndRejections pulls an image from a local registry over plain
// HTTP; an image the registry lacks and a bind mount whose source is
// missing reject the task with the cause and leave nothing behind.
func TestPullAndRejections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	reg := images.StartRegistry(t, "")
	img, err := images.Build(ctx, images.BuildOptions{Ref: "registry.test:5000/sleeper:v1", Programs: []string{"sleeper"}, Entrypoint: []string{"/bin/sleeper"}, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref("sleeper", "v1")
	if _, err := reg.Push(ctx, img, ref); err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, reg.Addr)

	c := controllerOf(t, env.e, task("pulled", ref, nil))
	t0 := time.Now()
	if err := c.Prepare(ctx); err != nil {
		t.Fatalf("Prepare with pull: %v", err)
	}
	t.Logf("Prepare with pull and unpack: %v", time.Since(t0))
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}

	missing := controllerOf(t, env.e, task("missing", reg.Ref("nothere", "v9"), nil))
	err = missing.Prepare(ctx)
	if !errors.Is(err, runtime.ErrTaskRejected) || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("Prepare of a missing image = %v; want ErrTaskRejected naming the cause", err)
	}
	t.Logf("missing image: %v", err)

	src := t.TempDir() + "/nowhere"
	bind := controllerOf(t, env.e, task("bind", ref, &api.ContainerSpec{Mounts: []*api.Mount{{Type: api.Mount_TYPE_BIND, Source: src, Target: "/x"}}}))
	err = bind.Prepare(ctx)
	if !errors.Is(err, runtime.ErrTaskRejected) || !strings.Contains(err.Error(), "bind mount source "+src+" does not exist on this node") {
		t.Fatalf("Prepare with a missing bind source = %v", err)
	}
	for _, ctl := range []*Controller{missing, bind} {
		if err := ctl.Remove(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if l := env.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// TestReattachAfterRestart: a new executor (a restarted agent) reattaches
// to a running task: Start does not start it again (same PID), Wait
// resumes on it and sees the exit that Shutdown causes.
func TestReattachAfterRestart(t *testing.T) {
	env := newEnv(t)
	ref := env.importImage(t, images.BuildOptions{Ref: "registry.test:5000/sleeper:v1", Programs: []string{"sleeper"}, Entrypoint: []string{"/bin/sleeper"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tk := task("long", ref, nil)
	c := controllerOf(t, env.e, tk)
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := c.ContainerStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	env.e.Close()

	e2 := env.newExecutor(t)
	c2 := controllerOf(t, e2, tk)
	if err := c2.Reattach(ctx, &api.TaskStatus{State: api.TaskState_TASK_STATE_RUNNING, Container: before}); err != nil {
		t.Fatal(err)
	}
	if err := c2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := c2.ContainerStatus(ctx)
	if err != nil || after.GetPid() != before.GetPid() {
		t.Fatalf("after restart: %v, %v; before: %v", after, err, before)
	}
	if _, err := os.Stat("/proc/" + itoa(before.GetPid())); err != nil {
		t.Fatalf("the task's process is gone: %v", err)
	}
	type result struct {
		code int
		err  error
	}
	waited := make(chan result, 1)
	go func() {
		code, err := c2.Wait(ctx)
		waited <- result{code, err}
	}()
	select {
	case r := <-waited:
		t.Fatalf("Wait returned while the task runs: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	if err := c2.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-waited; r.err != nil || r.code != 0 {
		t.Fatalf("Wait = %+v; want exit 0", r)
	}
	if err := c2.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	// A task whose container is gone: Wait says so.
	c3 := controllerOf(t, e2, tk)
	if err := c3.Reattach(ctx, &api.TaskStatus{State: api.TaskState_TASK_STATE_RUNNING}); err != nil {
		t.Fatal(err)
	}
	if _, err := c3.Wait(ctx); !errors.Is(err, runtime.ErrContainerGone) {
		t.Fatalf("Wait on a removed container: %v", err)
	}
}

// TestAdvanceDrivesTheController drives a task as the agent does, from
// ASSIGNED to RUNNING, then (desired SHUTDOWN) to SHUTDOWN.
func TestAdvanceDrivesTheController(t *testing.T) {
	env := newEnv(t)
	ref := env.importImage(t, images.BuildOptions{Ref: "registry.test:5000/sleeper:v1", Programs: []string{"sleeper"}, Entrypoint: []string{"/bin/sleeper"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tk := task("advanced", ref, nil)
	c := controllerOf(t, env.e, tk)
	st := &api.TaskStatus{State: api.TaskState_TASK_STATE_ASSIGNED}
	var seen []api.TaskState
	for st.GetState() != api.TaskState_TASK_STATE_RUNNING {
		next, err := runtime.Advance(ctx, tk, st, c)
		if err != nil {
			t.Fatalf("Advance from %v: %v", st.GetState(), err)
		}
		st = next
		seen = append(seen, st.GetState())
		if len(seen) > 10 {
			t.Fatalf("no RUNNING after %v", seen)
		}
	}
	if st.GetContainer().GetContainerId() != "advanced" || st.GetContainer().GetPid() == 0 {
		t.Fatalf("RUNNING status container = %v", st.GetContainer())
	}
	t.Logf("states: %v", seen)

	tk.DesiredState = api.TaskState_TASK_STATE_SHUTDOWN
	next, err := runtime.Advance(ctx, tk, st, c)
	if err != nil || next.GetState() != api.TaskState_TASK_STATE_SHUTDOWN {
		t.Fatalf("Advance to SHUTDOWN = %v, %v", next, err)
	}
	if _, err := runtime.Advance(ctx, tk, next, c); !errors.Is(err, runtime.ErrNoop) {
		t.Fatalf("Advance after SHUTDOWN: %v", err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if l := env.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}
