package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"
)

// RegistryModule is the registry program StartRegistry runs, installed
// with `go install` into ToolsDir()/bin when missing.
const RegistryModule = "github.com/distribution/distribution/v3/cmd/registry@v3.1.2"

// RegistryOptions are the optional settings of StartRegistry.
type RegistryOptions struct {
	// User and Password, if User is set, put the registry behind htpasswd
	// basic auth (bcrypt). Push and FetchManifest send them.
	User, Password string
	// Binary is the registry program. Default: RegistryBinary().
	Binary string
	// StartTimeout bounds the wait for /v2/ to answer. Default 30s.
	StartTimeout time.Duration
}

// Registry is a distribution registry process serving plain HTTP, started
// by StartRegistry and stopped at the test's cleanup.
type Registry struct {
	// Addr is the host:port it listens on; image references for it are
	// ADDR/NAME:TAG.
	Addr string
	// Dir holds its config, storage and log.
	Dir string
	// LogPath is the registry's combined stdout and stderr.
	LogPath string
	// User and Password are the basic auth credentials ("" if none).
	User, Password string

	client   *http.Client
	cmd      *exec.Cmd
	done     chan struct{} // closed when the process has exited
	stopOnce sync.Once
}

var (
	registryOnce sync.Once
	registryBin  string
	registryErr  error
)

// RegistryBinary returns ToolsDir()/bin/registry, installing
// RegistryModule there with `go install` (about 2 minutes cold) if it is
// missing. The result is remembered for the process.
func RegistryBinary(ctx context.Context) (string, error) {
	registryOnce.Do(func() {
		binDir := filepath.Join(ToolsDir(), "bin")
		bin := filepath.Join(binDir, "registry")
		if fi, err := os.Stat(bin); err == nil && fi.Mode()&0o111 != 0 {
			registryBin = bin
			return
		}
		if err := os.MkdirAll(binDir, 0o755); err != nil {
			registryErr = err
			return
		}
		cmd := exec.CommandContext(ctx, "go", "install", RegistryModule)
		cmd.Dir = "/"
		cmd.Env = append(os.Environ(), "GOBIN="+binDir, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			registryErr = fmt.Errorf("images: go install %s: %w\n%s", RegistryModule, err, out)
			return
		}
		// Same version stamp as deploy/tools.sh's go_install.
		_ = os.WriteFile(filepath.Join(binDir, ".registry.version"), []byte(RegistryModule+"\n"), 0o644)
		registryBin = bin
	})
	return registryBin, registryErr
}

