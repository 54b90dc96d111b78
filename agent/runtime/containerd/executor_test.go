package containerd

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/agent/runtime"
)

// TestNewFailsNamingTheSocket: no daemon on the socket → a temporary
// error naming it.
func TestNewFailsNamingTheSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := New(ctx, Config{Address: sock, StateDir: t.TempDir()})
	if !errors.Is(err, runtime.ErrTemporary) || !strings.Contains(err.Error(), sock) {
		t.Fatalf("New = %v; want ErrTemporary naming %s", err, sock)
	}
}

// TestDescribe reports CPUs, memory and platform.
func TestDescribe(t *testing.T) {
	env := newEnv(t)
	d, err := env.e.Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d.GetResources().GetNanoCpus() < 1e9 || d.GetResources().GetMemoryBytes() <= 0 || d.GetPlatform().GetOs() != "linux" || d.GetPlatform().GetArchitecture() == "" || d.GetEngineLabels()["containerd.version"] == "" {
		t.Fatalf("Describe = %v", d)
	}
}

func TestPinDigest(t *testing.T) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ ref, dgst, want string }{
		{"registry.test:5000/web:v1", d, "registry.test:5000/web@" + d},
		{"busybox", d, "docker.io/library/busybox@" + d},
		{"registry.test:5000/web:v1", "", "registry.test:5000/web:v1"},
		{"registry.test:5000/web:v1", "not-a-digest", "registry.test:5000/web:v1"},
	} {
		if got := pinDigest(tc.ref, tc.dgst); got != tc.want {
			t.Errorf("pinDigest(%q, %q) = %q, want %q", tc.ref, tc.dgst, got, tc.want)
		}
	}
}

func TestInitNeedsAnInitBinary(t *testing.T) {
	if _, err := (&Executor{}).initOpts(); !errors.Is(err, runtime.ErrTaskRejected) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("initOpts without InitPath: %v; want ErrTaskRejected saying how to get one", err)
	}
	opts, err := (&Executor{cfg: Config{InitPath: "/usr/bin/shoal"}}).initOpts()
	if err != nil || len(opts) != 2 {
		t.Fatalf("initOpts: %d options, %v", len(opts), err)
	}
}
