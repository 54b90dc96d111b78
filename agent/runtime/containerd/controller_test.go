package containerd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

func ptr[T any](v T) *T { return &v }

func task(id, image string, cs *api.ContainerSpec) *api.Task {
	if cs == nil {
		cs = &api.ContainerSpec{}
	}
	cs.Image = image
	return &api.Task{Id: id, ServiceId: "svc1", DesiredState: api.TaskState_TASK_STATE_RUNNING,
		Spec: &api.TaskSpec{Container: cs}}
}

// TestEchoRunsInItsNetNSAndShutsDown runs the echo image: it answers HTTP
// inside the task's own network namespace, Prepare and Start are
// idempotent, Shutdown stops it well within the grace period with exit
// code 0, and Remove leaves nothing.
func TestEchoRunsInItsNetNSAndShutsDown(t *testing.T) {
	env := newEnv(t)
	ref := env.importImage(t, images.BuildOptions{Ref: "registry.test:5000/echo:v1", Programs: []string{"echo"}, Entrypoint: []string{"/bin/echo"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := controllerOf(t, env.e, task("echo1", ref, &api.ContainerSpec{StopGracePeriod: ptr(int64(5 * time.Second))}))

	// The first Prepare unpacks the image; time a second task's too.
	t0 := time.Now()
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	t.Logf("first Prepare (with unpack) %v, Start %v", t1.Sub(t0), t2.Sub(t1))
	if err := c.Prepare(ctx); err != nil {
		t.Fatalf("second Prepare: %v", err)
	}
	cs1, err := c.ContainerStatus(ctx)
	if err != nil || cs1.GetPid() == 0 {
		t.Fatalf("ContainerStatus = %v, %v", cs1, err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if cs2, _ := c.ContainerStatus(ctx); cs2.GetPid() != cs1.GetPid() {
		t.Fatalf("second Start changed the PID %d → %d", cs1.GetPid(), cs2.GetPid())
	}
	waitForLog(t, env.e.LogPath("echo1"), "echo: listening", 10*time.Second)

	body, err := httpGetInNetNS(env.e.NetNSPath("echo1"), 80)
	if err != nil {
		t.Fatalf("GET inside the task's netns: %v", err)
	}
	if !strings.Contains(body, "200 OK") || !strings.Contains(body, `"task_id":"echo1"`) {
		t.Fatalf("echo answered %q", body)
	}

	// A second task, image already unpacked: the figure to compare with
	// RECIPES' 73 ms NewContainer+NewTask+Start.
	c2 := controllerOf(t, env.e, task("echo2", ref, nil))
	t0 = time.Now()
	if err := c2.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	t1 = time.Now()
	if err := c2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("second task: Prepare %v, Start %v, total %v", t1.Sub(t0), time.Since(t1), time.Since(t0))

	t0 = time.Now()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	t.Logf("Shutdown took %v", took)
	if took > 4*time.Second {
		t.Fatalf("Shutdown took %v: SIGTERM was not honoured", took)
	}
	if code, err := c.Wait(ctx); err != nil || code != 0 {
		t.Fatalf("Wait after Shutdown = %d, %v; want 0", code, err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := c2.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	if code, err := c2.Wait(ctx); err != nil || code != 137 {
		t.Fatalf("Wait after Terminate = %d, %v; want 137", code, err)
	}
	t0 = time.Now()
	for _, ctl := range []*Controller{c, c2} {
		if err := ctl.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ctl.Remove(ctx); err != nil {
			t.Fatalf("second Remove: %v", err)
		}
	}
	t.Logf("Remove of two tasks %v", time.Since(t0))
	if l := env.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
	if _, err := c.Wait(ctx); !errors.Is(err, runtime.ErrContainerGone) {
		t.Fatalf("Wait after Remove: %v, want ErrContainerGone", err)
	}
}

// TestExitCodeAndKillAfterGrace: the exit image's CODE comes back from
// Wait; a stop signal the process ignores leads to SIGKILL after the
// grace period (exit 137).
func TestExitCodeAndKillAfterGrace(t *testing.T) {
	env := newEnv(t)
	ref := env.importImage(t, images.BuildOptions{Ref: "registry.test:5000/exit:v1", Programs: []string{"exit"}, Entrypoint: []string{"/bin/exit"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c := controllerOf(t, env.e, task("exit3", ref, &api.ContainerSpec{Env: []string{"CODE=3"}}))
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if code, err := c.Wait(ctx); err != nil || code != 3 {
		t.Fatalf("Wait = %d, %v; want 3", code, err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("Start after exit: %v", err)
	}
	if code, _ := c.Wait(ctx); code != 3 {
		t.Fatalf("Start after exit ran the task again (exit %d)", code)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}

	// Go programs ignore SIGWINCH: Shutdown must kill after the grace.
	grace := 300 * time.Millisecond
	c2 := controllerOf(t, env.e, task("stubborn", ref, &api.ContainerSpec{Env: []string{"SLEEP=60s"}, StopSignal: "SIGWINCH", StopGracePeriod: ptr(int64(grace))}))
	if err := c2.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := c2.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	if took < grace || took > grace+5*time.Second {
		t.Fatalf("Shutdown took %v with a %v grace period", took, grace)
	}
	if code, err := c2.Wait(ctx); err != nil || code != 137 {
		t.Fatalf("Wait = %d, %v; want 137", code, err)
	}
	if err := c2.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if l := env.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// TestSpecFromTask checks that the task's spec reaches the container:
// command, env, workdir, non-root user, hostname, read-only rootfs,
// labels, tmpfs, volume, limits (memory visible in the cgroup), and in
// the running process itself (uid, environment).
func TestSpecFromTask(t *testing.T) {
	env := newEnv(t)
	ref := env.importImage(t, images.BuildOptions{Ref: "registry.test:5000/exit:v1", Programs: []string{"exit"}, Entrypoint: []string{"/bin/nothing"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tk := task("spec1", ref, &api.ContainerSpec{
		Command:  []string{"/bin/exit"},
		Env:      []string{"SLEEP=60s", "GREETING=hello"},
		Dir:      "/tmp",
		User:     "65534:65534",
		Groups:   []string{"1234"},
		Hostname: "web-1",
		ReadOnly: true,
		Labels:   map[string]string{"team": "blue"},
		Mounts: []*api.Mount{
			{Type: api.Mount_TYPE_TMPFS, Target: "/scratch", TmpfsSizeBytes: 1 << 20},
			{Type: api.Mount_TYPE_VOLUME, Source: "data", Target: "/data"},
		},
	})
	tk.Spec.Resources = &api.ResourceRequirements{Limits: &api.Resources{MemoryBytes: 64 << 20, NanoCpus: 5e8, Pids: 50}}
	c := controllerOf(t, env.e, tk)
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	ctr, err := env.e.Client().LoadContainer(ctx, "spec1")
	if err != nil {
		t.Fatal(err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := spec.Process
	if !slices.Contains(p.User.AdditionalGids, 1234) {
		t.Errorf("additional gids %v, want 1234 among them", p.User.AdditionalGids)
	}
	if !slices.Equal(p.Args, []string{"/bin/exit"}) || p.Cwd != "/tmp" || p.User.UID != 65534 || p.User.GID != 65534 {
		t.Errorf("process = args %v cwd %q user %+v", p.Args, p.Cwd, p.User)
	}
	for _, want := range []string{"GREETING=hello", "SLEEP=60s", "SHOAL_TASK_ID=spec1", "PATH=/bin"} {
		if !slices.Contains(p.Env, want) {
			t.Errorf("env %v lacks %s", p.Env, want)
		}
	}
	if spec.Hostname != "web-1" || !spec.Root.Readonly {
		t.Errorf("hostname %q, readonly root %v", spec.Hostname, spec.Root.Readonly)
	}
	r := spec.Linux.Resources
	if *r.Memory.Limit != 64<<20 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || r.Pids.Limit == nil || *r.Pids.Limit != 50 {
		t.Errorf("resources = memory %v cpu %v/%v pids %+v", *r.Memory.Limit, *r.CPU.Quota, *r.CPU.Period, r.Pids)
	}
	var tmpfs, volume bool
	for _, m := range spec.Mounts {
		if m.Destination == "/scratch" && m.Type == "tmpfs" && slices.Contains(m.Options, "size=1048576") {
			tmpfs = true
		}
		if m.Destination == "/data" && m.Source == filepath.Join(env.state, "volumes", "data") {
			volume = true
		}
	}
	if !tmpfs || !volume {
		t.Errorf("mounts %+v: tmpfs %v volume %v", spec.Mounts, tmpfs, volume)
	}
	labels, err := ctr.Labels(ctx)
	if err != nil || labels["team"] != "blue" || labels[LabelTaskID] != "spec1" || labels[LabelServiceID] != "svc1" {
		t.Errorf("labels = %v, %v", labels, err)
	}

	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cs, err := c.ContainerStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Start returns once runc started the process, which may still be
	// runc's init (its own environment) for a moment before it execs the
	// program: poll.
	var environ []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		environ, _ = os.ReadFile("/proc/" + itoa(cs.GetPid()) + "/environ")
		if strings.Contains(string(environ), "GREETING=hello\x00") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(string(environ), "GREETING=hello\x00") {
		t.Errorf("process environment %q", environ)
	}
	status, err := os.ReadFile("/proc/" + itoa(cs.GetPid()) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "Uid:\t65534\t65534") {
		t.Errorf("process status:\n%s", status)
	}
	limit, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", spec.Linux.CgroupsPath, "memory.limit_in_bytes"))
	if err != nil || strings.TrimSpace(string(limit)) != "67108864" {
		t.Errorf("memory.limit_in_bytes = %q, %v", limit, err)
	}
	if err := c.Terminate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if l := env.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
	if _, err := os.Stat(filepath.Join(env.state, "volumes", "data")); err != nil {
		t.Errorf("named volume not kept: %v", err)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