// StartRegistry starts a registry on addr ("" picks a free 127.0.0.1
// port), storing blobs in a temporary folder, and waits until /v2/
// answers. It fails the test (never skips) if it cannot; the process is
// stopped by PID at cleanup and its log printed if the test failed. At
// most one RegistryOptions is used.
func StartRegistry(t testing.TB, addr string, opts ...RegistryOptions) *Registry {
	t.Helper()
	var o RegistryOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.Binary == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		bin, err := RegistryBinary(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		o.Binary = bin
	}
	// A port chosen by listening and closing can be taken by another
	// process before the registry binds it: try a few.
	attempts := 1
	if addr == "" {
		attempts = 3
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		a := addr
		if a == "" {
			var err error
			if a, err = freeAddr(); err != nil {
				t.Fatal(err)
			}
		}
		r, err := startRegistry(t, a, o)
		if err == nil {
			return r
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startRegistry(t testing.TB, addr string, o RegistryOptions) (*Registry, error) {
	dir := t.TempDir()
	r := &Registry{
		Addr:     addr,
		Dir:      dir,
		LogPath:  filepath.Join(dir, "registry.log"),
		User:     o.User,
		Password: o.Password,
		client:   &http.Client{Timeout: 5 * time.Minute},
		done:     make(chan struct{}),
	}
	cfg := RegistryConfig(filepath.Join(dir, "data"), addr)
	if o.User != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.Password), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(o.User+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: shoal-test\n    path: %s\n", htpasswd)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(r.LogPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r.cmd = exec.Command(o.Binary, "serve", cfgPath)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.Dir = dir
	r.cmd.Env = append(os.Environ(),
		"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none",
		"OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// The parent death signal fires when the forking OS thread exits, and
	// Go ends threads (one that entered a task's network namespace, for
	// one): fork from a locked thread that stays alive until the registry
	// exits.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := r.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		r.cmd.Wait()
		close(r.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("images: start registry: %w", err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			r.logTo(t)
		}
	})

	deadline := time.Now().Add(o.StartTimeout)
	for {
		req, _ := http.NewRequest(http.MethodGet, r.URL()+"/v2/", nil)
		r.auth(req)
		c := &http.Client{Timeout: time.Second}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r, nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("images: registry on %s exited (%v) before answering:\n%s", addr, r.cmd.ProcessState, r.log())
		default:
		}
		if time.Now().After(deadline) {
			r.Stop()
			return nil, fmt.Errorf("images: registry on %s not ready after %s: %v\n%s", addr, o.StartTimeout, err, r.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RegistryConfig returns the registry's YAML config: plain HTTP on addr,
// blobs stored under dataDir, deletes allowed, no upload purging.
func RegistryConfig(dataDir, addr string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: shoal-images-registry-secret
`, dataDir, addr)
}

// Connect returns a client for a registry that runs elsewhere (no process
// is started or stopped), reached through httpClient (nil: a default
// client with a 5-minute timeout). Push, FetchManifest, URL and Ref work
// on it; PID returns 0 and Stop does nothing.
func Connect(addr string, httpClient *http.Client) *Registry {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 5 * time.Minute}
	}
	return &Registry{Addr: addr, client: httpClient}
}

// URL returns the registry's base URL, http://ADDR.
func (r *Registry) URL() string { return "http://" + r.Addr }

// Ref returns the reference ADDR/NAME:TAG of a repository on this registry.
func (r *Registry) Ref(name, tag string) string { return r.Addr + "/" + name + ":" + tag }

// PID returns the registry process's id.
func (r *Registry) PID() int {
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Stop sends SIGTERM to the registry, SIGKILL after 5 seconds, and waits
// for it to exit. It is safe to call more than once.
func (r *Registry) Stop() {
	if r.cmd == nil {
		return
	}
	r.stopOnce.Do(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
}

func (r *Registry) log() string {
	b, _ := os.ReadFile(r.LogPath)
	return string(b)
}

func (r *Registry) logTo(t testing.TB) {
	t.Logf("registry %s log (%s):\n%s", r.Addr, r.LogPath, r.log())
}

func (r *Registry) auth(req *http.Request) {
	if r.User != "" {
		req.SetBasicAuth(r.User, r.Password)
	}
}

// splitRef splits [HOST/]NAME[:TAG|@DIGEST] into repository name and tag
// or digest. The first path element is a host if it holds "." or ":" or
// is "localhost"; the host is not used (requests go to this registry).
func splitRef(ref string) (name, reference string, err error) {
	rest := ref
	if host, after, ok := strings.Cut(ref, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		rest = after
	}
	if n, d, ok := strings.Cut(rest, "@"); ok {
		name, reference = n, d
	} else if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		name, reference = rest[:i], rest[i+1:]
	} else {
		name, reference = rest, "latest"
	}
	if name == "" || reference == "" {
		return "", "", fmt.Errorf("images: bad reference %q (want ADDR/NAME:TAG)", ref)
	}
	return name, reference, nil
}

// Push uploads the image's config, layers and manifest to repository NAME
// with tag TAG, given repoTag in the form ADDR/NAME:TAG (the ADDR part is
// only parsed off: the upload goes to this registry). It uses the plain
// registry HTTP API (HEAD, then POST + monolithic PUT for each missing
// blob; PUT of the manifest with the OCI manifest media type) and returns
// the manifest digest the registry reports, which equals
// img.ManifestDigest.
func (r *Registry) Push(ctx context.Context, img *Image, repoTag string) (string, error) {
	name, tag, err := splitRef(repoTag)
	if err != nil {
		return "", err
	}
	f, err := os.Open(img.TarPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var manifest []byte
	err = walkLayout(f, func(d digest.Digest, size int64, rd io.Reader) error {
		if d == img.ManifestDigest {
			manifest, err = io.ReadAll(rd)
			return err
		}
		if d != img.ConfigDigest && !containsDigest(img.LayerDigests, d) {
			return nil
		}
		return r.pushBlob(ctx, name, d, size, rd)
	})
	if err != nil {
		return "", err
	}
	if manifest == nil {
		return "", fmt.Errorf("images: %s holds no manifest %s", img.TarPath, img.ManifestDigest)
	}
	u := fmt.Sprintf("%s/v2/%s/manifests/%s", r.URL(), name, tag)
	resp, err := r.do(ctx, http.MethodPut, u, ocispec.MediaTypeImageManifest, bytes.NewReader(manifest), int64(len(manifest)))
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("images: PUT manifest %s:%s: %s", name, tag, resp.Status)
	}
	got := resp.Header.Get("Docker-Content-Digest")
	if got == "" {
		got = img.ManifestDigest.String()
	}
	if got != img.ManifestDigest.String() {
		return got, fmt.Errorf("images: registry stored manifest %s, want %s", got, img.ManifestDigest)
	}
	return got, nil
}

func containsDigest(ds []digest.Digest, d digest.Digest) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

func (r *Registry) do(ctx context.Context, method, u, contentType string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
	}
	r.auth(req)
	return r.client.Do(req)
}

// pushBlob uploads one blob unless the repository already has it.
func (r *Registry) pushBlob(ctx context.Context, name string, d digest.Digest, size int64, rd io.Reader) error {
	resp, err := r.do(ctx, http.MethodHead, fmt.Sprintf("%s/v2/%s/blobs/%s", r.URL(), name, d), "", nil, 0)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	start := fmt.Sprintf("%s/v2/%s/blobs/uploads/", r.URL(), name)
	resp, err = r.do(ctx, http.MethodPost, start, "", nil, 0)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("images: POST %s: %s", start, resp.Status)
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("images: upload location: %w", err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err = r.do(ctx, http.MethodPut, loc.String(), "application/octet-stream", rd, size)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("images: PUT blob %s: %s: %s", d, resp.Status, msg)
	}
	return nil
}

// FetchManifest GETs the manifest of ref ([ADDR/]NAME:TAG or
// [ADDR/]NAME@DIGEST) from this registry and returns its body, its digest
// (checked against the body and the Docker-Content-Digest header) and its
// media type.
func (r *Registry) FetchManifest(ctx context.Context, ref string) ([]byte, digest.Digest, string, error) {
	name, reference, err := splitRef(ref)
	if err != nil {
		return nil, "", "", err
	}
	u := fmt.Sprintf("%s/v2/%s/manifests/%s", r.URL(), name, url.PathEscape(reference))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", "", err
	}
	req.Header.Set("Accept", strings.Join([]string{
		ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.docker.distribution.manifest.list.v2+json",
	}, ", "))
	r.auth(req)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", "", fmt.Errorf("images: GET %s: %s: %s", u, resp.Status, body)
	}
	d := digest.FromBytes(body)
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != d.String() {
		return nil, "", "", fmt.Errorf("images: GET %s: header digest %s, body digest %s", u, h, d)
	}
	if n, err := strconv.Atoi(resp.Header.Get("Content-Length")); err == nil && n != len(body) {
		return nil, "", "", errors.New("images: manifest body truncated")
	}
	return body, d, resp.Header.Get("Content-Type"), nil
}
