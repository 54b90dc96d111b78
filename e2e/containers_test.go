package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/agent/runtime/containerd/ctrdtest"
	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// A service of 3 replicas from an image pushed to a local registry runs
// as real containers through containerd, and `service rm` leaves no
// container behind.
func TestServiceRunsRealContainers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctrd := ctrdtest.Start(t)
	reg := images.StartRegistry(t, "")
	img, err := images.Build(ctx, images.BuildOptions{Ref: "registry.test:5000/echo:v1", Programs: []string{"echo"}, Entrypoint: []string{"/bin/echo"}})
	if err != nil {
		t.Fatalf("build image: %v", err)
	}
	ref := reg.Ref("echo", "v1")
	pushed, err := reg.Push(ctx, img, ref)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	m := newDaemon(t, "m1")
	m.start("--init", "--runtime", "containerd", "--containerd", ctrd.Socket,
		"--containerd-namespace", ctrd.Namespace, "--insecure-registry", reg.Addr)
	out, err := runShoal(90*time.Second, "--host", m.sock(), "service", "create", "--name", "web", "--replicas", "3", "--wait-timeout", "80s", ref)
	if err != nil || !strings.Contains(out, "converged") {
		ps, _ := m.cli("service", "ps", "--no-trunc", "web")
		t.Fatalf("service create: %v\n%s\n%s", err, out, ps)
	}
	client := ctrd.Client(t)
	cctx := ctrd.Context(ctx)
	running := func(want int) func() error {
		return func() error {
			cs, err := client.Containers(cctx)
			if err != nil {
				return err
			}
			n := 0
			for _, c := range cs {
				task, err := c.Task(cctx, nil)
				if err != nil {
					continue
				}
				st, err := task.Status(cctx)
				if err == nil && st.Status == "running" {
					n++
				}
			}
			if n != want || len(cs) != want {
				return fmt.Errorf("%d containers, %d running", len(cs), n)
			}
			return nil
		}
	}
	poll(t, 10*time.Second, "three running containers", running(3))
	// The manager resolved the tag once; every task runs that digest.
	gctx, gcancel := ctxT(5 * time.Second)
	defer gcancel()
	svc, err := m.control().GetService(gctx, &api.GetServiceRequest{ServiceId: "web"})
	if err != nil || svc.Service.ImageDigest != pushed || svc.Service.Spec.Task.Container.Image != ref {
		t.Fatalf("service image %q digest %q (err %v); want %q and %q", svc.GetService().GetSpec().GetTask().GetContainer().GetImage(), svc.GetService().GetImageDigest(), err, ref, pushed)
	}
	tasks, err := m.control().ListTasks(gctx, &api.ListTasksRequest{ServiceIds: []string{svc.Service.Id}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks.Tasks {
		if tk.ImageDigest != pushed {
			t.Fatalf("task %s digest %q, want %q", tk.Id, tk.ImageDigest, pushed)
		}
	}
	if out, err := m.cli("service", "rm", "web"); err != nil {
		t.Fatalf("service rm: %v\n%s", err, out)
	}
	poll(t, 60*time.Second, "no container left after service rm", running(0))
}
