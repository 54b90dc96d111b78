package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// programSources holds the test programs' sources, compiled by Build in a
// private module (stdlib only) so that no network or source tree is needed.
//
//go:embed programs
var programSources embed.FS

// programNames is the list of programs in programs/, in default order.
var programNames = []string{"echo", "client", "exit", "sleeper", "hog"}

// ProgramNames returns the names of the test programs Build can put in an
// image: "echo", "client", "exit", "sleeper" and "hog" (see the package
// doc).
func ProgramNames() []string { return slices.Clone(programNames) }

// AnnotationImageName is the index.json annotation containerd's importer
// reads to name the imported image.
const AnnotationImageName = "io.containerd.image.name"

// DefaultRegistryDomain is the made-up registry domain of default image
// references. An explicit domain stops libraries from filling in docker.io.
const DefaultRegistryDomain = "registry.test:5000"

// buildEpoch is the fixed timestamp of every file and config, so that
// builds are reproducible.
var buildEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Healthcheck is the docker-compatible health check stored in the image
// config's `config.Healthcheck` field (durations in nanoseconds in JSON).
// The image has no shell, so use the exec form, e.g.
// Test: []string{"CMD", "/bin/echo", "probe"}.
type Healthcheck struct {
	// Test is the check command: {"CMD", argv...}, {"CMD-SHELL", cmd}
	// or {"NONE"}.
	Test []string `json:"Test,omitempty"`
	// Interval is the time between checks.
	Interval time.Duration `json:"Interval,omitempty"`
	// Timeout is how long one check may run.
	Timeout time.Duration `json:"Timeout,omitempty"`
	// StartPeriod is the time failures do not count after start.
	StartPeriod time.Duration `json:"StartPeriod,omitempty"`
	// StartInterval is the time between checks during StartPeriod.
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	// Retries is the number of consecutive failures that mean unhealthy.
	Retries int `json:"Retries,omitempty"`
}

// BuildOptions says what Build puts in an image. The zero value builds an
// image named registry.test:5000/echo:v1 holding all programs, whose
// entrypoint is /bin/echo.
type BuildOptions struct {
	// Ref is the image reference written to index.json, in the form
	// DOMAIN/PATH[:TAG] with an explicit registry domain (one holding a
	// "." or ":", or "localhost"); TAG defaults to "latest". Default:
	// "registry.test:5000/FIRSTPROGRAM:v1".
	Ref string
	// Programs are the programs copied to /bin/NAME (see ProgramNames).
	// Default: all of them.
	Programs []string
	// Version is baked into the binaries (echo reports it unless $VERSION
	// is set). Default "dev".
	Version string
	// Entrypoint of the image. Default: {"/bin/FIRSTPROGRAM"}.
	Entrypoint []string
	// Cmd is the default argument list after Entrypoint.
	Cmd []string
	// Env holds KEY=VALUE pairs. PATH=/bin is added unless set.
	Env []string
	// WorkingDir of the process. Default "/".
	WorkingDir string
	// User to run as ("" is root; /etc/passwd knows root and nobody).
	User string
	// ExposedPorts such as "80/tcp".
	ExposedPorts []string
	// Labels of the image config.
	Labels map[string]string
	// Healthcheck, if set, is written to config.Healthcheck.
	Healthcheck *Healthcheck
	// CacheDir holds compiled programs, layers and sources. Default
	// DefaultCacheDir().
	CacheDir string
	// OutDir receives the image tar. Default CacheDir/images. The file
	// name holds the reference and manifest digest, so an existing file
	// is reused.
	OutDir string
}

// Image is an OCI image layout written as a tar file by Build.
type Image struct {
	// Ref is the reference in index.json's io.containerd.image.name.
	Ref string
	// TarPath is the OCI layout tar (oci-layout, index.json, blobs/).
	TarPath string
	// ManifestDigest is the digest of the image manifest (what a registry
	// reports after Push).
	ManifestDigest digest.Digest
	// ManifestSize is the manifest's size in bytes.
	ManifestSize int64
	// ConfigDigest is the digest of the image config JSON.
	ConfigDigest digest.Digest
	// LayerDigests are the digests of the (gzip) layers, base first.
	LayerDigests []digest.Digest
	// Programs are the programs in /bin.
	Programs []string
}

