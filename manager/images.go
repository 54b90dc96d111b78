package manager

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/distribution/reference"
)

// registryResolver resolves image tags to manifest digests by asking the
// image's registry (HTTPS, or plain HTTP for the insecure hosts). It is
// the manager's controlapi.ImageResolver.
type registryResolver struct {
	insecure []string
}

// Resolve returns the digest of ref's manifest (or index) in its registry.
func (r registryResolver) Resolve(ctx context.Context, ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	insecure := r.insecure
	res := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(func(host string) (bool, error) {
			return slices.Contains(insecure, host), nil
		})),
	})
	_, desc, err := res.Resolve(ctx, named.String())
	if err != nil {
		return "", fmt.Errorf("resolve image %s: %w", named, err)
	}
	return desc.Digest.String(), nil
}
