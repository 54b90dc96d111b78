package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Lab is a running set of namespace hosts. Its methods are safe for
// concurrent use.
type Lab struct {
	// Config is the lab's configuration, defaults filled in.
	Config
	// Hosts are the hosts, host 1 first; hosts 1..Managers are managers.
	Hosts []*Host
	// RegistryAddr is the registry's underlay HOST:PORT ("" with
	// NoRegistry); image references are RegistryAddr/NAME:TAG.
	RegistryAddr string

	mu       sync.Mutex
	registry Proc
	log      io.Writer
}

// state is what NAME.json holds.
type state struct {
	Config
	RegistryAddr string      `json:"registry_addr,omitempty"`
	Registry     Proc        `json:"registry"`
	Hosts        []hostState `json:"hosts"`
}

// ErrNotFound is returned by Open when no lab description exists.
var ErrNotFound = errors.New("lab: no such lab")

// Up builds the lab cfg describes and starts every host's containerd and
// daemon: host 1 creates the cluster, the other managers join it one by
// one, the workers join in parallel. It returns once every node is READY
// in the cluster. log receives progress lines (nil: none). On error
// everything built so far is torn down.
func Up(ctx context.Context, cfg Config, log io.Writer) (*Lab, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = io.Discard
	}
	if _, err := os.Stat(statePath(cfg.Dir, cfg.Name)); err == nil {
		return nil, fmt.Errorf("lab: %s already holds lab %s: take it down first", cfg.Dir, cfg.Name)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: create folder: %w", err)
	}
	l := &Lab{Config: cfg, log: log}
	for n := 1; n <= cfg.Hosts; n++ {
		l.Hosts = append(l.Hosts, newHost(l, n))
	}
	if !cfg.NoRegistry {
		l.RegistryAddr = net.JoinHostPort(cfg.registryAddr().String(), strconv.Itoa(RegistryPort))
	}
	// Written before anything exists, so that a crash from here on leaves
	// a description Sweep can tear down.
	if err := l.save(); err != nil {
		return nil, err
	}
	if err := l.build(ctx); err != nil {
		_ = l.Down()
		return nil, err
	}
	return l, nil
}

func (l *Lab) build(ctx context.Context) error {
	start := time.Now()
	if err := l.buildUnderlay(); err != nil {
		return err
	}
	for _, h := range l.Hosts {
		if err := h.buildNetwork(); err != nil {
			return err
		}
	}
	fmt.Fprintf(l.log, "underlay %s: %d hosts (%s)\n", l.Underlay, len(l.Hosts), time.Since(start).Round(time.Millisecond))
	if !l.NoRegistry {
		if err := l.startRegistry(ctx); err != nil {
			return err
		}
	}
	if err := l.startContainerds(ctx); err != nil {
		return err
	}
	if err := l.formCluster(ctx); err != nil {
		return err
	}
	fmt.Fprintf(l.log, "cluster of %d managers and %d workers ready (%s)\n", l.Managers, len(l.Hosts)-l.Managers, time.Since(start).Round(time.Millisecond))
	return nil
}

// Open returns the lab described in dir under name, as Up left it.
func Open(dir, name string) (*Lab, error) {
	b, err := os.ReadFile(statePath(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s in %s", ErrNotFound, name, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("lab: read description: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab: %s: %w", statePath(dir, name), err)
	}
	l := &Lab{Config: st.Config, RegistryAddr: st.RegistryAddr, registry: st.Registry, log: io.Discard}
	for i, hs := range st.Hosts {
		h := newHost(l, i+1)
		h.containerd, h.daemon = hs.Containerd, hs.Daemon
		l.Hosts = append(l.Hosts, h)
	}
	return l, nil
}

// save writes the lab's description atomically.
func (l *Lab) save() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := state{Config: l.Config, RegistryAddr: l.RegistryAddr, Registry: l.registry}
	for _, h := range l.Hosts {
		st.Hosts = append(st.Hosts, h.state())
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	p := statePath(l.Dir, l.Name)
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		return fmt.Errorf("lab: write description: %w", err)
	}
	return os.Rename(p+".tmp", p)
}

// Host returns host n (1-based).
func (l *Lab) Host(n int) *Host { return l.Hosts[n-1] }

// ManagerHosts returns the manager hosts.
func (l *Lab) ManagerHosts() []*Host { return l.Hosts[:l.Config.Managers] }

// WorkerHosts returns the hosts that are not managers.
func (l *Lab) WorkerHosts() []*Host { return l.Hosts[l.Config.Managers:] }

// DialContext connects to an underlay address from the underlay's own
// namespace (as a machine on the same switch would).
func (l *Lab) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialIn(ctx, l.underlayNS(), network, addr)
}

// HTTPClient returns an HTTP client whose connections start in the
// underlay namespace.
func (l *Lab) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: l.DialContext, DisableKeepAlives: true}}
}

// Down stops every process of the lab, removes its namespaces, mounts,
// cgroups and folder. It goes on past errors and returns them all.
func (l *Lab) Down() error {
	var errs []error
	for _, h := range l.Hosts {
		if err := h.daemon.Terminate(syscall.SIGKILL, 0); err != nil {
			errs = append(errs, err)
		}
	}
	var wg sync.WaitGroup
	errCh := make(chan error, len(l.Hosts))
	for _, h := range l.Hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errCh <- h.powerOff() }()
	}
	wg.Wait()
	close(errCh)
	for err := range errCh {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.registry.Terminate(syscall.SIGTERM, 5*time.Second); err != nil {
		errs = append(errs, err)
	}
	for _, h := range l.Hosts {
		if err := delNS(h.NetNS); err != nil {
			errs = append(errs, err)
		}
	}
	if err := delNS(l.underlayNS()); err != nil {
		errs = append(errs, err)
	}
	unmountUnder(l.Dir)
	for _, h := range l.Hosts {
		if err := os.RemoveAll(h.Dir); err != nil {
			errs = append(errs, fmt.Errorf("lab: remove %s: %w", h.Dir, err))
		}
	}
	_ = os.RemoveAll(filepath.Join(l.Dir, "registry"))
	_ = os.Remove(filepath.Join(l.Dir, "registry.log"))
	if err := os.Remove(statePath(l.Dir, l.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	// The folder itself goes when nothing else is in it.
	_ = os.Remove(l.Dir)
	return errors.Join(errs...)
}