// DefaultCacheDir returns $SHOAL_TOOLS_DIR/images-cache, with
// SHOAL_TOOLS_DIR defaulting to /var/cache/shoal.
func DefaultCacheDir() string { return filepath.Join(ToolsDir(), "images-cache") }

// ToolsDir returns $SHOAL_TOOLS_DIR or /var/cache/shoal, the fixed folder
// where Shoal's tools and caches live.
func ToolsDir() string {
	if d := os.Getenv("SHOAL_TOOLS_DIR"); d != "" {
		return d
	}
	return "/var/cache/shoal"
}

// Build compiles the requested programs (cached), then writes an OCI image
// layout tar with one layer holding /bin/PROGRAM (mode 0755), /etc/passwd,
// /etc/group and /tmp (mode 1777), plus the config and manifest.
func Build(ctx context.Context, opts BuildOptions) (*Image, error) {
	if len(opts.Programs) == 0 {
		opts.Programs = ProgramNames()
	}
	for _, p := range opts.Programs {
		if !slices.Contains(programNames, p) {
			return nil, fmt.Errorf("images: unknown program %q (have %v)", p, programNames)
		}
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Ref == "" {
		opts.Ref = DefaultRegistryDomain + "/" + opts.Programs[0] + ":v1"
	}
	ref, tag, err := normalizeRef(opts.Ref)
	if err != nil {
		return nil, err
	}
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	if opts.OutDir == "" {
		opts.OutDir = filepath.Join(opts.CacheDir, "images")
	}
	if len(opts.Entrypoint) == 0 {
		opts.Entrypoint = []string{"/bin/" + opts.Programs[0]}
	}
	if opts.WorkingDir == "" {
		opts.WorkingDir = "/"
	}

	bins, err := compile(ctx, opts.CacheDir, opts.Programs, opts.Version)
	if err != nil {
		return nil, err
	}
	layer, diffID, err := buildLayer(opts.CacheDir, opts.Programs, bins)
	if err != nil {
		return nil, err
	}
	configJSON, err := json.Marshal(imageConfig(opts, diffID))
	if err != nil {
		return nil, err
	}
	configDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageConfig,
		Digest:    digest.FromBytes(configJSON),
		Size:      int64(len(configJSON)),
	}
	layerDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    digest.FromBytes(layer),
		Size:      int64(len(layer)),
	}
	manifestJSON, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return nil, err
	}
	manifestDesc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageManifest,
		Digest:    digest.FromBytes(manifestJSON),
		Size:      int64(len(manifestJSON)),
		Annotations: map[string]string{
			AnnotationImageName:       ref,
			ocispec.AnnotationRefName: tag,
		},
		Platform: &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
	}
	indexJSON, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	})
	if err != nil {
		return nil, err
	}

	img := &Image{
		Ref:            ref,
		ManifestDigest: manifestDesc.Digest,
		ManifestSize:   manifestDesc.Size,
		ConfigDigest:   configDesc.Digest,
		LayerDigests:   []digest.Digest{layerDesc.Digest},
		Programs:       slices.Clone(opts.Programs),
	}
	name := fmt.Sprintf("%s-%s.tar", sanitize(ref), manifestDesc.Digest.Encoded()[:12])
	img.TarPath = filepath.Join(opts.OutDir, name)
	if _, err := os.Stat(img.TarPath); err == nil {
		return img, nil // content-addressed name: already written
	}
	layoutJSON, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	files := []tarFile{
		{name: "blobs/", dir: true},
		{name: "blobs/sha256/", dir: true},
		{name: "blobs/sha256/" + configDesc.Digest.Encoded(), data: configJSON},
		{name: "blobs/sha256/" + layerDesc.Digest.Encoded(), data: layer},
		{name: "blobs/sha256/" + manifestDesc.Digest.Encoded(), data: manifestJSON},
		{name: ocispec.ImageLayoutFile, data: layoutJSON},
		{name: ocispec.ImageIndexFile, data: indexJSON},
	}
	var buf bytes.Buffer
	if err := writeTar(&buf, files); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(img.TarPath, buf.Bytes()); err != nil {
		return nil, err
	}
	return img, nil
}

