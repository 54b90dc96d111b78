package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc"

	ctrdexec "github.com/shoalhq/shoal/agent/runtime/containerd"
	"github.com/shoalhq/shoal/agent/runtime/containerd/ctrdtest"
	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// ctrdHost is one containerd daemon, a local registry holding a test
// image, and one `shoal daemon --runtime containerd` manager using them.
type ctrdHost struct {
	ctrd   *ctrdtest.Daemon
	client *client.Client
	reg    *images.Registry
	// ref is the pushed image: programs sleeper (the entrypoint) and hog.
	ref string
	// flags are the daemon's runtime flags, to give again on a restart
	// (without --init).
	flags []string
	// addr and conn reach the daemon's API; dataDir is its data folder
	// (the executor's state folder too).
	addr    string
	conn    *grpc.ClientConn
	dataDir string
	// d is the daemon of a test (nil in a benchmark).
	d *daemon
}

// newCtrdHost starts containerd and a registry and builds and pushes an
// image holding sleeper (its entrypoint) and hog. The caller starts the
// daemon (startDaemon in a test). Everything stops when t ends.
func newCtrdHost(t testing.TB) *ctrdHost {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := &ctrdHost{ctrd: ctrdtest.Start(t), reg: images.StartRegistry(t, "")}
	h.client = h.ctrd.Client(t)
	img, err := images.Build(ctx, images.BuildOptions{
		Ref:        "registry.test:5000/behaviour:v1",
		Programs:   []string{"sleeper", "hog"},
		Entrypoint: []string{"/bin/sleeper"},
	})
	if err != nil {
		t.Fatalf("build image: %v", err)
	}
	h.ref = h.reg.Ref("behaviour", "v1")
	if _, err := h.reg.Push(ctx, img, h.ref); err != nil {
		t.Fatalf("push: %v", err)
	}
	h.flags = []string{"--runtime", "containerd", "--containerd", h.ctrd.Socket,
		"--containerd-namespace", h.ctrd.Namespace, "--insecure-registry", h.reg.Addr}
	return h
}

// startDaemon starts a new single-node cluster on the host with the
// harness of daemon_test.go.
func (h *ctrdHost) startDaemon(t *testing.T) {
	t.Helper()
	h.d = newDaemon(t, "m1")
	h.d.start(append([]string{"--init"}, h.flags...)...)
	h.addr, h.conn, h.dataDir = h.d.addr, h.d.conn, h.d.dir
}

// control returns an API client of the daemon.
func (h *ctrdHost) control() api.ControlClient { return api.NewControlClient(h.conn) }

// cli runs the shoal command line against the daemon (bounded to 60 s).
func (h *ctrdHost) cli(args ...string) (string, error) {
	return runShoal(60*time.Second, append([]string{"--host", h.d.sock()}, args...)...)
}

// cctx returns ctx carrying the containerd namespace of the host.
func (h *ctrdHost) cctx(ctx context.Context) context.Context { return h.ctrd.Context(ctx) }

// create runs `shoal service create --detach -q --name NAME FLAGS...
// IMAGE` and returns the new service's ID.
func (h *ctrdHost) create(t testing.TB, name string, flags []string, image string) string {
	t.Helper()
	cmd := append([]string{"service", "create", "--detach", "-q", "--name", name}, flags...)
	out, err := h.cli(append(cmd, image)...)
	if err != nil {
		t.Fatalf("service create %s: %v\n%s", name, err, out)
	}
	fields := strings.Fields(out)
	if len(fields) == 0 {
		t.Fatalf("service create %s printed no ID", name)
	}
	return fields[len(fields)-1]
}

// tasks returns the service's tasks from the API's ListTasks.
func (h *ctrdHost) tasks(serviceID string) ([]*api.Task, error) {
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	resp, err := h.control().ListTasks(ctx, &api.ListTasksRequest{ServiceIds: []string{serviceID}})
	if err != nil {
		return nil, err
	}
	return resp.GetTasks(), nil
}

