package e2e

// Benchmarks of the overlay data plane on 3 namespace hosts, each
// reporting its figure next to a baseline measured in the same run:
//
//	go test -count=1 -run '^$' -benchtime 1x \
//	  -bench 'BenchmarkOverlayThroughput|BenchmarkVIPConnect|BenchmarkDNSLookup|BenchmarkEndpointPropagation' ./e2e/
//
// Every benchmark builds its own lab. The measurements run from the test
// process inside the containers' network namespaces (inNetNS): a socket
// made there belongs to the container for its whole life, so the traffic
// takes exactly the path a container's would. ns/op is suppressed: it
// would count the lab's start; the reported metrics are the result.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

const (
	// benchNetwork is the overlay network every benchmark creates.
	benchNetwork = "bench"
	// bulkBytes is what one throughput run sends; bulkChunk the size of
	// each write and read.
	bulkBytes = 256 << 20
	bulkChunk = 1 << 20
	// bulkPort is where the throughput sink listens (the echo server of
	// the tasks keeps port 80).
	bulkPort = 5201
	// bulkRounds is how many runs each path gets, interleaved.
	bulkRounds = 7
	// connectSamples is how many VIP and direct requests VIPConnect makes
	// (each); dnsQueries how many lookups DNSLookup makes per method;
	// propagationTrials how many scale-ups EndpointPropagation times.
	connectSamples    = 600
	dnsQueries        = 2000
	propagationTrials = 12
)

// errUnexpectedAnswer is returned by the measurement helpers when a peer
// answers, but not what the benchmark expects.
var errUnexpectedAnswer = errors.New("unexpected answer")

// overlayBench is a lab of 3 hosts (h1 manager) with the overlay network
// benchNetwork created.
type overlayBench struct {
	*cluster
	network *api.Network
}

// newOverlayBench builds the lab and its overlay network.
func newOverlayBench(b *testing.B) *overlayBench {
	b.Helper()
	c := newCluster(b, 3, 1)
	ctx, cancel := ctxT(30 * time.Second)
	defer cancel()
	if out, err := c.Host(1).CLI(ctx, "network", "create", benchNetwork); err != nil {
		b.Fatalf("create network %s: %v: %s", benchNetwork, err, out)
	}
	return &overlayBench{cluster: c, network: c.network(benchNetwork)}
}

// taskOnHost waits until the service runs n tasks and returns the one
// placed on host (a host name such as "h2"); it fails b when none is.
func (o *overlayBench) taskOnHost(serviceID string, n int, host string) *api.Task {
	o.t.Helper()
	tasks := o.waitRunning(serviceID, n, 90*time.Second)
	hosts, err := o.nodeHosts()
	if err != nil {
		o.t.Fatal(err)
	}
	for _, t := range tasks {
		if hosts[t.GetNodeId()] == host {
			return t
		}
	}
	o.t.Fatalf("service %s runs no task on %s: %v", serviceID, host, o.perHost(tasks))
	return nil
}

// addrOf returns the task's address on the benchmark network.
func (o *overlayBench) addrOf(t *api.Task) string {
	o.t.Helper()
	addrs := addrsOn(map[string]*api.Task{t.GetId(): t}, o.network.GetId())
	if len(addrs) != 1 {
		o.t.Fatalf("task %s has addresses %v on network %s, want one", t.GetId(), addrs, benchNetwork)
	}
	return addrs[0]
}

// vip returns the service's VIP on the benchmark network.
func (o *overlayBench) vip(serviceID string) string {
	o.t.Helper()
	svc := o.service(serviceID)
	v := vipOf(svc, o.network.GetId())
	if v == "" {
		o.t.Fatalf("service %s has no VIP on %s: %v", serviceID, benchNetwork, svc.GetEndpoint())
	}
	return v
}