// configFile is the image config: the OCI fields plus the docker
// Healthcheck in config.
type configFile struct {
	ocispec.Image
	Config containerConfig `json:"config"`
}

// containerConfig adds docker's Healthcheck to the OCI ImageConfig.
type containerConfig struct {
	ocispec.ImageConfig
	Healthcheck *Healthcheck `json:"Healthcheck,omitempty"`
}

func imageConfig(opts BuildOptions, diffID digest.Digest) configFile {
	env := slices.Clone(opts.Env)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		env = append([]string{"PATH=/bin"}, env...)
	}
	var ports map[string]struct{}
	if len(opts.ExposedPorts) > 0 {
		ports = map[string]struct{}{}
		for _, p := range opts.ExposedPorts {
			ports[p] = struct{}{}
		}
	}
	created := buildEpoch
	return configFile{
		Image: ocispec.Image{
			Created:  &created,
			Author:   "shoal deploy/images",
			Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
			History: []ocispec.History{{
				Created:   &created,
				CreatedBy: "shoal deploy/images: " + strings.Join(opts.Programs, " "),
			}},
		},
		Config: containerConfig{
			ImageConfig: ocispec.ImageConfig{
				User:         opts.User,
				ExposedPorts: ports,
				Env:          env,
				Entrypoint:   opts.Entrypoint,
				Cmd:          opts.Cmd,
				WorkingDir:   opts.WorkingDir,
				Labels:       opts.Labels,
				StopSignal:   "SIGTERM",
			},
			Healthcheck: opts.Healthcheck,
		},
	}
}

// normalizeRef checks that ref names a registry domain and returns it with
// a tag, and the tag.
func normalizeRef(ref string) (string, string, error) {
	if strings.Contains(ref, "@") {
		return "", "", fmt.Errorf("images: reference %q: digests are not supported, use a tag", ref)
	}
	domain, rest, ok := strings.Cut(ref, "/")
	if !ok || rest == "" || !(strings.ContainsAny(domain, ".:") || domain == "localhost") {
		return "", "", fmt.Errorf("images: reference %q must start with a registry domain such as %s/", ref, DefaultRegistryDomain)
	}
	name, tag := rest, "latest"
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		name, tag = rest[:i], rest[i+1:]
	}
	if name == "" || tag == "" || name != strings.ToLower(name) {
		return "", "", fmt.Errorf("images: bad reference %q (want DOMAIN/lowercase/path:tag)", ref)
	}
	return domain + "/" + name + ":" + tag, tag, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

// sourceKey hashes the embedded program sources and toolchain identity.
func sourceKey() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", runtime.Version(), runtime.GOARCH)
	err := fs.WalkDir(programSources, "programs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := programSources.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:20], err
}

// compile returns the path of each program's binary, building the
// missing ones with one `go build` into the cache.
func compile(ctx context.Context, cacheDir string, progs []string, version string) (map[string]string, error) {
	srcKey, err := sourceKey()
	if err != nil {
		return nil, err
	}
	vh := sha256.Sum256([]byte(version))
	binDir := filepath.Join(cacheDir, "bin", srcKey+"-"+hex.EncodeToString(vh[:])[:12])
	bins := map[string]string{}
	var missing []string
	for _, p := range progs {
		bins[p] = filepath.Join(binDir, p)
		if _, err := os.Stat(bins[p]); err != nil {
			missing = append(missing, "./"+p)
		}
	}
	if len(missing) == 0 {
		return bins, nil
	}
	srcDir, err := extractSources(cacheDir, srcKey)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	tmpOut, err := os.MkdirTemp(binDir, ".build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmpOut)
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("images: go command not found: %w", err)
	}
	args := []string{"build", "-trimpath", "-ldflags", "-s -w -X main.version=" + version, "-o", tmpOut + "/"}
	cmd := exec.CommandContext(ctx, goBin, append(args, missing...)...)
	cmd.Dir = filepath.Join(srcDir, "programs")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
		"GOFLAGS=-buildvcs=false -mod=mod", "GOWORK=off", "GOTOOLCHAIN=local", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("images: go build %v: %w\n%s", missing, err, out)
	}
	for _, m := range missing {
		p := strings.TrimPrefix(m, "./")
		if err := os.Rename(filepath.Join(tmpOut, p), bins[p]); err != nil {
			return nil, err
		}
	}
	return bins, nil
}

