package manager

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/distribution/reference"

	"github.com/shoalhq/shoal/proto/api"
)

// dockerHubHosts are the names of Docker Hub's registry; a credential
// for any of them is used for all.
var dockerHubHosts = []string{"docker.io", "index.docker.io", "registry-1.docker.io"}

// registryResolver resolves image tags to manifest digests by asking the
// image's registry (HTTPS, or plain HTTP for the insecure hosts). It is
// the manager's controlapi.ImageResolver.
type registryResolver struct {
	insecure []string
}

// Resolve returns the digest of ref's manifest (or index) in its
// registry, asked anonymously.
func (r registryResolver) Resolve(ctx context.Context, ref string) (string, error) {
	return r.ResolveWithAuth(ctx, ref, nil)
}

// ResolveWithAuth is Resolve answering the registry's auth challenge with
// auth (nil: anonymously) when the registry host is auth.server_address.
func (r registryResolver) ResolveWithAuth(ctx context.Context, ref string, auth *api.RegistryAuth) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	insecure := r.insecure
	res := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithPlainHTTP(func(host string) (bool, error) {
				return slices.Contains(insecure, host), nil
			}),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(func(host string) (string, string, error) {
				if auth.GetUsername() != "" && (host == auth.GetServerAddress() ||
					(slices.Contains(dockerHubHosts, host) && slices.Contains(dockerHubHosts, auth.GetServerAddress()))) {
					return auth.GetUsername(), auth.GetPassword(), nil
				}
				return "", "", nil
			}))),
		),
	})
	_, desc, err := res.Resolve(ctx, named.String())
	if err != nil {
		return "", fmt.Errorf("resolve image %s: %w", named, err)
	}
	return desc.Digest.String(), nil
}
