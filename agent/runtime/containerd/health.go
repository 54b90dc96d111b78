package containerd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/pkg/cio"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/proto/api"
)

// Health check defaults, Docker's, for what neither the task spec nor the
// image says.
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthRetries  = 3
)

// maxProbeOutput bounds the probe output kept as the reason of a failure.
const maxProbeOutput = 1024

// ioDrainTimeout bounds the wait for a finished probe's output.
const ioDrainTimeout = time.Second

// healthConfig is a resolved health check.
type healthConfig struct {
	args        []string // the process to exec in the container
	interval    time.Duration
	timeout     time.Duration
	startPeriod time.Duration
	retries     int
}

// imageHealth is Docker's config.Healthcheck of an image config
// (durations in nanoseconds).
type imageHealth struct {
	Test        []string `json:"Test"`
	Interval    int64    `json:"Interval"`
	Timeout     int64    `json:"Timeout"`
	StartPeriod int64    `json:"StartPeriod"`
	Retries     int      `json:"Retries"`
}

// checkHealthSpec validates the task spec's health check test: empty
// (inherit the image's), ["NONE"], ["CMD", ARG...] or ["CMD-SHELL",
// COMMAND]. Anything else rejects the task.
func checkHealthSpec(hc *api.HealthConfig) error {
	_, err := testArgs(hc.GetTest())
	if err != nil {
		return fmt.Errorf("%w: %v", runtime.ErrTaskRejected, err)
	}
	return nil
}

// testArgs turns a health check test into the process to run: nil for
// an empty test or ["NONE"].
func testArgs(test []string) ([]string, error) {
	if len(test) == 0 {
		return nil, nil
	}
	switch test[0] {
	case "NONE":
		return nil, nil
	case "CMD":
		if len(test) < 2 {
			return nil, fmt.Errorf("health check %q has no command", test)
		}
		return test[1:], nil
	case "CMD-SHELL":
		if len(test) < 2 {
			return nil, fmt.Errorf("health check %q has no command", test)
		}
		return []string{"/bin/sh", "-c", strings.Join(test[1:], " ")}, nil
	}
	return nil, fmt.Errorf("health check %q does not start with CMD, CMD-SHELL or NONE", test)
}

// resolveHealth merges the spec's health check over the image's (either
// may be nil), as Docker does: the spec's test, or else the image's;
// each duration and the retries from the spec when set (non-zero), else
// the image, else the defaults. No test, or ["NONE"], gives nil.
func resolveHealth(spec *api.HealthConfig, img *imageHealth) (*healthConfig, error) {
	if img == nil {
		img = &imageHealth{}
	}
	test := spec.GetTest()
	if len(test) == 0 {
		test = img.Test
	}
	args, err := testArgs(test)
	if err != nil || args == nil {
		return nil, err
	}
	pick := func(s, i int64, def time.Duration) time.Duration {
		switch {
		case s > 0:
			return time.Duration(s)
		case i > 0:
			return time.Duration(i)
		}
		return def
	}
	hc := &healthConfig{
		args:        args,
		interval:    pick(spec.GetInterval(), img.Interval, DefaultHealthInterval),
		timeout:     pick(spec.GetTimeout(), img.Timeout, DefaultHealthTimeout),
		startPeriod: pick(spec.GetStartPeriod(), img.StartPeriod, 0),
		retries:     DefaultHealthRetries,
	}
	if r := spec.GetRetries(); r > 0 {
		hc.retries = int(r)
	} else if img.Retries > 0 {
		hc.retries = img.Retries
	}
	return hc, nil
}

