package controlapi

import (
	"context"
	"testing"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// authSpec is validSpec with a registry credential.
func authSpec(user, pass string) *api.ServiceSpec {
	spec := validSpec()
	spec.Task.Container.RegistryAuth = &api.RegistryAuth{ServerAddress: "reg.example:5000", Username: user, Password: pass}
	return spec
}

// storedAuth is the registry credential of the stored service.
func storedAuth(t *testing.T, st *store.MemoryStore) *api.RegistryAuth {
	t.Helper()
	svcs := storeServices(st)
	if len(svcs) != 1 {
		t.Fatalf("want 1 stored service, got %d", len(svcs))
	}
	return svcs[0].GetSpec().GetTask().GetContainer().GetRegistryAuth()
}

// wantRedacted fails unless svc carries the credential without password.
func wantRedacted(t *testing.T, what string, svc *api.Service) {
	t.Helper()
	a := svc.GetSpec().GetTask().GetContainer().GetRegistryAuth()
	if a.GetUsername() == "" || a.GetServerAddress() == "" {
		t.Fatalf("%s: registry_auth lost its server or username: %v", what, a)
	}
	if a.GetPassword() != "" {
		t.Fatalf("%s: registry password returned: %v", what, a)
	}
	if p := svc.GetPreviousSpec().GetTask().GetContainer().GetRegistryAuth().GetPassword(); p != "" {
		t.Fatalf("%s: previous spec registry password returned: %q", what, p)
	}
}

func TestRegistryPasswordRedacted(t *testing.T) {
	ctx := context.Background()
	srv, st, _ := newTestServer(t)
	created, err := srv.CreateService(ctx, &api.CreateServiceRequest{Spec: authSpec("alice", "s3cret")})
	must(t, err)
	wantRedacted(t, "CreateService", created.GetService())
	if a := storedAuth(t, st); a.GetPassword() != "s3cret" {
		t.Fatalf("the store lost the password: %v", a)
	}
	got, err := srv.GetService(ctx, &api.GetServiceRequest{ServiceId: created.GetService().GetId()})
	must(t, err)
	wantRedacted(t, "GetService", got.GetService())
	list, err := srv.ListServices(ctx, &api.ListServicesRequest{})
	must(t, err)
	if len(list.GetServices()) != 1 {
		t.Fatalf("ListServices: want 1 service, got %d", len(list.GetServices()))
	}
	wantRedacted(t, "ListServices", list.GetServices()[0])

	// An update with a new password stores it, and returns neither.
	upd, err := srv.UpdateService(ctx, &api.UpdateServiceRequest{
		ServiceId: created.GetService().GetId(),
		Version:   got.GetService().GetMeta().GetVersion(),
		Spec:      authSpec("alice", "n3w"),
	})
	must(t, err)
	wantRedacted(t, "UpdateService", upd.GetService())
	if a := storedAuth(t, st); a.GetPassword() != "n3w" {
		t.Fatalf("the update did not store the new password: %v", a)
	}

	// Tasks carry the spec: ListTasks blanks it too, the store keeps it.
	ts := &api.TaskSpec{Container: authSpec("alice", "n3w").GetTask().GetContainer()}
	seed(t, st, func(tx store.Tx) error {
		tk := task("task1", created.GetService().GetId(), "node1", api.TaskState_TASK_STATE_RUNNING, api.TaskState_TASK_STATE_RUNNING)
		tk.Spec = ts
		return tx.CreateTask(tk)
	})
	tasks, err := srv.ListTasks(ctx, &api.ListTasksRequest{})
	must(t, err)
	if len(tasks.GetTasks()) != 1 {
		t.Fatalf("ListTasks: want 1 task, got %d", len(tasks.GetTasks()))
	}
	if a := tasks.GetTasks()[0].GetSpec().GetContainer().GetRegistryAuth(); a.GetPassword() != "" || a.GetUsername() != "alice" {
		t.Fatalf("ListTasks returned registry_auth %v", a)
	}
	if p := getTask(st, "task1").GetSpec().GetContainer().GetRegistryAuth().GetPassword(); p != "n3w" {
		t.Fatalf("ListTasks altered the stored task: password %q", p)
	}
}

func TestUpdateServiceKeepsRegistryPassword(t *testing.T) {
	ctx := context.Background()
	srv, st, _ := newTestServer(t)
	created, err := srv.CreateService(ctx, &api.CreateServiceRequest{Spec: authSpec("alice", "s3cret")})
	must(t, err)
	id := created.GetService().GetId()

	// inspect → edit → update: the blanked password is kept.
	got, err := srv.GetService(ctx, &api.GetServiceRequest{ServiceId: id})
	must(t, err)
	spec := got.GetService().GetSpec()
	spec.Task.Container.Env = append(spec.Task.Container.Env, "EDITED=1")
	upd, err := srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: id, Version: got.GetService().GetMeta().GetVersion(), Spec: spec})
	must(t, err)
	if a := storedAuth(t, st); a.GetPassword() != "s3cret" {
		t.Fatalf("round-trip update lost the password: %v", a)
	}

	// Another username with an empty password is a new credential: no
	// password is carried over to it.
	upd2, err := srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: id, Version: upd.GetService().GetMeta().GetVersion(), Spec: authSpec("bob", "")})
	must(t, err)
	if a := storedAuth(t, st); a.GetUsername() != "bob" || a.GetPassword() != "" {
		t.Fatalf("a new username kept the old password: %v", a)
	}

	// Removing the credential removes it.
	_, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: id, Version: upd2.GetService().GetMeta().GetVersion(), Spec: validSpec()})
	must(t, err)
	if a := storedAuth(t, st); a != nil {
		t.Fatalf("registry_auth kept after an update without it: %v", a)
	}
}

// authRegistry is an AuthImageResolver that answers only to the password
// "s3cret" and records the passwords it was given.
type authRegistry struct{ passwords []string }

func (r *authRegistry) Resolve(context.Context, string) (string, error) {
	r.passwords = append(r.passwords, "")
	return "", context.DeadlineExceeded
}

func (r *authRegistry) ResolveWithAuth(_ context.Context, _ string, auth *api.RegistryAuth) (string, error) {
	r.passwords = append(r.passwords, auth.GetPassword())
	if auth.GetPassword() != "s3cret" {
		return "", context.DeadlineExceeded
	}
	return "sha256:ccc", nil
}

// The manager resolves private images with the service's credential,
// and an update whose password is blanked resolves with the stored one.
func TestImageResolvedWithRegistryAuth(t *testing.T) {
	ctx := context.Background()
	srv, _, _ := newTestServer(t)
	reg := &authRegistry{}
	srv.SetImageResolver(reg)
	created, err := srv.CreateService(ctx, &api.CreateServiceRequest{Spec: authSpec("alice", "s3cret")})
	must(t, err)
	if d := created.GetService().GetImageDigest(); d != "sha256:ccc" {
		t.Fatalf("digest %q, want sha256:ccc (resolver saw %v)", d, reg.passwords)
	}
	spec := authSpec("alice", "")
	spec.Task.Container.Image = "registry.test:5000/app:v2"
	upd, err := srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: created.GetService().GetId(), Version: created.GetService().GetMeta().GetVersion(), Spec: spec})
	must(t, err)
	if d := upd.GetService().GetImageDigest(); d != "sha256:ccc" {
		t.Fatalf("digest after a blanked-password update %q (resolver saw %v)", d, reg.passwords)
	}
}
