package containerd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// TestPullWithRegistryAuth pulls from a registry behind basic auth: the
// right credential pulls; a wrong password, or none, rejects the task
// with an error saying the registry refused (401).
func TestPullWithRegistryAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	reg := images.StartRegistry(t, "", images.RegistryOptions{User: "alice", Password: "s3cret"})
	img, err := images.Build(ctx, images.BuildOptions{Ref: "registry.test:5000/sleeper:v1", Programs: []string{"sleeper"}, Entrypoint: []string{"/bin/sleeper"}, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ref := reg.Ref("private/sleeper", "v1")
	if _, err := reg.Push(ctx, img, ref); err != nil {
		t.Fatal(err)
	}
	env := newEnv(t, reg.Addr)

	wrong := controllerOf(t, env.e, task("wrong", ref, &api.ContainerSpec{RegistryAuth: &api.RegistryAuth{ServerAddress: reg.Addr, Username: "alice", Password: "nope"}}))
	err = wrong.Prepare(ctx)
	if !errors.Is(err, runtime.ErrTaskRejected) || !strings.Contains(err.Error(), "refused the credentials") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Prepare with a wrong password = %v; want ErrTaskRejected saying the registry refused the credentials (401)", err)
	}
	if strings.Contains(err.Error(), "nope") {
		t.Fatalf("the error shows the password: %v", err)
	}
	t.Logf("wrong password: %v", err)

	anon := controllerOf(t, env.e, task("anon", ref, nil))
	if err := anon.Prepare(ctx); !errors.Is(err, runtime.ErrTaskRejected) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Prepare without credentials = %v; want ErrTaskRejected mentioning 401", err)
	}

	good := controllerOf(t, env.e, task("good", ref, &api.ContainerSpec{RegistryAuth: &api.RegistryAuth{ServerAddress: reg.Addr, Username: "alice", Password: "s3cret"}}))
	if err := good.Prepare(ctx); err != nil {
		t.Fatalf("Prepare with the right credential: %v", err)
	}
	for _, c := range []*Controller{wrong, anon, good} {
		if err := c.Remove(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if l := env.leftovers(t); len(l) > 0 {
		t.Fatalf("left behind: %v", l)
	}
}

// TestImportImage imports an OCI layout tar: the image is named, unpacked
// and a task runs from it without any registry; garbage is an error.
func TestImportImage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env := newEnv(t)
	img, err := images.Build(ctx, images.BuildOptions{Ref: "registry.test:5000/loaded:v1", Programs: []string{"sleeper"}, Entrypoint: []string{"/bin/sleeper"}, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img.TarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := env.e.ImportImage(ctx, f)
	if err != nil {
		t.Fatalf("ImportImage: %v", err)
	}
	if !slices.Equal(names, []string{"registry.test:5000/loaded:v1"}) {
		t.Fatalf("ImportImage names = %v", names)
	}
	ci, err := env.e.Client().GetImage(ctx, names[0])
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := ci.IsUnpacked(ctx, snapshotter); err != nil || !ok {
		t.Fatalf("imported image unpacked = %v, %v", ok, err)
	}
	// No registry answers for registry.test: Prepare must not pull.
	c := controllerOf(t, env.e, task("fromload", names[0], nil))
	if err := c.Prepare(ctx); err != nil {
		t.Fatalf("Prepare of a loaded image: %v", err)
	}
	if err := c.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := env.e.ImportImage(ctx, strings.NewReader("not an archive")); err == nil {
		t.Fatal("ImportImage of garbage succeeded")
	}
}

// TestVolumes lists named volumes with size and users; removal is refused
// while a container mounts the volume, unless forced.
func TestVolumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := newEnv(t)
	ref := env.importImage(t, images.BuildOptions{Ref: "registry.test:5000/sleeper:v1", Programs: []string{"sleeper"}, Entrypoint: []string{"/bin/sleeper"}})
	mount := func(name string) *api.ContainerSpec {
		return &api.ContainerSpec{Mounts: []*api.Mount{{Type: api.Mount_TYPE_VOLUME, Source: name, Target: "/data"}}}
	}
	used := controllerOf(t, env.e, task("user1", ref, mount("busy")))
	if err := used.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	free := controllerOf(t, env.e, task("user2", ref, mount("idle")))
	if err := free.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := free.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(env.state, "volumes", "idle", "f"), make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}

	vols, err := env.e.ListVolumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 2 || vols[0].Name != "busy" || vols[1].Name != "idle" {
		t.Fatalf("ListVolumes = %+v", vols)
	}
	if !slices.Equal(vols[0].TaskIDs, []string{"user1"}) || len(vols[1].TaskIDs) != 0 || vols[1].SizeBytes != 1000 {
		t.Fatalf("ListVolumes = %+v; want busy used by user1, idle unused with 1000 bytes", vols)
	}

	if err := env.e.RemoveVolume(ctx, "busy", false); !errors.Is(err, ErrVolumeInUse) || !strings.Contains(err.Error(), "user1") {
		t.Fatalf("RemoveVolume of a volume in use = %v", err)
	}
	if err := env.e.RemoveVolume(ctx, "nothere", false); !errors.Is(err, ErrVolumeNotFound) {
		t.Fatalf("RemoveVolume of a missing volume = %v", err)
	}
	if err := env.e.RemoveVolume(ctx, "idle", false); err != nil {
		t.Fatalf("RemoveVolume of an unused volume: %v", err)
	}
	if err := env.e.RemoveVolume(ctx, "busy", true); err != nil {
		t.Fatalf("RemoveVolume with force: %v", err)
	}
	if vols, err := env.e.ListVolumes(ctx); err != nil || len(vols) != 0 {
		t.Fatalf("ListVolumes after removal = %+v, %v", vols, err)
	}
	if err := used.Remove(ctx); err != nil {
		t.Fatal(err)
	}
}
