package containerd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// probeInterval is the health check interval of these tests.
const probeInterval = 200 * time.Millisecond

// echoHealthSpec is an echo container on port 8080 whose /tmp is the
// host folder tmp (so that the test can create /tmp/unhealthy), with
// health check hc (nil: none in the spec).
func echoHealthSpec(tmp string, hc *api.HealthConfig) *api.ContainerSpec {
	return &api.ContainerSpec{
		Env:             []string{"PORT=8080"},
		Healthcheck:     hc,
		StopGracePeriod: ptr(int64(5 * time.Second)),
		Mounts:          []*api.Mount{{Type: api.Mount_TYPE_BIND, Source: tmp, Target: "/tmp"}},
	}
}

// timedStatus is a status Advance returned and when.
type timedStatus struct {
	st *api.TaskStatus
	at time.Time
}

// advanceUntil calls Advance from st until done says so of the status it
// returned, failing the test on an error (ctx bounds the whole drive).
func advanceUntil(t *testing.T, ctx context.Context, c runtime.Controller, task *api.Task, st *api.TaskStatus, done func(*api.TaskStatus) bool) []timedStatus {
	t.Helper()
	var out []timedStatus
	for {
		next, err := runtime.Advance(ctx, task, st, c)
		if err != nil {
			t.Fatalf("Advance from %v (health %q): %v; statuses so far: %v", st.GetState(), st.GetHealth(), err, out)
		}
		out = append(out, timedStatus{next, time.Now()})
		t.Logf("%v health=%q msg=%q err=%q", next.GetState(), next.GetHealth(), next.GetMessage(), next.GetErr())
		st = next
		if done(st) {
			return out
		}
	}
}

func stateIs(s api.TaskState) func(*api.TaskStatus) bool {
	return func(st *api.TaskStatus) bool { return st.GetState() == s }
}

func finished(st *api.TaskStatus) bool { return st.GetState() > api.TaskState_TASK_STATE_RUNNING }