// readImageHealth reads config.Healthcheck from the image config of ctr's
// image; nil when it has none.
func readImageHealth(ctx context.Context, ctr client.Container) (*imageHealth, error) {
	img, err := ctr.Image(ctx)
	if err != nil {
		return nil, classify(err, "image of container "+ctr.ID())
	}
	desc, err := img.Config(ctx)
	if err != nil {
		return nil, classify(err, "image config of "+img.Name())
	}
	b, err := content.ReadBlob(ctx, img.ContentStore(), desc)
	if err != nil {
		return nil, classify(err, "read image config of "+img.Name())
	}
	var cfg struct {
		Config struct {
			Healthcheck *imageHealth `json:"Healthcheck"`
		} `json:"config"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("image config of %s: %w", img.Name(), err)
	}
	return cfg.Config.Healthcheck, nil
}

// healthMonitor probes one running task: it runs the check every
// interval (the first one interval after it starts) as an exec process
// of the task and keeps the task's health. It stops probing once the
// task is unhealthy (final), once the task's process exits, or when
// halted; its state is kept for readers.
type healthMonitor struct {
	cfg    *healthConfig
	log    func(msg string, args ...any)
	cancel context.CancelFunc
	done   chan struct{} // closed when the probe loop has returned

	mu      sync.Mutex
	state   string // runtime.HealthStarting, HealthHealthy or HealthUnhealthy
	reason  string // the last failure (probe output or exit)
	exited  bool   // the task's process exited
	changed chan struct{}
}

// startMonitor starts probing task, whose container's process spec is
// proc, from health state initial.
func startMonitor(c *Controller, cfg *healthConfig, task client.Task, proc *specs.Process, initial string) *healthMonitor {
	ctx, cancel := context.WithCancel(c.nsContext())
	m := &healthMonitor{
		cfg: cfg, cancel: cancel, done: make(chan struct{}),
		log:   func(msg string, args ...any) { c.e.log.Info(msg, append([]any{"task", c.id}, args...)...) },
		state: initial, changed: make(chan struct{}),
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		// No process to wait for: treat it as gone.
		m.update(func() { m.exited = true })
		cancel()
		close(m.done)
		return m
	}
	go func() {
		select {
		case <-exitCh:
			m.update(func() { m.exited = true })
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer close(m.done)
		m.loop(ctx, task, proc)
	}()
	return m
}

// update changes the state under the lock with f and wakes readers.
func (m *healthMonitor) update(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
	close(m.changed)
	m.changed = make(chan struct{})
}

// snapshot returns the state and a channel closed at its next change.
func (m *healthMonitor) snapshot() (state, reason string, exited bool, changed <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, m.reason, m.exited, m.changed
}

// halt stops probing and returns once no probe runs; the state is kept.
func (m *healthMonitor) halt() {
	m.cancel()
	<-m.done
}

// loop probes every interval until ctx ends or the task is unhealthy.
// Failures while the task is still starting within the start period do
// not count.
func (m *healthMonitor) loop(ctx context.Context, task client.Task, proc *specs.Process) {
	start := time.Now()
	failures := 0
	timer := time.NewTimer(m.cfg.interval)
	defer timer.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		ok, reason := m.probe(ctx, task, proc, n)
		if ctx.Err() != nil {
			return
		}
		state, _, _, _ := m.snapshot()
		switch {
		case ok:
			failures = 0
			if state != runtime.HealthHealthy {
				m.log("task is healthy", "probe", n)
				m.update(func() { m.state, m.reason = runtime.HealthHealthy, "" })
			}
		case state == runtime.HealthStarting && time.Since(start) < m.cfg.startPeriod:
			m.log("health check failed in the start period", "probe", n, "reason", reason)
		default:
			failures++
			m.log("health check failed", "probe", n, "failures", failures, "retries", m.cfg.retries, "reason", reason)
			if failures >= m.cfg.retries {
				m.update(func() { m.state, m.reason = runtime.HealthUnhealthy, reason })
				return
			}
			m.update(func() { m.reason = reason })
		}
		timer.Reset(m.cfg.interval)
	}
}

// probe runs the check once as exec process n of task, killed after the
// timeout, and tells whether it passed; when it did not, why: its output
// and exit code, its time-out, or the exec failure.
func (m *healthMonitor) probe(ctx context.Context, task client.Task, proc *specs.Process, n int) (bool, string) {
	pctx, cancel := context.WithTimeout(ctx, m.cfg.timeout)
	defer cancel()
	spec := *proc
	spec.Args = m.cfg.args
	spec.Terminal = false
	out := &limitedBuffer{max: maxProbeOutput}
	execID := fmt.Sprintf("health-%d-%d", time.Now().UnixNano(), n)
	p, err := task.Exec(pctx, execID, &spec, cio.NewCreator(cio.WithStreams(nil, out, out)))
	if err != nil {
		return false, fmt.Sprintf("exec health check: %v", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer dcancel()
		_, _ = p.Delete(dctx, client.WithProcessKill)
	}()
	ch, err := p.Wait(pctx)
	if err != nil {
		return false, fmt.Sprintf("wait health check: %v", err)
	}
	if err := p.Start(pctx); err != nil {
		return false, fmt.Sprintf("start health check: %v", err)
	}
	select {
	case es := <-ch:
		if err := es.Error(); err != nil {
			if pctx.Err() != nil && ctx.Err() == nil {
				return false, fmt.Sprintf("health check timed out after %v", m.cfg.timeout)
			}
			return false, fmt.Sprintf("health check: %v", err)
		}
		drainIO(p)
		if es.ExitCode() == 0 {
			return true, ""
		}
		msg := fmt.Sprintf("health check exited with code %d", es.ExitCode())
		if o := strings.TrimSpace(out.String()); o != "" {
			msg += ": " + o
		}
		return false, msg
	case <-pctx.Done():
		kctx, kcancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer kcancel()
		_ = p.Kill(kctx, syscall.SIGKILL)
		return false, fmt.Sprintf("health check timed out after %v", m.cfg.timeout)
	}
}

// drainIO waits a little for a finished process's output to be copied.
func drainIO(p client.Process) {
	done := make(chan struct{})
	go func() {
		if io := p.IO(); io != nil {
			io.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(ioDrainTimeout):
	}
}

// limitedBuffer is a concurrency-safe writer keeping the first max
// bytes written.
type limitedBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// healthConfig resolves the task's health check once: the spec's, over
// the image's (read only when the spec gives no test); nil for none.
func (c *Controller) healthConfig(ctx context.Context, ctr client.Container) (*healthConfig, error) {
	if c.healthResolved {
		return c.health, nil
	}
	spec := c.task.GetSpec().GetContainer().GetHealthcheck()
	var img *imageHealth
	if len(spec.GetTest()) == 0 {
		var err error
		if img, err = readImageHealth(ctx, ctr); err != nil {
			return nil, err
		}
	}
	hc, err := resolveHealth(spec, img)
	if err != nil {
		return nil, err
	}
	c.health, c.healthResolved = hc, true
	return hc, nil
}

// monitor returns the task's health monitor, starting it on first use
// (from "starting", or "healthy" when Reattach was told the task was);
// nil when the task has no health check.
func (c *Controller) monitor(ctx context.Context) (*healthMonitor, error) {
	if c.mon != nil {
		return c.mon, nil
	}
	ctr, task, err := c.loadTask(ctx)
	if err != nil {
		return nil, err
	}
	hc, err := c.healthConfig(ctx, ctr)
	if err != nil || hc == nil {
		return nil, err
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return nil, classify(err, "spec of container "+c.id)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("container %s has no process spec", c.id)
	}
	initial := runtime.HealthStarting
	if c.lastHealth == runtime.HealthHealthy {
		initial = runtime.HealthHealthy
	}
	c.mon = startMonitor(c, hc, task, spec.Process, initial)
	return c.mon, nil
}

// haltHealth stops the probes of the task (its health is kept); drop also
// forgets the monitor.
func (c *Controller) haltHealth(drop bool) {
	if c.mon == nil {
		return
	}
	c.mon.halt()
	if drop {
		c.mon = nil
	}
}

// Health implements runtime.HealthChecker: the task's health check is
// the spec's, else the image's HEALTHCHECK, else none (["NONE"] turns
// it off). Probes run the check in the container (exec), the first one
// interval after the first call of Health or Wait on this controller,
// which starts them; the start period counts from there too.
func (c *Controller) Health(ctx context.Context, last string) (string, error) {
	m, err := c.monitor(ctx)
	if err != nil || m == nil {
		return runtime.HealthNone, err
	}
	for {
		state, reason, exited, changed := m.snapshot()
		switch {
		case state == runtime.HealthUnhealthy:
			return state, fmt.Errorf("%w: %s", runtime.ErrUnhealthy, reason)
		case exited:
			return state, fmt.Errorf("%w: task %s", runtime.ErrTaskExited, c.id)
		case state != last:
			return state, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