// scale sets the replicas of a replicated service, retrying while the
// service's version moves under it.
func (o *overlayBench) scale(serviceID string, replicas uint64) {
	o.t.Helper()
	poll(o.t, 10*time.Second, fmt.Sprintf("scale %s to %d", serviceID, replicas), func() error {
		ctx, cancel := ctxT(3 * time.Second)
		defer cancel()
		cc, err := o.manager().Control()
		if err != nil {
			return err
		}
		got, err := cc.GetService(ctx, &api.GetServiceRequest{ServiceId: serviceID})
		if err != nil {
			return err
		}
		cur := got.GetService()
		spec := proto.Clone(cur.GetSpec()).(*api.ServiceSpec)
		spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: replicas}}}
		_, err = cc.UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: serviceID, Version: cur.GetMeta().GetVersion(), Spec: spec})
		return err
	})
}

// waitEchoFrom polls addr (host:port) from inside the namespace ns until
// the echo server of task taskID answers (any task when taskID is "").
func (o *overlayBench) waitEchoFrom(ns, addr, taskID string) {
	o.t.Helper()
	poll(o.t, 30*time.Second, fmt.Sprintf("task %q answers on %s", taskID, addr), func() error {
		var a echoAnswer
		err := inNetNS(ns, func() error {
			var err error
			a, err = echoRequest(addr, time.Second)
			return err
		})
		if err == nil && taskID != "" && a.TaskID != taskID {
			err = fmt.Errorf("%w: answered by task %s", errUnexpectedAnswer, a.TaskID)
		}
		return err
	})
}

// waitTaskEnded waits until the service's task is past RUNNING (its
// container stopped) or gone from the store.
func (o *overlayBench) waitTaskEnded(serviceID, taskID string) {
	o.t.Helper()
	poll(o.t, 60*time.Second, fmt.Sprintf("task %s ended", taskID), func() error {
		ctx, cancel := ctxT(3 * time.Second)
		defer cancel()
		cc, err := o.manager().Control()
		if err != nil {
			return err
		}
		resp, err := cc.ListTasks(ctx, &api.ListTasksRequest{ServiceIds: []string{serviceID}})
		if err != nil {
			return err
		}
		for _, t := range resp.GetTasks() {
			if st := t.GetStatus().GetState(); t.GetId() == taskID && st <= api.TaskState_TASK_STATE_RUNNING {
				return fmt.Errorf("task is %v", st)
			}
		}
		return nil
	})
}

// echoRequest opens a TCP connection to addr, sends one GET and decodes
// the echo server's answer; the whole exchange is bounded by timeout.
// The connection is made by the calling thread: call it inside inNetNS
// to make it from a container.
func echoRequest(addr string, timeout time.Duration) (echoAnswer, error) {
	var a echoAnswer
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return a, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return a, err
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"); err != nil {
		return a, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return a, err
	}
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("%w: %s from %s: %s", errUnexpectedAnswer, resp.Status, addr, body)
	}
	return a, json.Unmarshal(body, &a)
}