// assertStopped fails the test unless the task's process has exited.
func assertStopped(t *testing.T, ctx context.Context, c *Controller) {
	t.Helper()
	_, task, err := c.loadTask(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != client.Stopped {
		t.Fatalf("task process is %v after it was failed as unhealthy, want stopped", st.Status)
	}
}

// TestHealthGatesRunningAndFailsUnhealthy runs echo with the spec's
// health check `echo probe` every 200 ms: the task stays STARTING
// ("starting") until the first probe passes, then is RUNNING
// ("healthy"); once /tmp/unhealthy exists (created on the host, in the
// folder bind-mounted at /tmp), two failed probes make it unhealthy: it
// is stopped and FAILED with the probe's exit in Err.
func TestHealthGatesRunningAndFailsUnhealthy(t *testing.T) {
	env := newEnv(t)
	ref := env.importImage(t, images.BuildOptions{Ref: "registry.test:5000/echo:v1", Programs: []string{"echo"}, Entrypoint: []string{"/bin/echo"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tmp := t.TempDir()
	hc := &api.HealthConfig{
		Test:     []string{"CMD", "/bin/echo", "probe"},
		Interval: ptr(int64(probeInterval)),
		Timeout:  ptr(int64(5 * time.Second)),
		Retries:  ptr(uint32(2)),
	}
	tk := task("hc1", ref, echoHealthSpec(tmp, hc))
	c := controllerOf(t, env.e, tk)
	defer c.Close()

	t0 := time.Now()
	got := advanceUntil(t, ctx, c, tk, &api.TaskStatus{State: api.TaskState_TASK_STATE_ACCEPTED}, stateIs(api.TaskState_TASK_STATE_RUNNING))
	running := got[len(got)-1]
	var starting *timedStatus
	for i, s := range got {
		if s.st.GetState() == api.TaskState_TASK_STATE_STARTING && s.st.GetHealth() == runtime.HealthStarting {
			starting = &got[i]
		}
	}
	if starting == nil {
		t.Fatalf("no STARTING status with health %q before RUNNING", runtime.HealthStarting)
	}
	if running.st.GetHealth() != runtime.HealthHealthy {
		t.Fatalf("RUNNING with health %q, want healthy", running.st.GetHealth())
	}
	// The first probe runs one interval after the task started.
	if gap := running.at.Sub(starting.at); gap < probeInterval-20*time.Millisecond {
		t.Fatalf("RUNNING %v after STARTING/starting: sooner than the first probe (%v)", gap, probeInterval)
	}
	t.Logf("ACCEPTED → RUNNING (healthy) in %v; starting → healthy in %v", running.at.Sub(t0), running.at.Sub(starting.at))

	if err := os.WriteFile(filepath.Join(tmp, "unhealthy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	got = advanceUntil(t, ctx, c, tk, running.st, finished)
	end := got[len(got)-1].st
	t.Logf("unhealthy file → %v in %v", end.GetState(), time.Since(t1))
	if end.GetState() != api.TaskState_TASK_STATE_FAILED || end.GetHealth() != runtime.HealthUnhealthy {
		t.Fatalf("ended %v health %q, want FAILED unhealthy", end.GetState(), end.GetHealth())
	}
	if !strings.HasPrefix(end.GetErr(), "container unhealthy: health check exited with code 1") {
		t.Fatalf("Err %q, want the probe's exit", end.GetErr())
	}
	assertStopped(t, ctx, c)
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if left := env.leftovers(t); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// TestImageHealthcheck builds echo with a HEALTHCHECK in its image
// config. A task whose spec has no health check uses it: with
// /tmp/unhealthy present from the start the task never gets healthy and
// fails while STARTING; a task whose spec says ["NONE"] runs at once
// without health.
func TestImageHealthcheck(t *testing.T) {
	env := newEnv(t)
	ref := env.importImage(t, images.BuildOptions{
		Ref: "registry.test:5000/echo-hc:v1", Programs: []string{"echo"}, Entrypoint: []string{"/bin/echo"},
		Healthcheck: &images.Healthcheck{Test: []string{"CMD", "/bin/echo", "probe"}, Interval: probeInterval, Timeout: 5 * time.Second, Retries: 2},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	tmp := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp, "unhealthy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tk := task("imghc", ref, echoHealthSpec(tmp, nil))
	c := controllerOf(t, env.e, tk)
	defer c.Close()
	t0 := time.Now()
	got := advanceUntil(t, ctx, c, tk, &api.TaskStatus{State: api.TaskState_TASK_STATE_ACCEPTED}, finished)
	t.Logf("ACCEPTED → %v in %v", got[len(got)-1].st.GetState(), time.Since(t0))
	for _, s := range got {
		if s.st.GetState() == api.TaskState_TASK_STATE_RUNNING {
			t.Fatalf("an unhealthy task reached RUNNING")
		}
	}
	end := got[len(got)-1].st
	if end.GetState() != api.TaskState_TASK_STATE_FAILED || end.GetHealth() != runtime.HealthUnhealthy ||
		!strings.HasPrefix(end.GetErr(), "container unhealthy: ") {
		t.Fatalf("ended %v health %q err %q, want FAILED unhealthy", end.GetState(), end.GetHealth(), end.GetErr())
	}
	assertStopped(t, ctx, c)

	// ["NONE"] turns the image's check off: RUNNING right after Start.
	tmp2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(tmp2, "unhealthy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tk2 := task("nohc", ref, echoHealthSpec(tmp2, &api.HealthConfig{Test: []string{"NONE"}}))
	c2 := controllerOf(t, env.e, tk2)
	defer c2.Close()
	t0 = time.Now()
	got = advanceUntil(t, ctx, c2, tk2, &api.TaskStatus{State: api.TaskState_TASK_STATE_ACCEPTED}, stateIs(api.TaskState_TASK_STATE_RUNNING))
	t.Logf("NONE: ACCEPTED → RUNNING in %v", time.Since(t0))
	for _, s := range got {
		if s.st.GetHealth() != runtime.HealthNone {
			t.Fatalf("status %v has health %q with the check off", s.st.GetState(), s.st.GetHealth())
		}
	}
	// Still running well past the interval × retries of the image check.
	time.Sleep(4 * probeInterval)
	wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer wcancel()
	if code, err := c2.Wait(wctx); err != context.DeadlineExceeded {
		t.Fatalf("Wait of the NONE task = %d, %v; want it still running", code, err)
	}
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	if err := c2.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
}

// TestResolveHealth merges spec and image health checks.
func TestResolveHealth(t *testing.T) {
	img := &imageHealth{Test: []string{"CMD", "/bin/echo", "probe"}, Interval: int64(time.Second), Retries: 5}
	tests := []struct {
		name string
		spec *api.HealthConfig
		img  *imageHealth
		want *healthConfig // nil: no check
	}{
		{name: "none anywhere"},
		{name: "image only", img: img, want: &healthConfig{args: []string{"/bin/echo", "probe"}, interval: time.Second, timeout: DefaultHealthTimeout, retries: 5}},
		{name: "spec NONE", spec: &api.HealthConfig{Test: []string{"NONE"}}, img: img},
		{name: "spec fields over image test", spec: &api.HealthConfig{Interval: ptr(int64(time.Minute)), StartPeriod: ptr(int64(time.Second))}, img: img,
			want: &healthConfig{args: []string{"/bin/echo", "probe"}, interval: time.Minute, timeout: DefaultHealthTimeout, startPeriod: time.Second, retries: 5}},
		{name: "spec shell, defaults", spec: &api.HealthConfig{Test: []string{"CMD-SHELL", "curl -f localhost"}},
			want: &healthConfig{args: []string{"/bin/sh", "-c", "curl -f localhost"}, interval: DefaultHealthInterval, timeout: DefaultHealthTimeout, retries: DefaultHealthRetries}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveHealth(tc.spec, tc.img)
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && (strings.Join(got.args, "|") != strings.Join(tc.want.args, "|") ||
				got.interval != tc.want.interval || got.timeout != tc.want.timeout || got.startPeriod != tc.want.startPeriod || got.retries != tc.want.retries)) {
				t.Fatalf("resolveHealth = %+v, want %+v", got, tc.want)
			}
		})
	}
	if err := checkHealthSpec(&api.HealthConfig{Test: []string{"/bin/true"}}); err == nil {
		t.Fatal("a test without CMD/CMD-SHELL/NONE was accepted")
	}
}