// running returns the service's tasks that are RUNNING, or an error
// unless there are exactly n of them.
func (h *ctrdHost) running(serviceID string, n int) ([]*api.Task, error) {
	ts, err := h.tasks(serviceID)
	if err != nil {
		return nil, err
	}
	var run []*api.Task
	for _, t := range ts {
		if t.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING {
			run = append(run, t)
		}
	}
	if len(run) != n {
		return nil, fmt.Errorf("%d of %d tasks running, want %d: %s", len(run), len(ts), n, describeTasks(ts))
	}
	return run, nil
}

// waitRunning polls the API until exactly n tasks of the service run.
func (h *ctrdHost) waitRunning(t testing.TB, serviceID string, n int, timeout time.Duration) []*api.Task {
	t.Helper()
	var run []*api.Task
	pollTB(t, timeout, fmt.Sprintf("%d running tasks of %s", n, serviceID), func() (err error) {
		run, err = h.running(serviceID, n)
		return err
	})
	return run
}

// describeTasks is a one-line summary of tasks for failure messages.
func describeTasks(ts []*api.Task) string {
	var b strings.Builder
	for _, t := range ts {
		fmt.Fprintf(&b, "[%s slot %d %v/%v err=%q] ", t.GetId(), t.GetSlot(), t.GetStatus().GetState(), t.GetDesiredState(), t.GetStatus().GetErr())
	}
	return b.String()
}

// containers returns the containerd containers labelled with the
// service's ID.
func (h *ctrdHost) containers(serviceID string) ([]client.Container, error) {
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	return h.client.Containers(h.cctx(ctx), fmt.Sprintf("labels.%q==%s", ctrdexec.LabelServiceID, serviceID))
}

// pid returns the PID of the task's process, read from containerd (the
// container ID is the task ID).
func (h *ctrdHost) pid(taskID string) (uint32, error) {
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	ctx = h.cctx(ctx)
	c, err := h.client.LoadContainer(ctx, taskID)
	if err != nil {
		return 0, err
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return 0, err
	}
	st, err := task.Status(ctx)
	if err != nil {
		return 0, err
	}
	if st.Status != client.Running {
		return 0, fmt.Errorf("task %s is %s", taskID, st.Status)
	}
	return task.Pid(), nil
}

// mustPID is pid that fails the test.
func (h *ctrdHost) mustPID(t testing.TB, taskID string) int {
	t.Helper()
	p, err := h.pid(taskID)
	if err != nil {
		t.Fatalf("pid of task %s: %v", taskID, err)
	}
	return int(p)
}

// remove removes the service and waits until containerd holds none of
// its containers.
func (h *ctrdHost) remove(t testing.TB, serviceID string) {
	t.Helper()
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	if _, err := h.control().RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: serviceID}); err != nil {
		t.Fatalf("remove service %s: %v", serviceID, err)
	}
	h.waitNoContainers(t, serviceID, 30*time.Second)
}

// waitNoContainers polls containerd until none of the service's
// containers is left.
func (h *ctrdHost) waitNoContainers(t testing.TB, serviceID string, timeout time.Duration) {
	t.Helper()
	pollTB(t, timeout, "no container of service "+serviceID, func() error {
		cs, err := h.containers(serviceID)
		if err != nil {
			return err
		}
		if len(cs) > 0 {
			return fmt.Errorf("%d containers left", len(cs))
		}
		return nil
	})
}

// pollTB is poll for testing.TB (tests and benchmarks).
func pollTB(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
}

