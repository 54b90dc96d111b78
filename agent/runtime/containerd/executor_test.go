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
