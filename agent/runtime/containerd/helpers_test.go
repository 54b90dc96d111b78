package containerd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/agent/runtime/containerd/ctrdtest"
	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// testEnv is a private containerd daemon and an executor on it.
type testEnv struct {
	d     *ctrdtest.Daemon
	e     *Executor
	state string
}

// newEnv starts a daemon and an executor whose StateDir is a temporary
// folder; any network namespace left mounted in it is unmounted before the
// folder is removed.
func newEnv(t *testing.T, insecure ...string) *testEnv {
	t.Helper()
	d := ctrdtest.Start(t)
	state := t.TempDir()
	t.Cleanup(func() {
		ents, _ := os.ReadDir(netnsDir(state))
		for _, ent := range ents {
			_ = removeNetNS(filepath.Join(netnsDir(state), ent.Name()))
		}
	})
	env := &testEnv{d: d, state: state}
	env.e = env.newExecutor(t, insecure...)
	return env
}

// newExecutor makes another executor on the same daemon and StateDir (an
// agent restart).
func (env *testEnv) newExecutor(t *testing.T, insecure ...string) *Executor {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := New(ctx, Config{
		Address:            env.d.Socket,
		Namespace:          env.d.Namespace,
		StateDir:           env.state,
		InsecureRegistries: insecure,
		Logger:             slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// importImage builds a test image and imports it into the daemon (the
// executor unpacks it on first use).
func (env *testEnv) importImage(t *testing.T, opts images.BuildOptions) string {
	t.Helper()
	ctx := context.Background()
	opts.OutDir = t.TempDir()
	img, err := images.Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(img.TarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := env.e.Client().Import(ctx, f); err != nil {
		t.Fatalf("import %s: %v", img.Ref, err)
	}
	return img.Ref
}

// controller returns the executor's controller of t.
func controllerOf(t *testing.T, e *Executor, task *api.Task) *Controller {
	t.Helper()
	c, err := e.Controller(task)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*Controller)
}

// leftovers lists the containers, snapshots named after task IDs and
// network namespace files the executor has.
func (env *testEnv) leftovers(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	ctrs, err := env.e.Client().Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		out = append(out, "container "+c.ID())
	}
	err = env.e.Client().SnapshotService(snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			out = append(out, "snapshot "+info.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(netnsDir(env.state))
	for _, ent := range ents {
		out = append(out, "netns "+ent.Name())
	}
	return out
}

// waitForLog polls the task's log until it holds want.
func waitForLog(t *testing.T, path, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s lacks %q after %v; it holds:\n%s", path, want, timeout, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpGetInNetNS makes a GET to 127.0.0.1:port/ from inside the network
// namespace at nsPath (the socket is created there; the thread goes back
// to the host namespace afterwards) and returns the response body.
func httpGetInNetNS(nsPath string, port int) (string, error) {
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked if switching back fails: the thread then dies
		conn, err := dialInNetNS(nsPath, fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			res <- result{err: err}
			return
		}
		goruntime.UnlockOSThread()
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
		b, err := io.ReadAll(bufio.NewReader(conn))
		res <- result{string(b), err}
	}()
	r := <-res
	return r.body, r.err
}

// dialInNetNS switches the locked calling thread into nsPath, dials, and
// switches back. On a failed switch back the thread stays locked.
func dialInNetNS(nsPath, addr string) (net.Conn, error) {
	host, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer host.Close()
	ns, err := os.Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("setns: %w", err)
	}
	conn, dialErr := net.DialTimeout("tcp", addr, 2*time.Second)
	if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, errors.Join(errors.New("cannot return to host netns"), err)
	}
	return conn, dialErr
}