// TestContainerBehaviour runs real containers through one containerd
// host and checks what the kernel sees: restarts after kill -9, memory
// limits, user, environment, working folder and tmpfs mounts, rejected
// tasks that leave nothing behind, and containers surviving a daemon
// restart. The subtests share the host and run in order.
func TestContainerBehaviour(t *testing.T) {
	h := newCtrdHost(t)
	h.startDaemon(t)

	t.Run("KilledProcessIsRestarted", func(t *testing.T) {
		id := h.create(t, "victim", []string{"--restart-delay", "100ms"}, h.ref)
		old := h.waitRunning(t, id, 1, 30*time.Second)[0]
		pid := h.mustPID(t, old.GetId())
		if got := old.GetStatus().GetContainer().GetPid(); got != 0 && int(got) != pid {
			t.Errorf("API says pid %d, containerd says %d", got, pid)
		}
		killed := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d: %v", pid, err)
		}
		var repl *api.Task
		pollTB(t, 20*time.Second, "replacement task running and old one failed", func() error {
			ts, err := h.tasks(id)
			if err != nil {
				return err
			}
			var oldNow *api.Task
			repl = nil
			for _, x := range ts {
				switch {
				case x.GetId() == old.GetId():
					oldNow = x
				case x.GetSlot() == old.GetSlot() && x.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING:
					repl = x
				}
			}
			if oldNow.GetStatus().GetState() != api.TaskState_TASK_STATE_FAILED || repl == nil {
				return fmt.Errorf("not yet: %s", describeTasks(ts))
			}
			return nil
		})
		t.Logf("replacement %s running %v after kill -9 of %d", repl.GetId(), time.Since(killed).Round(time.Millisecond), pid)
		newPID := h.mustPID(t, repl.GetId())
		if newPID == pid {
			t.Errorf("replacement runs as the killed pid %d", pid)
		}
		ts, _ := h.tasks(id)
		for _, x := range ts {
			if x.GetId() == old.GetId() {
				t.Logf("old task: %v err=%q exit=%d", x.GetStatus().GetState(), x.GetStatus().GetErr(), x.GetStatus().GetContainer().GetExitCode())
			}
		}
		h.remove(t, id)
	})

	t.Run("MemoryLimitOOMKills", func(t *testing.T) {
		id := h.create(t, "hog", []string{"--limit-memory", "16M", "--restart-condition", "none",
			"--restart-delay", "100ms", "--env", "MB=64", "--entrypoint", "/bin/hog"}, h.ref)
		var failed *api.Task
		pollTB(t, 30*time.Second, "hog task failed", func() error {
			ts, err := h.tasks(id)
			if err != nil {
				return err
			}
			if len(ts) != 1 || ts[0].GetStatus().GetState() < api.TaskState_TASK_STATE_COMPLETE {
				return fmt.Errorf("not yet: %s", describeTasks(ts))
			}
			failed = ts[0]
			return nil
		})
		st := failed.GetStatus()
		t.Logf("hog task %s: %v err=%q exit=%d", failed.GetId(), st.GetState(), st.GetErr(), st.GetContainer().GetExitCode())
		if st.GetState() != api.TaskState_TASK_STATE_FAILED {
			t.Errorf("hog task is %v, want FAILED", st.GetState())
		}
		if !strings.Contains(st.GetErr(), ctrdexec.ErrOOMKilled.Error()) && !strings.Contains(st.GetErr(), "137") {
			t.Errorf("hog task err %q names neither the OOM kill nor exit 137", st.GetErr())
		}
		// Restart condition none: no replacement comes, not even after
		// many times the restart delay.
		for until := time.Now().Add(time.Second); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
			if ts, err := h.tasks(id); err != nil || len(ts) != 1 {
				t.Fatalf("want the one failed task, got %s (%v)", describeTasks(ts), err)
			}
		}
		h.remove(t, id)
	})

	t.Run("UserEnvWorkdirTmpfs", func(t *testing.T) {
		id := h.create(t, "shaped", []string{"--user", "65534:65534", "--env", "GREETING=hello shoal",
			"--workdir", "/scratch", "--mount", "type=tmpfs,target=/scratch"}, h.ref)
		task := h.waitRunning(t, id, 1, 30*time.Second)[0]
		pid := h.mustPID(t, task.GetId())
		proc := func(name string) string {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
			if err != nil {
				t.Fatalf("read /proc/%d/%s: %v", pid, name, err)
			}
			return string(b)
		}
		var uid, gid string
		for _, l := range strings.Split(proc("status"), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "Uid:" {
				uid = strings.Join(f[1:], " ")
			} else if len(f) >= 2 && f[0] == "Gid:" {
				gid = strings.Join(f[1:], " ")
			}
		}
		if uid != "65534 65534 65534 65534" || gid != "65534 65534 65534 65534" {
			t.Errorf("process runs as Uid %q Gid %q, want 65534 throughout", uid, gid)
		}
		env := strings.Split(proc("environ"), "\x00")
		for _, want := range []string{"GREETING=hello shoal", "SHOAL_TASK_ID=" + task.GetId()} {
			if !slices.Contains(env, want) {
				t.Errorf("environment lacks %q: %q", want, env)
			}
		}
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err != nil {
			t.Fatal(err)
		}
		if cwd != "/scratch" && !strings.HasSuffix(cwd, "/scratch") {
			t.Errorf("working folder %q, want /scratch", cwd)
		}
		found := false
		for _, l := range strings.Split(proc("mountinfo"), "\n") {
			// ID PARENT MAJ:MIN ROOT TARGET OPTIONS ... - FSTYPE SOURCE SUPER
			f := strings.Fields(l)
			if len(f) > 5 && f[4] == "/scratch" {
				if i := slices.Index(f, "-"); i > 0 && i+1 < len(f) && f[i+1] == "tmpfs" {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("no tmpfs on /scratch in the process's mountinfo:\n%s", proc("mountinfo"))
		}
		h.remove(t, id)
	})

	t.Run("MissingImageRejected", func(t *testing.T) {
		missing := h.reg.Ref("no-such-image", "v1")
		id := h.create(t, "ghost", []string{"--restart-condition", "none"}, missing)
		task := h.waitEnded(t, id)
		if !strings.Contains(task.GetStatus().GetErr(), "no-such-image") {
			t.Errorf("task err %q does not name the image %s", task.GetStatus().GetErr(), missing)
		}
		h.requireNothingLeft(t, id, task.GetId())
		ctx, cancel := ctxT(5 * time.Second)
		defer cancel()
		if img, err := h.client.GetImage(h.cctx(ctx), missing); err == nil {
			t.Errorf("containerd holds an image record %s", img.Name())
		}
		h.remove(t, id)
	})

	t.Run("MissingBindSourceRejected", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "not-there")
		id := h.create(t, "blind", []string{"--restart-condition", "none",
			"--mount", "type=bind,source=" + src + ",target=/data"}, h.ref)
		task := h.waitEnded(t, id)
		want := "bind mount source " + src + " does not exist"
		if !strings.Contains(task.GetStatus().GetErr(), want) {
			t.Errorf("task err %q does not say %q", task.GetStatus().GetErr(), want)
		}
		h.requireNothingLeft(t, id, task.GetId())
		h.remove(t, id)
	})

	t.Run("DaemonRestartKeepsContainers", func(t *testing.T) {
		id := h.create(t, "trio", []string{"--replicas", "3"}, h.ref)
		before := map[string]int{} // task ID (= container ID) -> PID
		for _, x := range h.waitRunning(t, id, 3, 30*time.Second) {
			before[x.GetId()] = h.mustPID(t, x.GetId())
		}
		h.requireContainers(t, id, before)
		logBefore, _ := os.ReadFile(h.d.logPath)
		h.d.stop()
		for tid, pid := range before {
			if err := syscall.Kill(pid, 0); err != nil {
				t.Errorf("container %s (pid %d) died with the daemon: %v", tid, pid, err)
			}
		}
		restarted := time.Now()
		h.d.start(h.flags...)
		// The store says RUNNING from before the stop: wait until the
		// agent has reattached to all three containers.
		pollTB(t, 30*time.Second, "agent reattached to 3 tasks", func() error {
			b, err := os.ReadFile(h.d.logPath)
			if err != nil {
				return err
			}
			n := strings.Count(string(b[min(len(logBefore), len(b)):]), "reattached to task")
			if n < 3 {
				return fmt.Errorf("%d reattached", n)
			}
			return nil
		})
		h.waitRunning(t, id, 3, 30*time.Second)
		t.Logf("3 tasks reattached and running %v after the restart", time.Since(restarted).Round(time.Millisecond))
		// Nothing may change for several heartbeats (500 ms each).
		holdUntil := time.Now().Add(3 * time.Second)
		for time.Now().Before(holdUntil) {
			ts, err := h.tasks(id)
			if err != nil {
				t.Fatal(err)
			}
			if len(ts) != 3 {
				t.Fatalf("after restart: %d tasks, want the same 3: %s", len(ts), describeTasks(ts))
			}
			for _, x := range ts {
				if _, ok := before[x.GetId()]; !ok || x.GetStatus().GetState() != api.TaskState_TASK_STATE_RUNNING {
					t.Fatalf("after restart: unexpected task %s", describeTasks([]*api.Task{x}))
				}
			}
			h.requireContainers(t, id, before)
			time.Sleep(250 * time.Millisecond)
		}
		out, err := h.cli("service", "ps", id)
		if err != nil || strings.Count(strings.ToLower(out), "running") < 3 {
			t.Errorf("service ps after restart: %v\n%s", err, out)
		}
		h.remove(t, id)
	})
}

