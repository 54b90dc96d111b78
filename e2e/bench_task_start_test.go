package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/local"

	"github.com/shoalhq/shoal/proto/api"
)

// startBenchDaemon starts `shoal daemon --init` on the host with the
// cluster's default settings (heartbeat, batch intervals), for a
// benchmark, which the harness of daemon_test.go (made for *testing.T)
// cannot run. The process is stopped (SIGTERM, then SIGKILL after 15 s)
// when b ends, and its log tail printed if b failed.
func (h *ctrdHost) startBenchDaemon(b *testing.B) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	h.addr = ln.Addr().String()
	ln.Close()
	h.dataDir = b.TempDir()
	logPath := filepath.Join(h.dataDir, "daemon.log")
	logf, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	args := append([]string{"daemon", "--init", "--data-dir", h.dataDir, "--listen-addr", h.addr,
		"--hostname", "bench", "--log-level", "info"}, h.flags...)
	cmd := exec.Command(shoalBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if h.conn != nil {
			h.conn.Close()
		}
		if b.Failed() {
			out, _ := os.ReadFile(logPath)
			b.Logf("---- daemon log ----\n%s", lastLines(string(out), 60))
		}
	})
	pollTB(b, 30*time.Second, "daemon serving", func() error {
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			b.Fatalf("daemon exited during start:\n%s", lastLines(string(out), 30))
		default:
		}
		if out, _ := os.ReadFile(logPath); !bytes.Contains(out, []byte("is serving on")) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	h.conn, err = grpc.NewClient("unix://"+filepath.Join(h.dataDir, "shoal.sock"), grpc.WithTransportCredentials(local.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
}

// benchEvents are the containerd event topics whose first sighting
// (containerd's own timestamp) the benchmark times, in order.
var benchEvents = []string{"/containers/create", "/tasks/create", "/tasks/start"}

// watchEvents subscribes to the containerd events of benchEvents until
// ctx ends; the function it returns gives the timestamp of the first
// event of each topic received so far.
func (h *ctrdHost) watchEvents(ctx context.Context) func() map[string]time.Time {
	var filters []string
	for _, topic := range benchEvents {
		filters = append(filters, fmt.Sprintf("topic==%q", topic))
	}
	ch, errs := h.client.Subscribe(h.cctx(ctx), filters...)
	var (
		mu    sync.Mutex
		first = map[string]time.Time{}
	)
	go func() {
		for {
			select {
			case e := <-ch:
				mu.Lock()
				if _, ok := first[e.Topic]; !ok {
					first[e.Topic] = e.Timestamp
				}
				mu.Unlock()
			case <-errs:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() map[string]time.Time {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(first)
	}
}

// benchStates are the task states whose first sighting the benchmark
// times, in order.
var benchStates = []api.TaskState{
	api.TaskState_TASK_STATE_PENDING, api.TaskState_TASK_STATE_ASSIGNED,
	api.TaskState_TASK_STATE_ACCEPTED, api.TaskState_TASK_STATE_PREPARING,
	api.TaskState_TASK_STATE_READY, api.TaskState_TASK_STATE_STARTING,
	api.TaskState_TASK_STATE_RUNNING,
}

// statePollInterval is how often the benchmark reads the task through
// ListTasks: the resolution of its timings.
const statePollInterval = 2 * time.Millisecond

// orchestratedStart creates a one-replica service through the API and
// polls ListTasks until its task is RUNNING. It returns the time from
// the CreateService call to the first RUNNING sighting, when each state
// was first seen (a state skipped between two polls is missing), and the
// service's ID.
// The containerd events of its container (benchEvents) are timed too,
// their durations from the CreateService call added to seenEvents.
func (h *ctrdHost) orchestratedStart(b *testing.B, name string, seenEvents map[string]time.Duration) (time.Duration, map[api.TaskState]time.Duration, string) {
	b.Helper()
	ctx, cancel := ctxT(60 * time.Second)
	defer cancel()
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: h.ref}},
		Mode:        &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 1}}},
	}
	events := h.watchEvents(ctx)
	start := time.Now()
	resp, err := h.control().CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		b.Fatalf("create service: %v", err)
	}
	id := resp.GetService().GetId()
	seen := map[api.TaskState]time.Duration{}
	for ctx.Err() == nil {
		lr, err := h.control().ListTasks(ctx, &api.ListTasksRequest{ServiceIds: []string{id}})
		if err != nil {
			b.Fatalf("list tasks: %v", err)
		}
		now := time.Since(start)
		for _, t := range lr.GetTasks() {
			st := t.GetStatus().GetState()
			if _, ok := seen[st]; !ok {
				seen[st] = now
			}
			if st > api.TaskState_TASK_STATE_RUNNING {
				b.Fatalf("task ended: %s", describeTasks(lr.GetTasks()))
			}
		}
		if d, ok := seen[api.TaskState_TASK_STATE_RUNNING]; ok {
			for topic, at := range events() {
				seenEvents[topic] += at.Sub(start)
			}
			return d, seen, id
		}
		time.Sleep(statePollInterval)
	}
	b.Fatalf("service %s not running within 60 s", name)
	return 0, nil, ""
}

