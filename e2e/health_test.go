package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// Health checks gate RUNNING, and a task that turns unhealthy is
// replaced per the restart policy: through the real daemon and
// containerd, with the image's own HEALTHCHECK.
func TestHealthCheckGatesRunningAndReplacesUnhealthy(t *testing.T) {
	h := newCtrdHost(t)
	h.startDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img, err := images.Build(ctx, images.BuildOptions{
		Ref:         "registry.test:5000/health:v1",
		Programs:    []string{"echo"},
		Entrypoint:  []string{"/bin/echo"},
		Healthcheck: &images.Healthcheck{Test: []string{"CMD", "/bin/echo", "probe"}, Interval: 200 * time.Millisecond, Timeout: time.Second, Retries: 2},
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	ref := h.reg.Ref("health", "v1")
	if _, err := h.reg.Push(ctx, img, ref); err != nil {
		t.Fatalf("push: %v", err)
	}
	// The echo server answers /healthz with 503 while /tmp/unhealthy
	// exists: /tmp is a host folder, so the test can flip it.
	tmp := t.TempDir()
	id := h.create(t, "web", []string{"--mount", "type=bind,source=" + tmp + ",target=/tmp", "--restart-delay", "100ms"}, ref)
	first := h.waitRunning(t, id, 1, 60*time.Second)[0]
	if got := first.GetStatus().GetHealth(); got != "healthy" {
		t.Fatalf("running task's health %q, want healthy (RUNNING only once healthy)", got)
	}
	if err := os.WriteFile(filepath.Join(tmp, "unhealthy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pollTB(t, 30*time.Second, "unhealthy task failed and replaced by a healthy one", func() error {
		tasks, err := h.tasks(id)
		if err != nil {
			return err
		}
		var failed bool
		for _, tk := range tasks {
			if tk.Id == first.Id {
				st := tk.GetStatus()
				failed = st.GetState() == api.TaskState_TASK_STATE_FAILED && strings.Contains(st.GetErr(), "unhealthy")
			}
		}
		if !failed {
			return fmt.Errorf("first task not failed as unhealthy yet:\n%s", describeTasks(tasks))
		}
		// The replacement cannot turn healthy while the file is there:
		// remove it once the first task has failed.
		_ = os.Remove(filepath.Join(tmp, "unhealthy"))
		for _, tk := range tasks {
			if tk.Id != first.Id && tk.Slot == first.Slot && tk.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING && tk.GetStatus().GetHealth() == "healthy" {
				return nil
			}
		}
		return fmt.Errorf("no healthy replacement yet:\n%s", describeTasks(tasks))
	})
}

// --init puts shoal's own init in front of the command as PID 1; it
// forwards the stop signal, so the task still stops cleanly.
func TestInitRunsAsPID1(t *testing.T) {
	h := newCtrdHost(t)
	h.startDaemon(t)
	id := h.create(t, "withinit", []string{"--init"}, h.ref)
	task := h.waitRunning(t, id, 1, 60*time.Second)[0]
	pid := h.mustPID(t, task.Id)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) < 4 || args[0] != "/sbin/shoal-init" || args[1] != "init" || args[3] != "/bin/sleeper" {
		t.Fatalf("PID 1 of the task runs %q, want /sbin/shoal-init init -- /bin/sleeper", args)
	}
	h.remove(t, id)
	h.waitNoContainers(t, id, 30*time.Second)
}
