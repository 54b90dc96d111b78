package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// readLayout returns the non-blob files and the blobs of an OCI layout tar.
func readLayout(t *testing.T, path string) (files map[string][]byte, blobs map[digest.Digest][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files = map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = b
	}
	f.Seek(0, io.SeekStart)
	blobs = map[digest.Digest][]byte{}
	err = walkLayout(f, func(d digest.Digest, _ int64, rd io.Reader) error {
		b, err := io.ReadAll(rd)
		blobs[d] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, blobs
}

func TestBuildEchoImage(t *testing.T) {
	ctx := context.Background()
	hc := &Healthcheck{Test: []string{"CMD", "/bin/echo", "probe"}, Interval: time.Second, Retries: 3}
	opts := BuildOptions{
		Ref:          "registry.test:5000/echo:v1",
		Programs:     []string{"echo"},
		Version:      "v1",
		Env:          []string{"PORT=8080"},
		User:         "nobody",
		ExposedPorts: []string{"8080/tcp"},
		Healthcheck:  hc,
		OutDir:       t.TempDir(),
	}
	start := time.Now()
	img, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build (shared cache, maybe warm): %v, %s", time.Since(start), img.TarPath)

	files, blobs := readLayout(t, img.TarPath)
	if got := string(files["oci-layout"]); !strings.Contains(got, `"imageLayoutVersion":"1.0.0"`) {
		t.Errorf("oci-layout = %q", got)
	}
	var index ocispec.Index
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(index.Manifests))
	}
	md := index.Manifests[0]
	if md.Annotations[AnnotationImageName] != "registry.test:5000/echo:v1" || md.Annotations[ocispec.AnnotationRefName] != "v1" {
		t.Errorf("index annotations = %v", md.Annotations)
	}
	if md.Digest != img.ManifestDigest || md.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("index manifest %v, image says %s", md, img.ManifestDigest)
	}

	var m ocispec.Manifest
	if err := json.Unmarshal(blobs[img.ManifestDigest], &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.Config.Digest != img.ConfigDigest || m.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Errorf("manifest = %+v", m)
	}
	if len(m.Layers) != 1 || m.Layers[0].Digest != img.LayerDigests[0] || m.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("manifest layers = %+v", m.Layers)
	}

	var cfg configFile
	if err := json.Unmarshal(blobs[img.ConfigDigest], &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if strings.Join(c.Entrypoint, " ") != "/bin/echo" || c.User != "nobody" || c.WorkingDir != "/" {
		t.Errorf("config = %+v", c)
	}
	if strings.Join(c.Env, ",") != "PATH=/bin,PORT=8080" {
		t.Errorf("env = %v", c.Env)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports = %v", c.ExposedPorts)
	}
	if c.Healthcheck == nil || strings.Join(c.Healthcheck.Test, " ") != "CMD /bin/echo probe" || c.Healthcheck.Interval != time.Second {
		t.Errorf("healthcheck = %+v", c.Healthcheck)
	}
	if !strings.Contains(string(blobs[img.ConfigDigest]), `"Healthcheck":{"Test":["CMD","/bin/echo","probe"],"Interval":1000000000,"Retries":3}`) {
		t.Errorf("config JSON lacks docker Healthcheck: %s", blobs[img.ConfigDigest])
	}
	if cfg.OS != "linux" || len(cfg.RootFS.DiffIDs) != 1 {
		t.Errorf("config os/rootfs = %s %+v", cfg.OS, cfg.RootFS)
	}

	// The layer: diff ID matches, /bin/echo is an executable ELF.
	zr, err := gzip.NewReader(bytes.NewReader(blobs[img.LayerDigests[0]]))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(raw) != cfg.RootFS.DiffIDs[0] {
		t.Errorf("diff ID mismatch")
	}
	entries := map[string]*tar.Header{}
	contents := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[hdr.Name] = hdr
		contents[hdr.Name], _ = io.ReadAll(tr)
	}
	bin := entries["bin/echo"]
	if bin == nil || bin.Typeflag != tar.TypeReg || bin.Mode != 0o755 || bin.Uid != 0 {
		t.Fatalf("bin/echo = %+v", bin)
	}
	if !bytes.HasPrefix(contents["bin/echo"], []byte("\x7fELF")) {
		t.Errorf("bin/echo is not an ELF file")
	}
	if tmp := entries["tmp/"]; tmp == nil || tmp.Typeflag != tar.TypeDir || tmp.FileInfo().Mode()&os.ModeSticky == 0 || tmp.Mode&0o777 != 0o777 {
		t.Errorf("tmp/ = %+v", tmp)
	}
	if !strings.Contains(string(contents["etc/passwd"]), "nobody:x:65534:65534:") {
		t.Errorf("passwd = %q", contents["etc/passwd"])
	}

	// Reproducible: the same options give the same digests.
	again, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.ManifestDigest != img.ManifestDigest {
		t.Errorf("rebuild gave %s, want %s", again.ManifestDigest, img.ManifestDigest)
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	for _, o := range []BuildOptions{
		{Ref: "echo:v1"},
		{Ref: "web/echo:v1"},
		{Ref: "registry.test:5000/Echo:v1"},
		{Ref: "registry.test:5000/echo@sha256:abcd"},
		{Programs: []string{"nope"}},
	} {
		if _, err := Build(context.Background(), o); err == nil {
			t.Errorf("Build(%+v) succeeded", o)
		}
	}
	ref, tag, err := normalizeRef("localhost:5000/a/b")
	if err != nil || ref != "localhost:5000/a/b:latest" || tag != "latest" {
		t.Errorf("normalizeRef = %q %q %v", ref, tag, err)
	}
}

