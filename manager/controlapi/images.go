package controlapi

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// ImageResolver resolves an image reference (NAME[:TAG]) to the digest of
// its manifest in its registry. It is the seam to the network: the
// manager's implementation asks the registry, tests use their own.
type ImageResolver interface {
	Resolve(ctx context.Context, ref string) (digest string, err error)
}

// AuthImageResolver is an ImageResolver that can also resolve images of
// registries that want a credential: auth is the service's
// registry_auth (never nil when called).
type AuthImageResolver interface {
	ResolveWithAuth(ctx context.Context, ref string, auth *api.RegistryAuth) (digest string, err error)
}

// resolveTimeout bounds how long a service write waits for the registry.
const resolveTimeout = 3 * time.Second

// SetImageResolver makes service creates and updates resolve the image's
// tag to a digest once, recorded in Service.image_digest, so that every
// replica runs the same image. Without a resolver, or when the registry
// cannot be reached in time, the service is written without a digest and
// each node resolves the tag itself.
func (s *Server) SetImageResolver(r ImageResolver) { s.images = r }

// imageDigest returns the digest to record for image: the one in the
// reference itself (NAME@DIGEST), else the resolver's answer, else "";
// with "", a warning for the caller when the registry was asked and
// could not answer. With a credential (auth with a username) and a
// resolver that is an AuthImageResolver, the registry is asked with it.
func (s *Server) imageDigest(ctx context.Context, image string, auth *api.RegistryAuth) (digest, warning string) {
	if i := strings.LastIndex(image, "@"); i >= 0 {
		return image[i+1:], ""
	}
	if s.images == nil || image == "" {
		return "", ""
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	var d string
	var err error
	if ar, ok := s.images.(AuthImageResolver); ok && auth.GetUsername() != "" {
		d, err = ar.ResolveWithAuth(ctx, image, auth)
	} else {
		d, err = s.images.Resolve(ctx, image)
	}
	if err != nil {
		return "", fmt.Sprintf("image %s could not be resolved to a digest on its registry (%v): each node will pull it on its own, "+
			"possibly getting different images, and its tasks will be rejected if it does not exist", image, err)
	}
	return d, ""
}

// updatedImageDigest is the digest for a service whose spec becomes next:
// the current one when the image is unchanged (a tag is resolved once,
// not at every scale), else a fresh resolution.
func (s *Server) updatedImageDigest(ctx context.Context, ref string, rollback bool, next *api.ServiceSpec) (image, digest, warning string, ok bool) {
	var cur *api.Service
	s.store.View(func(tx store.ReadTx) { cur, _ = serviceFinder(tx).resolve(ref) })
	if cur == nil {
		return "", "", "", false
	}
	if rollback {
		next = cur.GetPreviousSpec()
	}
	image = next.GetTask().GetContainer().GetImage()
	if image == cur.GetSpec().GetTask().GetContainer().GetImage() {
		return image, cur.GetImageDigest(), "", true
	}
	var auth *api.RegistryAuth
	if a := next.GetTask().GetContainer().GetRegistryAuth(); a != nil {
		// A blanked password stands for the stored one (UpdateService).
		spec := clone(next)
		keepRegistryPassword(cur.GetSpec(), spec)
		auth = spec.GetTask().GetContainer().GetRegistryAuth()
	}
	digest, warning = s.imageDigest(ctx, image, auth)
	return image, digest, warning, true
}
