package images

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/plugins/content/local"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestContainerdImporterReadsLayout feeds the image tar to containerd's
// own archive importer (what client.Import uses) with a local content
// store, no daemon: the index it records names the image and the
// manifest, config and layer are all in the store.
func TestContainerdImporterReadsLayout(t *testing.T) {
	ctx := context.Background()
	img, err := Build(ctx, BuildOptions{Ref: "registry.test:5000/shoal/echo:v2", Programs: []string{"echo"}, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img.TarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	idx, err := archive.ImportIndex(ctx, store, f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := content.ReadBlob(ctx, store, idx)
	if err != nil {
		t.Fatal(err)
	}
	var index ocispec.Index
	if err := json.Unmarshal(b, &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations[AnnotationImageName] != img.Ref || index.Manifests[0].Digest != img.ManifestDigest {
		t.Fatalf("imported index = %s", b)
	}
	for _, d := range append([]ocispec.Descriptor{index.Manifests[0]}, ocispec.Descriptor{Digest: img.ConfigDigest}, ocispec.Descriptor{Digest: img.LayerDigests[0]}) {
		if _, err := store.Info(ctx, d.Digest); err != nil {
			t.Errorf("blob %s not imported: %v", d.Digest, err)
		}
	}
}
