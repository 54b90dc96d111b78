package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/agent/runtime/containerd/ctrdtest"
	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// A registry behind basic auth: a service created with
// --with-registry-auth and the right credential in $SHOAL_CONFIG runs;
// one created with a wrong password gets its tasks REJECTED saying the
// registry refused the credentials (401). Neither `service inspect` nor
// `service ps` ever shows a password. The node-local commands work on the
// same node: `image load` imports an OCI archive and `volume ls` answers.
func TestRegistryAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const goodPass, wrongPass = "g00d-Secret", "wr0ng-Secret"
	ctrd := ctrdtest.Start(t)
	reg := images.StartRegistry(t, "", images.RegistryOptions{User: "alice", Password: goodPass})
	img, err := images.Build(ctx, images.BuildOptions{Ref: "registry.test:5000/echo:v1", Programs: []string{"echo"}, Entrypoint: []string{"/bin/echo"}})
	if err != nil {
		t.Fatalf("build image: %v", err)
	}
	// Two names: the node keeps what it pulled for good, so bad must
	// name an image it does not have.
	ref, badRef := reg.Ref("private/echo", "v1"), reg.Ref("private/other", "v1")
	for _, r := range []string{ref, badRef} {
		if _, err := reg.Push(ctx, img, r); err != nil {
			t.Fatalf("push %s: %v", r, err)
		}
	}
	config := func(pass string) string {
		p := filepath.Join(t.TempDir(), "config.json")
		auth := base64.StdEncoding.EncodeToString([]byte("alice:" + pass))
		if err := os.WriteFile(p, []byte(`{"auths":{"`+reg.Addr+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m := newDaemon(t, "m1")
	m.start("--init", "--runtime", "containerd", "--containerd", ctrd.Socket,
		"--containerd-namespace", ctrd.Namespace, "--insecure-registry", reg.Addr)

	t.Setenv("SHOAL_CONFIG", config(goodPass))
	out, err := runShoal(90*time.Second, "--host", m.sock(), "service", "create", "--name", "good", "--with-registry-auth", "--wait-timeout", "80s", ref)
	if err != nil || !strings.Contains(out, "converged") {
		ps, _ := m.cli("service", "ps", "--no-trunc", "good")
		t.Fatalf("service create with the right credential: %v\n%s\n%s", err, out, ps)
	}

	t.Setenv("SHOAL_CONFIG", config(wrongPass))
	out, err = runShoal(30*time.Second, "--host", m.sock(), "service", "create", "--name", "bad", "--with-registry-auth", "--detach", badRef)
	if err != nil {
		t.Fatalf("service create with a wrong credential: %v\n%s", err, out)
	}
	poll(t, 60*time.Second, "a REJECTED task of service bad saying the credentials were refused", func() error {
		gctx, gcancel := ctxT(5 * time.Second)
		defer gcancel()
		svc, err := m.control().GetService(gctx, &api.GetServiceRequest{ServiceId: "bad"})
		if err != nil {
			return err
		}
		tasks, err := m.control().ListTasks(gctx, &api.ListTasksRequest{ServiceIds: []string{svc.GetService().GetId()}})
		if err != nil {
			return err
		}
		for _, tk := range tasks.GetTasks() {
			if p := tk.GetSpec().GetContainer().GetRegistryAuth().GetPassword(); p != "" {
				t.Fatalf("ListTasks returned the registry password %q", p)
			}
			msg := tk.GetStatus().GetErr()
			if tk.GetStatus().GetState() == api.TaskState_TASK_STATE_REJECTED &&
				strings.Contains(msg, "refused the credentials") && strings.Contains(msg, "401") {
				t.Logf("rejected: %s", msg)
				return nil
			}
		}
		return fmt.Errorf("tasks: %v", tasks.GetTasks())
	})

	for _, args := range [][]string{
		{"service", "inspect", "good"}, {"service", "inspect", "bad"},
		{"service", "inspect", "--pretty", "good"}, {"service", "ps", "--no-trunc", "bad"},
	} {
		out, err := m.cli(args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if strings.Contains(out, goodPass) || strings.Contains(out, wrongPass) {
			t.Fatalf("%v shows a registry password:\n%s", args, out)
		}
		if args[1] == "inspect" && len(args) == 3 && !strings.Contains(out, "alice") {
			t.Fatalf("%v lost the registry username:\n%s", args, out)
		}
	}

	// Node-local commands, through the node's unix socket.
	out, err = m.localCLI("image", "load", "-i", img.TarPath)
	if err != nil || !strings.Contains(out, "Loaded image: registry.test:5000/echo:v1") {
		t.Fatalf("image load: %v\n%s", err, out)
	}
	if out, err = m.tcpCLI("image", "load", "-i", img.TarPath); err == nil || !strings.Contains(out, "unix socket") {
		t.Fatalf("image load over TCP: err=%v\n%s", err, out)
	}
	out, err = m.localCLI("volume", "ls")
	if err != nil || !strings.Contains(out, "IN USE BY") {
		t.Fatalf("volume ls: %v\n%s", err, out)
	}
	if out, err = m.localCLI("volume", "rm", "nosuchvolume"); err == nil || !strings.Contains(out, "no such volume") {
		t.Fatalf("volume rm of a missing volume: err=%v\n%s", err, out)
	}

	// A simulated-runtime node has no images to load.
	sim := newDaemon(t, "sim")
	sim.start("--init")
	if out, err = sim.localCLI("image", "load", "-i", img.TarPath); err == nil || !strings.Contains(out, "image load needs --runtime containerd") {
		t.Fatalf("image load on a simulated node: err=%v\n%s", err, out)
	}
}
