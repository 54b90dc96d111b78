package ctrdtest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	testImage   = "registry.test:5000/ctrdtest/hello:v1"
	testFile    = "hello.txt"
	testContent = "hello from ctrdtest\n"
)

func TestDaemon(t *testing.T) {
	var d *Daemon
	t.Run("use", func(t *testing.T) {
		d = Start(t)
		if !strings.HasPrefix(d.Namespace, "shoaltest-") {
			t.Errorf("Namespace = %q, want prefix shoaltest-", d.Namespace)
		}
		if n := len(d.Socket + ".ttrpc"); n > maxSocketPath {
			t.Errorf("socket path %d bytes long, over %d", n, maxSocketPath)
		}
		c := d.Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()

		v, err := c.Version(ctx)
		if err != nil {
			t.Fatalf("Version: %v", err)
		}
		if !strings.Contains(v.Version, "2.4.2") {
			t.Errorf("Version = %q, want 2.4.2", v.Version)
		}

		ns := c.NamespaceService()
		if got, err := ns.List(ctx); err != nil || len(got) != 0 {
			t.Fatalf("fresh daemon namespaces = %v, %v; want none", got, err)
		}
		if err := ns.Create(ctx, d.Namespace, map[string]string{"shoal.test": "ctrdtest"}); err != nil {
			t.Fatalf("create namespace: %v", err)
		}
		if got, err := ns.List(ctx); err != nil || !slices.Equal(got, []string{d.Namespace}) {
			t.Fatalf("namespaces = %v, %v; want [%s]", got, err, d.Namespace)
		}
		if cs, err := c.Containers(ctx); err != nil || len(cs) != 0 {
			t.Fatalf("containers in a new namespace = %v, %v; want none", cs, err)
		}

		lm := c.LeasesService()
		l, err := lm.Create(ctx, leases.WithRandomID(), leases.WithExpiration(time.Minute))
		if err != nil {
			t.Fatalf("create lease: %v", err)
		}
		if ls, err := lm.List(ctx); err != nil || len(ls) != 1 || ls[0].ID != l.ID {
			t.Fatalf("leases = %v, %v; want [%s]", ls, err, l.ID)
		}
		if err := lm.Delete(ctx, l); err != nil {
			t.Fatalf("delete lease: %v", err)
		}

		importAndRead(ctx, t, c)
	})
	if d == nil {
		return
	}
	if !d.exited() {
		t.Errorf("containerd (pid %d) still running after cleanup", d.cmd.Process.Pid)
	}
	if _, err := os.Stat(d.Dir); !os.IsNotExist(err) {
		t.Errorf("daemon folder %s still there after cleanup (%v)", d.Dir, err)
	}
}

// importAndRead imports a one-layer OCI image built here, unpacks it with
// overlayfs and reads its file through a mounted snapshot view.
func importAndRead(ctx context.Context, t *testing.T, c *client.Client) {
	t.Helper()
	imgs, err := c.Import(ctx, bytes.NewReader(ociArchive(t)))
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if len(imgs) != 1 || imgs[0].Name != testImage {
		t.Fatalf("imported %v, want one image %s", imgs, testImage)
	}
	img, err := c.GetImage(ctx, testImage)
	if err != nil {
		t.Fatalf("get image: %v", err)
	}
	if err := img.Unpack(ctx, "overlayfs"); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	if ok, err := img.IsUnpacked(ctx, "overlayfs"); err != nil || !ok {
		t.Fatalf("IsUnpacked = %v, %v", ok, err)
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		t.Fatalf("rootfs: %v", err)
	}
	sn := c.SnapshotService("overlayfs")
	mounts, err := sn.View(ctx, "ctrdtest-view", identity.ChainID(diffIDs).String())
	if err != nil {
		t.Fatalf("snapshot view: %v", err)
	}
	defer sn.Remove(ctx, "ctrdtest-view")
	target := t.TempDir()
	if err := mount.All(mounts, target); err != nil {
		t.Fatalf("mount view: %v", err)
	}
	got, readErr := os.ReadFile(filepath.Join(target, testFile))
	if err := mount.UnmountAll(target, 0); err != nil {
		t.Errorf("unmount view: %v", err)
	}
	if readErr != nil || string(got) != testContent {
		t.Fatalf("image file = %q, %v; want %q", got, readErr, testContent)
	}
}