// extractSources writes the embedded programs and a go.mod to
// CACHE/src/KEY once and returns that folder.
func extractSources(cacheDir, key string) (string, error) {
	dir := filepath.Join(cacheDir, "src", key)
	if _, err := os.Stat(filepath.Join(dir, "programs", "go.mod")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	err = fs.WalkDir(programSources, "programs", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(tmp, p), 0o755)
		}
		b, err := programSources.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, p), b, 0o644)
	})
	if err != nil {
		return "", err
	}
	gomod := "module shoal.test/programs\n\ngo 1.22\n"
	if err := os.WriteFile(filepath.Join(tmp, "programs", "go.mod"), []byte(gomod), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(dir, "programs", "go.mod")); statErr == nil {
			return dir, nil // another process won the race
		}
		return "", err
	}
	return dir, nil
}

const (
	passwdFile = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	groupFile  = "root:x:0:\nnogroup:x:65534:\n"
)

// buildLayer returns the gzip layer and its diff ID (digest of the
// uncompressed tar), cached under CACHE/layers by the binaries' paths
// (which are content keys).
func buildLayer(cacheDir string, progs []string, bins map[string]string) ([]byte, digest.Digest, error) {
	h := sha256.New()
	fmt.Fprintln(h, "layer-format-1")
	for _, p := range progs {
		fmt.Fprintln(h, p, bins[p])
	}
	key := hex.EncodeToString(h.Sum(nil))[:24]
	gzPath := filepath.Join(cacheDir, "layers", key+".tar.gz")
	idPath := filepath.Join(cacheDir, "layers", key+".diffid")
	if gz, err := os.ReadFile(gzPath); err == nil {
		if id, err := os.ReadFile(idPath); err == nil {
			if d, err := digest.Parse(strings.TrimSpace(string(id))); err == nil {
				return gz, d, nil
			}
		}
	}

	files := []tarFile{
		{name: "bin/", dir: true},
		{name: "etc/", dir: true},
		{name: "etc/group", data: []byte(groupFile)},
		{name: "etc/passwd", data: []byte(passwdFile)},
		{name: "tmp/", dir: true, mode: 0o1777},
	}
	sorted := slices.Sorted(slices.Values(progs))
	for i, p := range slices.Compact(sorted) {
		b, err := os.ReadFile(bins[p])
		if err != nil {
			return nil, "", err
		}
		files = slices.Insert(files, 1+i, tarFile{name: "bin/" + p, data: b, mode: 0o755})
	}
	var raw bytes.Buffer
	if err := writeTar(&raw, files); err != nil {
		return nil, "", err
	}
	diffID := digest.FromBytes(raw.Bytes())
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	if err := writeFileAtomic(gzPath, gz.Bytes()); err != nil {
		return nil, "", err
	}
	if err := writeFileAtomic(idPath, []byte(diffID.String()+"\n")); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}

// tarFile is one entry for writeTar; mode 0 means 0755 for folders and
// 0644 for files.
type tarFile struct {
	name string
	data []byte
	dir  bool
	mode int64
}

// writeTar writes files in order, owned by root, with the fixed timestamp.
func writeTar(w io.Writer, files []tarFile) error {
	tw := tar.NewWriter(w)
	for _, f := range files {
		hdr := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			ModTime: buildEpoch,
			Uname:   "root",
			Gname:   "root",
			Format:  tar.FormatPAX,
		}
		if f.dir {
			hdr.Typeflag = tar.TypeDir
			if hdr.Mode == 0 {
				hdr.Mode = 0o755
			}
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.data))
			if hdr.Mode == 0 {
				hdr.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so readers never see a partial file.
func writeFileAtomic(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+path.Base(p)+".tmp-")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}
