package containerd

import (
	"context"
	"fmt"
	"slices"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"github.com/shoalhq/shoal/agent/runtime"
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
// snapshotter, pulling it first when containerd does not have it. A pull
// that fails for any reason but an unreachable daemon rejects the task
// with the registry's error.
func (e *Executor) ensureImage(ctx context.Context, ref string) (client.Image, error) {
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
		client.WithResolver(docker.NewResolver(e.resolver())))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errdefs.IsUnavailable(err) { // the daemon, not the registry
			return nil, classify(err, "pull image "+name)
		}
		return nil, fmt.Errorf("%w: pull image %s: %v", runtime.ErrTaskRejected, name, err)
	}
	return img, nil
}

// resolver is a registry resolver that speaks plain HTTP to the hosts of
// Config.InsecureRegistries and HTTPS to all others.
func (e *Executor) resolver() docker.ResolverOptions {
	insecure := slices.Clone(e.cfg.InsecureRegistries)
	return docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(func(host string) (bool, error) {
			return slices.Contains(insecure, host), nil
		})),
	}
}