// waitEnded polls until the service's single task has ended (state
// COMPLETE or later) and returns it.
func (h *ctrdHost) waitEnded(t testing.TB, serviceID string) *api.Task {
	t.Helper()
	var task *api.Task
	pollTB(t, 30*time.Second, "task of "+serviceID+" ended", func() error {
		ts, err := h.tasks(serviceID)
		if err != nil {
			return err
		}
		if len(ts) != 1 || ts[0].GetStatus().GetState() < api.TaskState_TASK_STATE_COMPLETE {
			return fmt.Errorf("not yet: %s", describeTasks(ts))
		}
		task = ts[0]
		return nil
	})
	st := task.GetStatus().GetState()
	if st != api.TaskState_TASK_STATE_REJECTED && st != api.TaskState_TASK_STATE_FAILED {
		t.Errorf("task %s is %v, want REJECTED or FAILED", task.GetId(), st)
	}
	t.Logf("task %s: %v err=%q", task.GetId(), st, task.GetStatus().GetErr())
	return task
}

// requireNothingLeft checks that a rejected task left no container,
// snapshot or network namespace.
func (h *ctrdHost) requireNothingLeft(t testing.TB, serviceID, taskID string) {
	t.Helper()
	if cs, err := h.containers(serviceID); err != nil || len(cs) != 0 {
		t.Errorf("service %s: %d containers left (%v)", serviceID, len(cs), err)
	}
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	if _, err := h.client.SnapshotService("overlayfs").Stat(h.cctx(ctx), taskID); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot %s: want not found, got %v", taskID, err)
	}
	if _, err := os.Lstat(filepath.Join(h.dataDir, "netns", taskID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("network namespace of %s left behind (%v)", taskID, err)
	}
}

// requireContainers checks that containerd holds exactly the service's
// containers in want (ID -> PID), each running its task as that PID.
func (h *ctrdHost) requireContainers(t testing.TB, serviceID string, want map[string]int) {
	t.Helper()
	cs, err := h.containers(serviceID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID())
	}
	if len(ids) != len(want) {
		t.Fatalf("containers of %s: %v, want %d", serviceID, ids, len(want))
	}
	for _, cid := range ids {
		pid, ok := want[cid]
		if !ok {
			t.Fatalf("new container %s (have %v)", cid, ids)
		}
		if got, err := h.pid(cid); err != nil || int(got) != pid {
			t.Fatalf("container %s: pid %d (%v), want %d", cid, got, err, pid)
		}
	}
}
