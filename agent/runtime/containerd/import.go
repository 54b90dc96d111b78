package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/containerd/containerd/v2/client"
)

// ImportImage imports an image archive read from r (an OCI image layout
// tar, or a `docker save` tar) into the executor's namespace and unpacks
// each image into the overlayfs snapshotter, so tasks using it start
// without a pull. It returns the names of the images the archive held,
// sorted. An archive that is not an image archive, or holds no named
// image, is an error; a daemon that does not answer wraps
// runtime.ErrTemporary. r is read to its end (or to the first error).
func (e *Executor) ImportImage(ctx context.Context, r io.Reader) ([]string, error) {
	imgs, err := e.client.Import(ctx, r)
	if err != nil {
		return nil, classify(err, "import image archive")
	}
	if len(imgs) == 0 {
		return nil, errors.New("import image archive: it holds no named image (an OCI layout needs an io.containerd.image.name or org.opencontainers.image.ref.name annotation)")
	}
	names := make([]string, 0, len(imgs))
	for _, im := range imgs {
		img := client.NewImage(e.client, im)
		if err := img.Unpack(ctx, snapshotter); err != nil {
			return nil, classify(err, fmt.Sprintf("unpack image %s", im.Name))
		}
		names = append(names, im.Name)
	}
	slices.Sort(names)
	e.log.Info("imported images", "images", names)
	return names, nil
}