// ociArchive returns an OCI image layout tar holding one image, testImage,
// whose single layer has testFile.
func ociArchive(t *testing.T) []byte {
	t.Helper()
	layer := tarBytes(t, map[string]string{testFile: testContent})
	return ociArchiveOf(t, testImage, layer, []string{"/hello"})
}

// ociArchiveOf returns an OCI image layout tar holding one image, name,
// of one layer and the given command.
func ociArchiveOf(t *testing.T, name string, layer []byte, cmd []string) []byte {
	t.Helper()
	blobs := map[digest.Digest][]byte{}
	add := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		blobs[d] = b
		return d
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	layerDigest := add(layer)
	config := mustJSON(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Cmd: cmd},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDigest}},
	})
	configDigest := add(config)
	manifest := mustJSON(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: configDigest, Size: int64(len(config))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: layerDigest, Size: int64(len(layer))}},
	})
	manifestDigest := add(manifest)
	index := mustJSON(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType:   ocispec.MediaTypeImageManifest,
			Digest:      manifestDigest,
			Size:        int64(len(manifest)),
			Platform:    &ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
			Annotations: map[string]string{"io.containerd.image.name": name},
		}},
	})

	files := map[string]string{
		ocispec.ImageLayoutFile: `{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`,
		ocispec.ImageIndexFile:  string(index),
	}
	for d, b := range blobs {
		files["blobs/"+d.Algorithm().String()+"/"+d.Encoded()] = string(b)
	}
	return tarBytes(t, files)
}

// tarBytes returns a tar of regular files (mode 0644), in name order.
func tarBytes(t *testing.T, files map[string]string) []byte {
	t.Helper()
	return tarModes(t, files, nil)
}

