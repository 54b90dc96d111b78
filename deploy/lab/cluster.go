package lab

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/proto/api"
)

// buildUnderlay creates the underlay namespace and its bridge br0.
func (l *Lab) buildUnderlay() error {
	ns := l.underlayNS()
	if err := addNS(ns); err != nil {
		return err
	}
	bits := fmt.Sprint(l.Underlay.Bits())
	for _, args := range [][]string{
		{"-n", ns, "link", "add", "br0", "type", "bridge"},
		{"-n", ns, "addr", "add", l.bridgeAddr().String() + "/" + bits, "dev", "br0"},
		{"-n", ns, "addr", "add", l.registryAddr().String() + "/" + bits, "dev", "br0"},
		{"-n", ns, "link", "set", "br0", "up"},
	} {
		if err := ip(args...); err != nil {
			return err
		}
	}
	return nil
}

// startRegistry runs the registry in the underlay namespace.
func (l *Lab) startRegistry(ctx context.Context) error {
	dir := filepath.Join(l.Dir, "registry")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(images.RegistryConfig(filepath.Join(dir, "data"), l.RegistryAddr)), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(l.Dir, "registry.log")
	env := append(os.Environ(), "OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	p, err := spawn(l.underlayNS(), logPath, dir, env, filepath.Join(l.ToolsBin, "registry"), "serve", cfgPath)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.registry = p
	l.mu.Unlock()
	if err := l.save(); err != nil {
		return err
	}
	c := l.HTTPClient(time.Second)
	return waitFor(ctx, 30*time.Second, "registry", logPath, p, func() bool {
		resp, err := c.Get("http://" + l.RegistryAddr + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Registry returns a client of the lab's registry, for pushing images
// from the machine.
func (l *Lab) Registry() *images.Registry {
	return images.Connect(l.RegistryAddr, l.HTTPClient(5*time.Minute))
}

// startContainerds starts every host's containerd, in parallel.
func (l *Lab) startContainerds(ctx context.Context) error {
	if l.Runtime != RuntimeContainerd {
		return nil
	}
	return ForEach(l.Hosts, func(h *Host) error { return h.startContainerd(ctx) })
}

// ForEach runs fn for every host in parallel and returns the first error
// (by host order).
func ForEach(hosts []*Host, fn func(*Host) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	for i, h := range hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(h) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// formCluster starts host 1 with --init, the other managers one at a
// time, then the workers together, and waits until all are READY.
func (l *Lab) formCluster(ctx context.Context) error {
	first := l.Hosts[0]
	if err := first.startDaemon(ctx, "--init"); err != nil {
		return err
	}
	token := func(role string) (string, error) {
		out, err := first.CLI(ctx, "cluster", "join-token", role, "-q")
		return strings.TrimSpace(out), err
	}
	if l.Config.Managers > 1 {
		tok, err := token("manager")
		if err != nil {
			return err
		}
		for _, h := range l.ManagerHosts()[1:] {
			if err := h.startDaemon(ctx, "--join", first.APIAddr, "--token", tok); err != nil {
				return err
			}
		}
	}
	if workers := l.WorkerHosts(); len(workers) > 0 {
		tok, err := token("worker")
		if err != nil {
			return err
		}
		if err := ForEach(workers, func(h *Host) error {
			return h.startDaemon(ctx, "--join", first.APIAddr, "--token", tok)
		}); err != nil {
			return err
		}
	}
	return l.WaitReady(ctx, 60*time.Second)
}

// WaitReady waits until a manager lists every host as a READY node (and
// every manager host as a reachable manager).
func (l *Lab) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = l.ready(ctx); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: cluster not ready within %s: %w", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ready asks the first manager host whose daemon runs.
func (l *Lab) ready(ctx context.Context) error {
	var m *Host
	for _, h := range l.ManagerHosts() {
		if h.DaemonRunning() {
			m = h
			break
		}
	}
	if m == nil {
		return fmt.Errorf("no manager daemon runs")
	}
	c, err := m.Control()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := c.ListNodes(ctx, &api.ListNodesRequest{})
	if err != nil {
		return err
	}
	byName := map[string]*api.Node{}
	for _, n := range resp.GetNodes() {
		if n.GetStatus().GetState() == api.NodeState_NODE_STATE_READY {
			byName[n.GetDescription().GetHostname()] = n
		}
	}
	for _, h := range l.Hosts {
		n, ok := byName[h.Name]
		if !ok {
			return fmt.Errorf("node %s is not READY", h.Name)
		}
		if h.Manager && n.GetManagerStatus() == nil {
			return fmt.Errorf("node %s is not a manager yet", h.Name)
		}
	}
	return nil
}
