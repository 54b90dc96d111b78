package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoalhq/shoal/agent/runtime/containerd/ctrdtest"
	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `shoal service logs` shows the output of a service's real containers,
// each line prefixed with its task (SERVICE.SLOT.TASKID@HOSTNAME); --tail
// limits the lines per task; --no-task-ids shortens the prefix; -f shows
// a line written later (a replica told to stop by a scale-down) and ends
// on Ctrl-C.
func TestServiceLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctrd := ctrdtest.Start(t)
	reg := images.StartRegistry(t, "")
	img, err := images.Build(ctx, images.BuildOptions{Ref: "registry.test:5000/echo:v1", Programs: []string{"echo"}, Entrypoint: []string{"/bin/echo"}})
	if err != nil {
		t.Fatalf("build image: %v", err)
	}
	ref := reg.Ref("echo", "v1")
	if _, err := reg.Push(ctx, img, ref); err != nil {
		t.Fatalf("push: %v", err)
	}
	m := newDaemon(t, "m1")
	m.start("--init", "--runtime", "containerd", "--containerd", ctrd.Socket,
		"--containerd-namespace", ctrd.Namespace, "--insecure-registry", reg.Addr)
	out, err := runShoal(90*time.Second, "--host", m.sock(), "service", "create", "--name", "web", "--replicas", "2", "--wait-timeout", "80s", ref)
	if err != nil || !strings.Contains(out, "converged") {
		ps, _ := m.cli("service", "ps", "--no-trunc", "web")
		t.Fatalf("service create: %v\n%s\n%s", err, out, ps)
	}
	lctx, lcancel := ctxT(5 * time.Second)
	defer lcancel()
	nodes, err := m.control().ListNodes(lctx, &api.ListNodesRequest{})
	if err != nil || len(nodes.Nodes) != 1 {
		t.Fatalf("list nodes: %v, %v", nodes, err)
	}
	host := nodes.Nodes[0].GetDescription().GetHostname()
	listening := func(slot int) *regexp.Regexp {
		return regexp.MustCompile(fmt.Sprintf(`(?m)^web\.%d\.[0-9a-z]{12}@%s +\| echo: listening on `, slot, regexp.QuoteMeta(host)))
	}
	poll(t, 20*time.Second, "both tasks' start lines in service logs", func() error {
		out, err := m.cli("service", "logs", "web")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		for slot := 1; slot <= 2; slot++ {
			if !listening(slot).MatchString(out) {
				return fmt.Errorf("no start line of web.%d in:\n%s", slot, out)
			}
		}
		return nil
	})

	out, err = m.cli("service", "logs", "--tail", "1", "--timestamps", "web")
	if err != nil {
		t.Fatalf("--tail 1: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	stamped := regexp.MustCompile(`\| \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z echo: listening on `)
	if len(lines) != 2 || !stamped.MatchString(lines[0]) || !stamped.MatchString(lines[1]) {
		t.Fatalf("--tail 1 --timestamps gave %d lines:\n%s", len(lines), out)
	}
	out, err = m.cli("service", "logs", "--no-task-ids", "--tail", "0", "web")
	if err != nil || out != "" {
		t.Fatalf("--tail 0: %v %q", err, out)
	}
	out, err = m.cli("service", "logs", "--no-task-ids", "web")
	if err != nil || !regexp.MustCompile(`(?m)^web\.1@`+regexp.QuoteMeta(host)+` +\| echo: listening on `).MatchString(out) {
		t.Fatalf("--no-task-ids: %v\n%s", err, out)
	}

	// Follow, then scale down: slot 2 is stopped and says so.
	var follow syncBuffer
	cmd := exec.CommandContext(ctx, shoalBin, "--host", m.sock(), "service", "logs", "-f", "web")
	cmd.Stdout, cmd.Stderr = &follow, &follow
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	poll(t, 20*time.Second, "the follower shows the start lines", func() error {
		if !listening(2).MatchString(follow.String()) {
			return fmt.Errorf("follower output:\n%s", follow.String())
		}
		return nil
	})
	if out, err := m.cli("service", "scale", "web=1"); err != nil {
		t.Fatalf("scale: %v\n%s", err, out)
	}
	draining := regexp.MustCompile(`(?m)^web\.2\.[0-9a-z]{12}@` + regexp.QuoteMeta(host) + ` +\| echo: signal received, draining$`)
	poll(t, 30*time.Second, "the follower shows the stop line of web.2", func() error {
		if !draining.MatchString(follow.String()) {
			return fmt.Errorf("follower output:\n%s", follow.String())
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("follower ended with %v on Ctrl-C:\n%s", err, follow.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("follower did not end on Ctrl-C:\n%s", follow.String())
	}
	if out, err := m.cli("service", "rm", "web"); err != nil {
		t.Fatalf("service rm: %v\n%s", err, out)
	}
}