// tarModes is tarBytes with a mode for some files.
func tarModes(t *testing.T, files map[string]string, modes map[string]int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		body := files[name]
		mode, ok := modes[name]
		if !ok {
			mode = 0o644
		}
		hdr := &tar.Header{Name: name, Mode: mode, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestTwoDaemons checks that two daemons run side by side with their own
// sockets, folders and namespaces.
func TestTwoDaemons(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Socket == b.Socket || a.Dir == b.Dir || a.Namespace == b.Namespace {
		t.Fatalf("daemons share socket, folder or namespace: %+v %+v", a, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, d := range []*Daemon{a, b} {
		c := d.Client(t)
		if err := c.NamespaceService().Create(ctx, d.Namespace, nil); err != nil {
			t.Fatalf("%s: create namespace: %v", d.Socket, err)
		}
	}
	for _, d := range []*Daemon{a, b} {
		got, err := d.Client(t).NamespaceService().List(ctx)
		if err != nil || !slices.Equal(got, []string{d.Namespace}) {
			t.Fatalf("%s: namespaces = %v, %v; want only its own %s", d.Socket, got, err, d.Namespace)
		}
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the calling goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// TestStartNotInstalled checks that a missing installation fails (never
// skips) with the message that says how to install it.
func TestStartNotInstalled(t *testing.T) {
	t.Setenv("SHOAL_TOOLS_DIR", t.TempDir())
	r := &fatalRecorder{TB: t}
	done := make(chan *Daemon)
	go func() {
		var d *Daemon
		defer func() { done <- d }()
		d = Start(r)
	}()
	if d := <-done; d != nil {
		t.Fatalf("Start returned a daemon with no binaries installed: %+v", d)
	}
	if !strings.Contains(r.msg, "containerd is not installed: run deploy/tools.sh runtime") {
		t.Fatalf("Start failed with %q", r.msg)
	}
}

// TestLeftoverTaskReaped leaves a running container behind and checks
// that cleanup kills it and removes its runc state and cgroups.
func TestLeftoverTaskReaped(t *testing.T) {
	// A static program that runs until killed, as the image's only file.
	src := filepath.Join(t.TempDir(), "main.go")
	prog := filepath.Join(filepath.Dir(src), "sleeper")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"time\"\n\nfunc main() {\n\tfor {\n\t\ttime.Sleep(time.Hour)\n\t}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", prog, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sleeper: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(prog)
	if err != nil {
		t.Fatal(err)
	}
	const name = "registry.test:5000/ctrdtest/sleeper:v1"
	layer := tarModes(t, map[string]string{"sleeper": string(bin)}, map[string]int64{"sleeper": 0o755})

	var (
		d   *Daemon
		pid uint32
	)
	t.Run("leave", func(t *testing.T) {
		d = Start(t)
		c := d.Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.Import(ctx, bytes.NewReader(ociArchiveOf(t, name, layer, []string{"/sleeper"}))); err != nil {
			t.Fatalf("import: %v", err)
		}
		img, err := c.GetImage(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := img.Unpack(ctx, "overlayfs"); err != nil {
			t.Fatalf("unpack: %v", err)
		}
		ctr, err := c.NewContainer(ctx, "sleeper",
			client.WithNewSnapshot("sleeper-rootfs", img),
			client.WithNewSpec(oci.WithImageConfig(img)))
		if err != nil {
			t.Fatalf("new container: %v", err)
		}
		task, err := ctr.NewTask(ctx, cio.NullIO)
		if err != nil {
			t.Fatalf("new task: %v\n%s", err, d.LogTail(20))
		}
		if err := task.Start(ctx); err != nil {
			t.Fatalf("start task: %v", err)
		}
		st, err := task.Status(ctx)
		if err != nil || st.Status != client.Running {
			t.Fatalf("task status = %v, %v; want running", st.Status, err)
		}
		pid = task.Pid()
		if len(nsCgroups(d.Namespace)) == 0 {
			t.Errorf("no cgroup folder for namespace %s while its task runs", d.Namespace)
		}
		// Left running on purpose: cleanup must remove it.
	})
	if d == nil || pid == 0 {
		return
	}
	if err := syscall.Kill(int(pid), 0); err != syscall.ESRCH {
		t.Errorf("container process %d still there after cleanup (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(filepath.Join("/run/containerd/runc", d.Namespace)); !os.IsNotExist(err) {
		t.Errorf("runc state for %s still there after cleanup (%v)", d.Namespace, err)
	}
	if left := nsCgroups(d.Namespace); len(left) > 0 {
		t.Errorf("cgroup folders left after cleanup: %v", left)
	}
}

// TestStartDaemonDies checks that a daemon that exits at once fails Start
// quickly, with the end of its log in the message.
func TestStartDaemonDies(t *testing.T) {
	tools := t.TempDir()
	bin := filepath.Join(tools, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	fake := "#!/bin/sh\necho 'fake containerd: boom' >&2\nexit 3\n"
	for _, name := range []string{"containerd", "containerd-shim-runc-v2"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(fake), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("SHOAL_TOOLS_DIR", tools)
	r := &fatalRecorder{TB: t}
	done := make(chan *Daemon)
	start := time.Now()
	go func() {
		var d *Daemon
		defer func() { done <- d }()
		d = Start(r)
	}()
	if d := <-done; d != nil {
		t.Fatalf("Start returned a daemon that exited: %+v", d)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Start took %v to notice the daemon exited", took)
	}
	for _, want := range []string{"daemon exited", "fake containerd: boom"} {
		if !strings.Contains(r.msg, want) {
			t.Errorf("Start failed with %q, want it to contain %q", r.msg, want)
		}
	}
}

// nsCgroups lists the cgroup folders named after ns (cgroups v1 and v2).
func nsCgroups(ns string) []string {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns))
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ns)); err == nil {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", ns))
	}
	return dirs
}