// durationQuantile returns the q-quantile (0..1, nearest rank) of
// samples, which it sorts.
func durationQuantile(samples []time.Duration, q float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	i := int(q*float64(len(samples))+0.5) - 1
	return samples[min(max(i, 0), len(samples)-1)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkOverlayThroughput measures TCP throughput from a container on
// h1 to a container on h2 over the VXLAN overlay, and between the same
// hosts' namespaces over the underlay, bulkRounds runs of 256 MiB each
// (1 MiB writes and reads), interleaved. It reports the best run of each
// path in MB/s (10^6 bytes) and ratio = overlay/underlay of the bests
// (ratio-median: of the medians). The sink runs in the test process,
// listening inside the receiving namespace.
func BenchmarkOverlayThroughput(b *testing.B) {
	o := newOverlayBench(b)
	h1, h2 := o.Host(1), o.Host(2)
	sink := o.createOn("sink", "web:v1", 2, []string{benchNetwork}, 1, "node.hostname!=h3")
	src := taskNetNS(h1, o.taskOnHost(sink.GetId(), 2, "h1").GetId())
	dstTask := o.taskOnHost(sink.GetId(), 2, "h2")
	dst := taskNetNS(h2, dstTask.GetId())
	paths := []struct {
		name, src, dst, addr string
		runs                 []float64
	}{
		{name: "overlay", src: src, dst: dst, addr: net.JoinHostPort(o.addrOf(dstTask), strconv.Itoa(bulkPort))},
		{name: "underlay", src: filepath.Join("/run/netns", h1.NetNS), dst: filepath.Join("/run/netns", h2.NetNS),
			addr: net.JoinHostPort(h2.Addr, strconv.Itoa(bulkPort))},
	}
	for i := range paths {
		startBulkSink(b, paths[i].dst, paths[i].addr)
		// Warm up (ARP, the first window growth) with a short run.
		if _, err := sendBulk(paths[i].src, paths[i].addr, 8<<20); err != nil {
			b.Fatalf("%s warm-up to %s: %v", paths[i].name, paths[i].addr, err)
		}
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for r := 0; r < bulkRounds; r++ {
			for k := range paths {
				p := &paths[(k+r)%len(paths)] // alternate which path goes first
				d, err := sendBulk(p.src, p.addr, bulkBytes)
				if err != nil {
					b.Fatalf("%s run %d to %s: %v", p.name, r, p.addr, err)
				}
				p.runs = append(p.runs, float64(bulkBytes)/d.Seconds()/1e6)
			}
		}
	}
	b.StopTimer()
	best := func(runs []float64) float64 { return slices.Max(runs) }
	median := func(runs []float64) float64 {
		s := slices.Clone(runs)
		slices.Sort(s)
		return s[len(s)/2]
	}
	ov, ul := paths[0].runs, paths[1].runs
	b.Logf("overlay MB/s runs %.0f; underlay MB/s runs %.0f", ov, ul)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(best(ov), "overlay-MBps")
	b.ReportMetric(best(ul), "underlay-MBps")
	b.ReportMetric(best(ov)/best(ul), "ratio")
	b.ReportMetric(median(ov)/median(ul), "ratio-median")
}

// startBulkSink listens on addr inside the namespace ns until b ends;
// each connection is read to its end, then answered with the count of
// bytes read (8 bytes, big endian).
func startBulkSink(b *testing.B, ns, addr string) {
	b.Helper()
	var ln net.Listener
	if err := inNetNS(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		b.Fatalf("listen on %s in %s: %v", addr, ns, err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
				buf := make([]byte, bulkChunk)
				var total uint64
				for {
					n, err := conn.Read(buf)
					total += uint64(n)
					if err != nil {
						break
					}
				}
				_, _ = conn.Write(binary.BigEndian.AppendUint64(nil, total))
			}()
		}
	}()
}

// sendBulk connects from inside the namespace ns to a sink at addr,
// sends n bytes in bulkChunk writes, and returns the time until the sink
// confirmed it read them all.
func sendBulk(ns, addr string, n int64) (time.Duration, error) {
	var conn net.Conn
	if err := inNetNS(ns, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Minute)); err != nil {
		return 0, err
	}
	buf := make([]byte, bulkChunk)
	start := time.Now()
	for sent := int64(0); sent < n; {
		w, err := conn.Write(buf[:min(int64(len(buf)), n-sent)])
		sent += int64(w)
		if err != nil {
			return 0, err
		}
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, err
	}
	var ack [8]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return 0, fmt.Errorf("read the sink's count: %w", err)
	}
	d := time.Since(start)
	if got := binary.BigEndian.Uint64(ack[:]); got != uint64(n) {
		return 0, fmt.Errorf("%w: the sink read %d bytes of %d", errUnexpectedAnswer, got, n)
	}
	return d, nil
}