// rawStart creates and starts a container of img straight through the
// containerd client (NewContainer with a new snapshot and a spec from
// the image config, NewTask, Start), returns how long that took, then
// kills and deletes it with its snapshot. The time of each of the three
// calls is added to phases (keys "new-container", "new-task", "start").
func (h *ctrdHost) rawStart(b *testing.B, img client.Image, id string, phases map[string]time.Duration) time.Duration {
	b.Helper()
	ctx, cancel := ctxT(60 * time.Second)
	defer cancel()
	ctx = h.cctx(ctx)
	start := time.Now()
	c, err := h.client.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithSnapshotter("overlayfs"),
		client.WithNewSnapshot(id, img),
		client.WithNewSpec(oci.WithImageConfig(img)),
	)
	if err != nil {
		b.Fatalf("new container: %v", err)
	}
	t1 := time.Now()
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		b.Fatalf("new task: %v", err)
	}
	t2 := time.Now()
	if err := task.Start(ctx); err != nil {
		b.Fatalf("start task: %v", err)
	}
	d := time.Since(start)
	phases["new-container"] += t1.Sub(start)
	phases["new-task"] += t2.Sub(t1)
	phases["start"] += start.Add(d).Sub(t2)
	if _, err := task.Delete(ctx, client.WithProcessKill); err != nil {
		b.Fatalf("delete task: %v", err)
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		b.Fatalf("delete container: %v", err)
	}
	return d
}

// BenchmarkTaskStart times a one-replica service from CreateService to
// its task RUNNING in the API (orchestrated-ms), against creating and
// starting a container of the same image straight through containerd
// (containerd-ms), both with the image already present. overhead-ms is
// the difference; the <state>-ms metrics are when the task was first
// seen in each state (polled every 2 ms, so a state may be missed), and
// the ctrd-<topic>-ms metrics when containerd published the events of
// the orchestrated task's container (created, task created, started).
//
//	go test -run '^$' -bench TaskStart -benchtime 5x ./e2e/
func BenchmarkTaskStart(b *testing.B) {
	h := newCtrdHost(b)
	h.startBenchDaemon(b)
	// Warm up: the first task pulls the image.
	_, _, id := h.orchestratedStart(b, "warmup", map[string]time.Duration{})
	h.removeService(b, id)
	img := h.pulledImage(b)
	h.rawStart(b, img, "raw-warmup", map[string]time.Duration{})

	var orch, raw time.Duration
	phases := map[api.TaskState]time.Duration{}
	phaseN := map[api.TaskState]int{}
	events := map[string]time.Duration{}
	rawPhases := map[string]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, seen, id := h.orchestratedStart(b, fmt.Sprintf("bench-%d", i), events)
		orch += d
		for st, at := range seen {
			phases[st] += at
			phaseN[st]++
		}
		h.removeService(b, id)
		raw += h.rawStart(b, img, fmt.Sprintf("raw-%d", i), rawPhases)
	}
	b.StopTimer()
	ms := func(d time.Duration, n int) float64 { return float64(d) / float64(time.Millisecond) / float64(n) }
	b.ReportMetric(ms(orch, b.N), "orchestrated-ms")
	b.ReportMetric(ms(raw, b.N), "containerd-ms")
	b.ReportMetric(ms(orch-raw, b.N), "overhead-ms")
	var line []string
	for _, st := range benchStates {
		if n := phaseN[st]; n > 0 {
			name := strings.ToLower(strings.TrimPrefix(st.String(), "TASK_STATE_"))
			b.ReportMetric(ms(phases[st], n), name+"-ms")
			line = append(line, fmt.Sprintf("%s %.1fms (%d/%d)", name, ms(phases[st], n), n, b.N))
		}
	}
	b.Logf("first seen after CreateService: %s", strings.Join(line, ", "))
	line = nil
	for _, topic := range benchEvents {
		name := "ctrd" + strings.ReplaceAll(topic, "/", "-")
		b.ReportMetric(ms(events[topic], b.N), name+"-ms")
		line = append(line, fmt.Sprintf("%s %.1fms", topic, ms(events[topic], b.N)))
	}
	b.Logf("containerd events after CreateService: %s", strings.Join(line, ", "))
	b.Logf("raw containerd: NewContainer %.1fms, NewTask %.1fms, Start %.1fms",
		ms(rawPhases["new-container"], b.N), ms(rawPhases["new-task"], b.N), ms(rawPhases["start"], b.N))
}

// removeService removes a service through the API and waits until
// containerd holds none of its containers.
func (h *ctrdHost) removeService(b *testing.B, id string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := h.control().RemoveService(ctx, &api.RemoveServiceRequest{ServiceId: id}); err != nil {
		b.Fatalf("remove service: %v", err)
	}
	h.waitNoContainers(b, id, 30*time.Second)
}

// pulledImage returns the image the daemon pulled for h.ref: the one
// image in containerd whose name holds the repository (the executor may
// store it by tag or pinned to a digest).
func (h *ctrdHost) pulledImage(b *testing.B) client.Image {
	b.Helper()
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	imgs, err := h.client.ListImages(h.cctx(ctx))
	if err != nil {
		b.Fatal(err)
	}
	repo := strings.TrimSuffix(h.ref, ":v1")
	var names []string
	for _, img := range imgs {
		names = append(names, img.Name())
		if strings.HasPrefix(img.Name(), repo) {
			return img
		}
	}
	b.Fatalf("no image of %s after the warm-up; containerd has %v", repo, names)
	return nil
}
