package containerd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/proto/api"
)

// normalizeRef turns an image reference as users write it ("busybox",
// "host:5000/app:v1") into the full name containerd stores
// ("docker.io/library/busybox:latest"). A reference that does not parse
// rejects the task.
func normalizeRef(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("%w: invalid image reference %q: %v", runtime.ErrTaskRejected, ref, err)
	}
	return named.String(), nil
}

// pinDigest returns ref pinned to digest (NAME@DIGEST, the tag dropped),
// so every replica runs the image the manager resolved. An empty digest,
// or a reference that does not parse (ensureImage rejects it), leaves ref
// as it is.
func pinDigest(ref, dgst string) string {
	if dgst == "" {
		return ref
	}
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return ref
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return ref
	}
	pinned, err := reference.WithDigest(reference.TrimNamed(named), d)
	if err != nil {
		return ref
	}
	return pinned.String()
}

// ensureImage returns the image ref, unpacked into the overlayfs
// snapshotter, pulling it first when containerd does not have it, with
// auth (may be nil) as the credential for its registry. A pull that fails
// for any reason but an unreachable daemon rejects the task with the
// registry's error; a registry that refuses the credential (or asks for
// one) rejects it with an error saying so.
func (e *Executor) ensureImage(ctx context.Context, ref string, auth *api.RegistryAuth) (client.Image, error) {
	name, err := normalizeRef(ref)
	if err != nil {
		return nil, err
	}
	img, err := e.client.GetImage(ctx, name)
	if err == nil {
		unpacked, err := img.IsUnpacked(ctx, snapshotter)
		if err != nil {
			return nil, classify(err, "image "+name)
		}
		if !unpacked {
			if err := img.Unpack(ctx, snapshotter); err != nil {
				return nil, classify(err, "unpack image "+name)
			}
		}
		return img, nil
	}
	if !errdefs.IsNotFound(err) {
		return nil, classify(err, "image "+name)
	}
	e.log.Info("pulling image", "image", name)
	img, err = e.client.Pull(ctx, name,
		client.WithPullUnpack,
		client.WithPullSnapshotter(snapshotter),
		client.WithResolver(docker.NewResolver(e.resolver(auth))))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errdefs.IsUnavailable(err) { // the daemon, not the registry
			return nil, classify(err, "pull image "+name)
		}
		if unauthorized(err) {
			host := reference.Domain(mustNamed(name))
			if auth.GetUsername() == "" {
				return nil, fmt.Errorf("%w: pull image %s: the registry %s asks for credentials (401 Unauthorized) and none were given (service create --with-registry-auth): %v",
					runtime.ErrTaskRejected, name, host, err)
			}
			return nil, fmt.Errorf("%w: pull image %s: the registry %s refused the credentials of user %q (401 Unauthorized): %v",
				runtime.ErrTaskRejected, name, host, auth.GetUsername(), err)
		}
		return nil, fmt.Errorf("%w: pull image %s: %v", runtime.ErrTaskRejected, name, err)
	}
	return img, nil
}

// unauthorized reports whether a pull failed because the registry wants
// other (or any) credentials.
func unauthorized(err error) bool {
	if errors.Is(err, docker.ErrInvalidAuthorization) || errdefs.IsUnauthorized(err) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "401") || strings.Contains(msg, "unauthorized")
}

// mustNamed parses a reference normalizeRef accepted.
func mustNamed(name string) reference.Named {
	n, err := reference.ParseDockerRef(name)
	if err != nil {
		panic(err)
	}
	return n
}

// dockerHubHosts are the names of Docker Hub's registry; a credential
// for any of them is used for all.
var dockerHubHosts = []string{"docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"}

// credsFor returns the docker authorizer's credential callback for auth:
// the username and password for a host matching auth.server_address (all
// Docker Hub names match one another), nothing for other hosts. nil auth
// or an empty username gives no credentials.
func credsFor(auth *api.RegistryAuth) func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		if auth.GetUsername() == "" {
			return "", "", nil
		}
		server := auth.GetServerAddress()
		if host == server || server == "" ||
			(slices.Contains(dockerHubHosts, host) && slices.Contains(dockerHubHosts, server)) {
			return auth.GetUsername(), auth.GetPassword(), nil
		}
		return "", "", nil
	}
}

// resolver is a registry resolver that speaks plain HTTP to the hosts of
// Config.InsecureRegistries and HTTPS to all others, answering the
// registry's auth challenges with auth (nil: anonymously).
func (e *Executor) resolver(auth *api.RegistryAuth) docker.ResolverOptions {
	insecure := slices.Clone(e.cfg.InsecureRegistries)
	return docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithPlainHTTP(func(host string) (bool, error) {
				return slices.Contains(insecure, host), nil
			}),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(credsFor(auth)))),
		),
	}
}
