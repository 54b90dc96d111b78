package containerd

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// recordingNetwork is a runtime.Network that counts its calls per task.
type recordingNetwork struct {
	mu       sync.Mutex
	attached map[string]int
	detached map[string]int
}

func (n *recordingNetwork) Attach(_ context.Context, t *api.Task, _ string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.attached[t.GetId()]++
	return "", nil
}

func (n *recordingNetwork) Detach(_ context.Context, t *api.Task, _ string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.detached[t.GetId()]++
	return nil
}

func (n *recordingNetwork) counts(id string) (attached, detached int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attached[id], n.detached[id]
}

// A task leaves its networks as soon as its process has exited, whether
// it was stopped or exited by itself, not only when it is removed: its
// addresses may go to another task at once.
func TestNetworkReleasedWhenTheProcessExits(t *testing.T) {
	env := newEnv(t)
	nw := &recordingNetwork{attached: map[string]int{}, detached: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := New(ctx, Config{Address: env.d.Socket, Namespace: env.d.Namespace, StateDir: env.state,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Network: nw})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	echo := env.importImage(t, images.BuildOptions{Ref: "registry.test:5000/echo:v1", Programs: []string{"echo"}, Entrypoint: []string{"/bin/echo"}})
	exit := env.importImage(t, images.BuildOptions{Ref: "registry.test:5000/exit:v1", Programs: []string{"exit"}, Entrypoint: []string{"/bin/exit"}})
	onNet := func(tk *api.Task) *api.Task {
		tk.Networks = []*api.NetworkAttachment{{NetworkId: "net", Addresses: []string{"10.0.0.2/24"}}}
		return tk
	}

	stopped := controllerOf(t, e, onNet(task("stopped", echo, nil)))
	exited := controllerOf(t, e, onNet(task("exited", exit, &api.ContainerSpec{Env: []string{"CODE=3"}})))
	for _, c := range []*Controller{stopped, exited} {
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitForLog(t, e.LogPath("stopped"), "echo: listening", 10*time.Second)
	if a, d := nw.counts("stopped"); a != 1 || d != 0 {
		t.Fatalf("running task: attached %d times, detached %d; want 1 and 0", a, d)
	}
	if err := stopped.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, d := nw.counts("stopped"); d == 0 {
		t.Fatal("a stopped task still holds its network attachment")
	}
	if code, err := exited.Wait(ctx); err != nil || code != 3 {
		t.Fatalf("Wait = %d, %v; want 3", code, err)
	}
	if _, d := nw.counts("exited"); d == 0 {
		t.Fatal("a task that exited still holds its network attachment")
	}
	for _, c := range []*Controller{stopped, exited} {
		if err := c.Remove(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