// BenchmarkVIPConnect measures, from a client container on h1, a fresh
// TCP connection plus one HTTP GET answered by the echo server of the one
// web task (on h2): through the service's VIP (DNAT in the client's
// namespace) and directly to the task's address, alternating, each
// connectSamples times. It reports the medians (vip-us, direct-us) and
// ratio = vip/direct.
func BenchmarkVIPConnect(b *testing.B) {
	o := newOverlayBench(b)
	web := o.createOn("web", "web:v1", 1, []string{benchNetwork}, 0, "node.hostname==h2")
	client := o.createOn("client", "web:v1", 1, []string{benchNetwork}, 0, "node.hostname==h1")
	webTask := o.taskOnHost(web.GetId(), 1, "h2")
	clientNS := taskNetNS(o.Host(1), o.taskOnHost(client.GetId(), 1, "h1").GetId())
	vip := net.JoinHostPort(o.vip(web.GetId()), "80")
	direct := net.JoinHostPort(o.addrOf(webTask), "80")
	o.waitEchoFrom(clientNS, vip, webTask.GetId())
	o.waitEchoFrom(clientNS, direct, webTask.GetId())

	var viaVIP, viaAddr []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		err := inNetNS(clientNS, func() error {
			for i := 0; i < connectSamples; i++ {
				order := []string{vip, direct}
				if i%2 == 1 {
					order = []string{direct, vip}
				}
				for _, addr := range order {
					start := time.Now()
					a, err := echoRequest(addr, 3*time.Second)
					d := time.Since(start)
					if err == nil && a.TaskID != webTask.GetId() {
						err = fmt.Errorf("%w: task %s answered, want %s", errUnexpectedAnswer, a.TaskID, webTask.GetId())
					}
					if err != nil {
						return fmt.Errorf("sample %d to %s: %w", i, addr, err)
					}
					if addr == vip {
						viaVIP = append(viaVIP, d)
					} else {
						viaAddr = append(viaAddr, d)
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	vp50, dp50 := durationQuantile(viaVIP, 0.5), durationQuantile(viaAddr, 0.5)
	b.Logf("%d samples each: VIP %s p50 %s p90 %s p99 %s; direct %s p50 %s p90 %s p99 %s",
		len(viaVIP), vip, vp50, durationQuantile(viaVIP, 0.9), durationQuantile(viaVIP, 0.99),
		direct, dp50, durationQuantile(viaAddr, 0.9), durationQuantile(viaAddr, 0.99))
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(micros(vp50), "vip-us")
	b.ReportMetric(micros(dp50), "direct-us")
	b.ReportMetric(float64(vp50)/float64(dp50), "ratio")
}

// BenchmarkDNSLookup measures A lookups of the service name "web" from a
// client container on h1, answered by its host's resolver at
// 127.0.0.11:53 inside the container, dnsQueries times each way,
// alternating: over one UDP socket kept open (the server's time: p50-us,
// p99-us) and with a fresh socket per query, as a stub resolver without
// a cache does (fresh-p50-us, fresh-p99-us). Every answer must be the
// VIP alone.
func BenchmarkDNSLookup(b *testing.B) {
	o := newOverlayBench(b)
	web := o.createOn("web", "web:v1", 1, []string{benchNetwork}, 0, "node.hostname==h2")
	client := o.createOn("client", "web:v1", 1, []string{benchNetwork}, 0, "node.hostname==h1")
	o.waitRunning(web.GetId(), 1, 90*time.Second)
	clientNS := taskNetNS(o.Host(1), o.taskOnHost(client.GetId(), 1, "h1").GetId())
	vip := o.vip(web.GetId())
	poll(b, 30*time.Second, "web resolves to its VIP", func() error {
		got, _, err := lookupIn(clientNS, "web")
		if err == nil && !slices.Equal(got, []string{vip}) {
			err = fmt.Errorf("%w: web = %v, want [%s]", errUnexpectedAnswer, got, vip)
		}
		return err
	})

	check := func(r *mdns.Msg) error {
		if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
			return fmt.Errorf("%w: rcode %d, %d answers", errUnexpectedAnswer, r.Rcode, len(r.Answer))
		}
		if a, ok := r.Answer[0].(*mdns.A); !ok || a.A.String() != vip {
			return fmt.Errorf("%w: %v, want A %s", errUnexpectedAnswer, r.Answer[0], vip)
		}
		return nil
	}
	var kept, fresh []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		err := inNetNS(clientNS, func() error {
			dc := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
			conn, err := dc.Dial("127.0.0.11:53")
			if err != nil {
				return err
			}
			defer conn.Close()
			for i := 0; i < dnsQueries; i++ {
				m := new(mdns.Msg)
				m.SetQuestion("web.", mdns.TypeA)
				start := time.Now()
				r, _, err := dc.ExchangeWithConn(m, conn)
				d := time.Since(start)
				if err == nil {
					err = check(r)
				}
				if err != nil {
					return fmt.Errorf("query %d on the kept socket: %w", i, err)
				}
				kept = append(kept, d)

				m = new(mdns.Msg)
				m.SetQuestion("web.", mdns.TypeA)
				start = time.Now()
				r, _, err = dc.Exchange(m, "127.0.0.11:53")
				d = time.Since(start)
				if err == nil {
					err = check(r)
				}
				if err != nil {
					return fmt.Errorf("query %d on a fresh socket: %w", i, err)
				}
				fresh = append(fresh, d)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.Logf("%d queries each: kept socket p50 %s p90 %s p99 %s max %s; fresh socket p50 %s p99 %s",
		len(kept), durationQuantile(kept, 0.5), durationQuantile(kept, 0.9), durationQuantile(kept, 0.99), slices.Max(kept),
		durationQuantile(fresh, 0.5), durationQuantile(fresh, 0.99))
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(micros(durationQuantile(kept, 0.5)), "p50-us")
	b.ReportMetric(micros(durationQuantile(kept, 0.99)), "p99-us")
	b.ReportMetric(micros(durationQuantile(fresh, 0.5)), "fresh-p50-us")
	b.ReportMetric(micros(durationQuantile(fresh, 0.99)), "fresh-p99-us")
}

// vipRequests records, for the requests a client keeps making through a
// VIP, when each task first answered, and the failures by phase of the
// benchmark and kind of error (with one example of each).
type vipRequests struct {
	mu      sync.Mutex
	phase   string
	first   map[string]time.Time
	sent    int
	streak  int // successes in a row
	fails   map[string]int
	example map[string]string
}

func newVIPRequests() *vipRequests {
	return &vipRequests{phase: "steady", first: map[string]time.Time{}, fails: map[string]int{}, example: map[string]string{}}
}

// setPhase names the part of the benchmark later failures belong to.
func (v *vipRequests) setPhase(p string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.phase = p
}

func (v *vipRequests) record(taskID string, at time.Time, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sent++
	v.streak++
	if err != nil {
		v.streak = 0
		kind := "other"
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			kind = "refused"
		case errors.Is(err, syscall.ECONNRESET):
			kind = "reset"
		case errors.As(err, &ne) && ne.Timeout():
			kind = "timeout"
		}
		key := v.phase + "/" + kind
		v.fails[key]++
		v.example[key] = err.Error()
		return
	}
	if _, ok := v.first[taskID]; !ok {
		v.first[taskID] = at
	}
}

// succeeding returns how many requests in a row succeeded last.
func (v *vipRequests) succeeding() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.streak
}

// firstAnswer returns when the task first answered, if it did.
func (v *vipRequests) firstAnswer(taskID string) (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t, ok := v.first[taskID]
	return t, ok
}

// failures returns the count of failed requests and a description of
// them by phase and kind.
func (v *vipRequests) failures() (int, string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(v.fails)) {
		n += v.fails[k]
		parts = append(parts, fmt.Sprintf("%s %d (e.g. %s)", k, v.fails[k], v.example[k]))
	}
	return n, fmt.Sprintf("%d of %d requests failed: %v", n, v.sent, parts)
}

// BenchmarkEndpointPropagation times how long a new task takes to answer
// through its service's VIP from another host. web runs on h3 (by
// constraint) with one task; a client container on h1 keeps requesting
// the VIP (a new connection each time, ~1 ms apart), noting the first
// answer of every task. Each of propagationTrials trials scales web from
// 1 to 2 (the new task lands on h3), then back to 1, waits for the
// removed task's container to stop and for requests to succeed again.
// ms (p50) and max-ms: from the moment the store is first seen to report
// the new task RUNNING (polled every 5 ms) to its first answer; negative
// when the answer came first. scale-ms and scale-max-ms: from the scale
// command. failed-requests: the client's requests that failed in the
// whole run (the log breaks them down by phase and error).
func BenchmarkEndpointPropagation(b *testing.B) {
	o := newOverlayBench(b)
	web := o.createOn("web", "web:v1", 1, []string{benchNetwork}, 0, "node.hostname==h3")
	client := o.createOn("client", "web:v1", 1, []string{benchNetwork}, 0, "node.hostname==h1")
	base := o.taskOnHost(web.GetId(), 1, "h3")
	clientNS := taskNetNS(o.Host(1), o.taskOnHost(client.GetId(), 1, "h1").GetId())
	vip := net.JoinHostPort(o.vip(web.GetId()), "80")
	o.waitEchoFrom(clientNS, vip, base.GetId())

	seen := newVIPRequests()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- inNetNS(clientNS, func() error {
			for {
				select {
				case <-stop:
					return nil
				default:
				}
				a, err := echoRequest(vip, 500*time.Millisecond)
				seen.record(a.TaskID, time.Now(), err)
				time.Sleep(time.Millisecond)
			}
		})
	}()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			b.Errorf("requests through the VIP: %v", err)
		}
	}()

	var fromRunning, fromScale, toRunning []time.Duration
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for trial := 0; trial < propagationTrials; trial++ {
			before := o.waitRunning(web.GetId(), 1, 60*time.Second)
			scaled := time.Now()
			seen.setPhase("scale-up")
			o.scale(web.GetId(), 2)
			var newTask *api.Task
			var running time.Time
			pollEvery(b, 60*time.Second, 5*time.Millisecond, "the new task RUNNING", func() error {
				at := time.Now()
				tasks, err := o.running(web.GetId())
				if err != nil {
					return err
				}
				for id, t := range tasks {
					if before[id] == nil {
						newTask, running = t, at
						return nil
					}
				}
				return fmt.Errorf("%d running", len(tasks))
			})
			var answered time.Time
			pollEvery(b, 30*time.Second, time.Millisecond, "the new task answers through the VIP", func() error {
				var ok bool
				if answered, ok = seen.firstAnswer(newTask.GetId()); !ok {
					return fmt.Errorf("task %s not answered yet", newTask.GetId())
				}
				return nil
			})
			if h := o.perHost(map[string]*api.Task{newTask.GetId(): newTask}); h["h3"] != 1 {
				b.Fatalf("the new task runs on %v, want h3", h)
			}
			fromRunning = append(fromRunning, answered.Sub(running))
			fromScale = append(fromScale, answered.Sub(scaled))
			toRunning = append(toRunning, running.Sub(scaled))
			seen.setPhase("scale-down")
			o.scale(web.GetId(), 1)
			left := o.waitRunning(web.GetId(), 1, 60*time.Second)
			for id := range before {
				if left[id] == nil {
					o.waitTaskEnded(web.GetId(), id)
				}
			}
			if left[newTask.GetId()] == nil {
				o.waitTaskEnded(web.GetId(), newTask.GetId())
			}
			// The removed task's container stopped; failures from now
			// on mean its endpoint is still in host 1's VIP rules.
			seen.setPhase("after-stop")
			pollEvery(b, 30*time.Second, time.Millisecond, "requests through the VIP succeed again", func() error {
				if n := seen.succeeding(); n < 20 {
					return fmt.Errorf("%d requests in a row succeeded", n)
				}
				return nil
			})
			seen.setPhase("steady")
		}
	}
	b.StopTimer()
	o.waitRunning(web.GetId(), 1, 60*time.Second)
	failed, failures := seen.failures()
	b.Logf("%s", failures)
	b.Logf("scale → RUNNING: %v", roundAll(toRunning))
	b.Logf("RUNNING → answer: %v", roundAll(fromRunning))
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(millis(durationQuantile(fromRunning, 0.5)), "ms")
	b.ReportMetric(millis(slices.Max(fromRunning)), "max-ms")
	b.ReportMetric(millis(durationQuantile(fromScale, 0.5)), "scale-ms")
	b.ReportMetric(millis(slices.Max(fromScale)), "scale-max-ms")
	b.ReportMetric(float64(failed), "failed-requests")
}

// roundAll rounds durations to the millisecond, for logs.
func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// pollEvery calls f every interval until it returns nil, and fails t
// when timeout passes first.
func pollEvery(t testing.TB, timeout, interval time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(interval)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
}