// TestBuildTimings builds all programs into a fresh cache (cold: compile
// and link, Go's build cache may be warm) and again (warm).
func TestBuildTimings(t *testing.T) {
	if testing.Short() {
		t.Log("short mode: timing run reduced to the echo program")
	}
	opts := BuildOptions{CacheDir: t.TempDir()}
	if testing.Short() {
		opts.Programs = []string{"echo"}
	}
	start := time.Now()
	img, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	cold := time.Since(start)
	start = time.Now()
	if _, err := Build(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	warm := time.Since(start)
	fi, _ := os.Stat(img.TarPath)
	t.Logf("programs %v: cold %v, warm %v, image tar %d bytes", img.Programs, cold, warm, fi.Size())
}

func TestRegistryPushAndFetch(t *testing.T) {
	ctx := context.Background()
	img, err := Build(ctx, BuildOptions{Programs: []string{"echo"}, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := StartRegistry(t, "")
	t.Logf("registry up on %s in %v", r.Addr, time.Since(start))

	ref := r.Ref("shoal/echo", "v1")
	start = time.Now()
	got, err := r.Push(ctx, img, ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("push %v", time.Since(start))
	if got != img.ManifestDigest.String() {
		t.Fatalf("push digest %s, want %s", got, img.ManifestDigest)
	}
	// Pushing again is a no-op upload (blobs exist) with the same digest.
	if again, err := r.Push(ctx, img, ref); err != nil || again != got {
		t.Fatalf("second push = %s, %v", again, err)
	}

	body, d, mt, err := r.FetchManifest(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if d != img.ManifestDigest || mt != ocispec.MediaTypeImageManifest {
		t.Errorf("by tag: digest %s type %s", d, mt)
	}
	body2, d2, _, err := r.FetchManifest(ctx, r.Addr+"/shoal/echo@"+got)
	if err != nil {
		t.Fatal(err)
	}
	if d2 != d || !bytes.Equal(body, body2) {
		t.Errorf("by digest: %s, by tag: %s", d2, d)
	}
	// The layer blob is served back with the same digest.
	resp, err := http.Get(r.URL() + "/v2/shoal/echo/blobs/" + img.LayerDigests[0].String())
	if err != nil {
		t.Fatal(err)
	}
	layer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || digest.FromBytes(layer) != img.LayerDigests[0] {
		t.Errorf("layer GET %s, digest %s", resp.Status, digest.FromBytes(layer))
	}
	if _, _, _, err := r.FetchManifest(ctx, r.Ref("shoal/echo", "missing")); err == nil {
		t.Error("fetching a missing tag succeeded")
	}
}

func TestRegistryBasicAuth(t *testing.T) {
	ctx := context.Background()
	img, err := Build(ctx, BuildOptions{Programs: []string{"sleeper"}, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := StartRegistry(t, "", RegistryOptions{User: "shoal", Password: "s3cret"})
	resp, err := http.Get(r.URL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous GET /v2/ = %s, want 401", resp.Status)
	}
	if _, err := r.Push(ctx, img, r.Ref("sleeper", "v1")); err != nil {
		t.Fatal(err)
	}
	if _, d, _, err := r.FetchManifest(ctx, r.Ref("sleeper", "v1")); err != nil || d != img.ManifestDigest {
		t.Fatalf("fetch = %s, %v", d, err)
	}
	bad := &Registry{Addr: r.Addr, User: r.User, Password: "wrong", client: http.DefaultClient}
	if _, err := bad.Push(ctx, img, r.Ref("sleeper", "v2")); err == nil {
		t.Error("push with a wrong password succeeded")
	}
}
