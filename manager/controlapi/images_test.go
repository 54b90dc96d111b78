package controlapi

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

// registry is an ImageResolver with canned answers that counts lookups.
type registry struct {
	mu      sync.Mutex
	digests map[string]string
	calls   int
}

func (r *registry) Resolve(_ context.Context, ref string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if d, ok := r.digests[ref]; ok {
		return d, nil
	}
	return "", errors.New("registry unreachable")
}

func TestServiceImageResolvedOnce(t *testing.T) {
	srv, _, _ := newTestServer(t)
	ctx := context.Background()
	spec := validSpec()
	img := spec.Task.Container.Image
	reg := &registry{digests: map[string]string{img: "sha256:aaa", "registry.test:5000/app:v2": "sha256:bbb"}}
	srv.SetImageResolver(reg)

	created, err := srv.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	svc := created.Service
	if svc.ImageDigest != "sha256:aaa" || svc.Spec.Task.Container.Image != img {
		t.Fatalf("created: digest %q image %q; want sha256:aaa and the spec untouched", svc.ImageDigest, svc.Spec.Task.Container.Image)
	}
	// A change that keeps the image (a scale) does not ask the registry.
	scaled := svc.Spec
	scaled.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 9}}}
	up, err := srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.Id, Version: svc.Meta.Version, Spec: scaled})
	if err != nil {
		t.Fatal(err)
	}
	if up.Service.ImageDigest != "sha256:aaa" || reg.calls != 1 {
		t.Fatalf("after scale: digest %q, %d registry calls; want sha256:aaa and 1", up.Service.ImageDigest, reg.calls)
	}
	// A new image is resolved; a rollback resolves the old one again.
	v2 := up.Service.Spec
	v2.Task.Container.Image = "registry.test:5000/app:v2"
	up, err = srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.Id, Version: up.Service.Meta.Version, Spec: v2})
	if err != nil || up.Service.ImageDigest != "sha256:bbb" {
		t.Fatalf("update to v2: %v, digest %q", err, up.GetService().GetImageDigest())
	}
	back, err := srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: svc.Id, Version: up.Service.Meta.Version, Rollback: true})
	if err != nil || back.Service.ImageDigest != "sha256:aaa" {
		t.Fatalf("rollback: %v, digest %q", err, back.GetService().GetImageDigest())
	}
	// An unreachable registry leaves the digest empty; the write succeeds.
	other := validSpec()
	other.Annotations.Name = "other"
	other.Endpoint = nil // web publishes its ports
	other.Task.Container.Image = "registry.test:5000/unknown:v1"
	created, err = srv.CreateService(ctx, &api.CreateServiceRequest{Spec: other})
	if err != nil || created.Service.ImageDigest != "" {
		t.Fatalf("unreachable registry: %v, digest %q", err, created.GetService().GetImageDigest())
	}
	if w := created.GetWarnings(); len(w) != 1 || !strings.Contains(w[0], "registry.test:5000/unknown:v1 could not be resolved") {
		t.Fatalf("unreachable registry: warnings %q, want one naming the image", w)
	}
	if len(up.GetWarnings()) != 0 {
		t.Fatalf("resolved image: warnings %q", up.GetWarnings())
	}
	missing := created.Service.Spec
	missing.Task.Container.Image = "registry.test:5000/unknown:v2"
	again, err := srv.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: created.Service.Id, Version: created.Service.Meta.Version, Spec: missing})
	if err != nil || len(again.GetWarnings()) != 1 {
		t.Fatalf("update to an unresolvable image: %v, warnings %q", err, again.GetWarnings())
	}
	// A digest in the reference is taken as is.
	pinned := validSpec()
	pinned.Annotations.Name = "pinned"
	pinned.Endpoint = nil
	pinned.Task.Container.Image = "registry.test:5000/app@sha256:ccc"
	created, err = srv.CreateService(ctx, &api.CreateServiceRequest{Spec: pinned})
	if err != nil || created.Service.ImageDigest != "sha256:ccc" {
		t.Fatalf("pinned: %v, digest %q", err, created.GetService().GetImageDigest())
	}
}
