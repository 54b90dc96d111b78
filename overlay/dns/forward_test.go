package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// fakeUpstream is a resolver the test runs inside a namespace it made. It
// answers example.org with 192.0.2.1; big.example.org over UDP with an
// empty truncated answer and over TCP with 40 addresses; fail.example.org
// with SERVFAIL; everything else with NXDOMAIN.
type fakeUpstream struct {
	udpQueries atomic.Int64
	tcpQueries atomic.Int64
}

const bigAnswerSize = 40

func (f *fakeUpstream) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	if tcp {
		f.tcpQueries.Add(1)
	} else {
		f.udpQueries.Add(1)
	}
	q := req.Question[0]
	resp := new(mdns.Msg).SetReply(req)
	a := func(ip string) mdns.RR {
		return &mdns.A{Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.ParseIP(ip)}
	}
	switch {
	case q.Name == "example.org." && q.Qtype == mdns.TypeA:
		resp.Answer = append(resp.Answer, a("192.0.2.1"))
	case q.Name == "example.org.":
	case q.Name == "big.example.org." && !tcp:
		resp.Truncated = true
	case q.Name == "big.example.org.":
		for i := range bigAnswerSize {
			resp.Answer = append(resp.Answer, a(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}).String()))
		}
	case q.Name == "fail.example.org.":
		resp.Rcode = mdns.RcodeServerFailure
	default:
		resp.Rcode = mdns.RcodeNameError
	}
	w.WriteMsg(resp)
}

// startFakeUpstream serves a fakeUpstream on addr (UDP and TCP) inside the
// namespace at path until the test ends.
func startFakeUpstream(t *testing.T, path, addr string) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{}
	var pc net.PacketConn
	var l net.Listener
	inNS(t, path, func() (err error) {
		if pc, err = net.ListenPacket("udp4", addr); err != nil {
			return err
		}
		l, err = net.Listen("tcp4", addr)
		return err
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: f}, {Listener: l, Handler: f}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return f
}

// forwardSetup is a host namespace with a fake upstream on
// 127.0.0.1:5353, a container namespace, and a Server that forwards from
// the host namespace to upstreams.
func forwardSetup(t *testing.T, timeout time.Duration, upstreams ...string) (container string, f *fakeUpstream) {
	t.Helper()
	host := newNetNS(t, true)
	f = startFakeUpstream(t, host, "127.0.0.1:5353")
	container = newNetNS(t, true)
	s := newServer(t, Config{Upstreams: upstreams, UpstreamNetNS: host, ForwardTimeout: timeout})
	if err := s.Attach("c1", container, viewOn("app")); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	return container, f
}

func TestForwardToUpstream(t *testing.T) {
	ns, f := forwardSetup(t, time.Second, "127.0.0.1:5353")
	for _, network := range []string{"udp", "tcp"} {
		resp := queryIn(t, ns, network, "example.org", mdns.TypeA)
		if resp.Rcode != mdns.RcodeSuccess || !slices.Equal(addrsOf(resp), []string{"192.0.2.1"}) {
			t.Errorf("%s: example.org = %s %v, want 192.0.2.1", network, mdns.RcodeToString[resp.Rcode], addrsOf(resp))
		}
		if resp.Answer[0].Header().Ttl != 60 {
			t.Errorf("%s: forwarded TTL %d, want the upstream's 60", network, resp.Answer[0].Header().Ttl)
		}
		resp = queryIn(t, ns, network, "nosuch.example.org", mdns.TypeA)
		if resp.Rcode != mdns.RcodeNameError {
			t.Errorf("%s: the upstream's NXDOMAIN came back as %s", network, mdns.RcodeToString[resp.Rcode])
		}
	}
	got, err := resolverIn(ns).LookupHost(context.Background(), "example.org.")
	if err != nil || !slices.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("Go resolver: example.org = %v, %v; want 192.0.2.1", got, err)
	}

	// Cluster names never reach the upstream.
	before := f.udpQueries.Load() + f.tcpQueries.Load()
	for _, name := range []string{"web", "tasks.web", "nosuch", "tasks.nosuch", "nosuch.app"} {
		queryIn(t, ns, "udp", name, mdns.TypeA)
	}
	if after := f.udpQueries.Load() + f.tcpQueries.Load(); after != before {
		t.Errorf("cluster names sent %d queries upstream, want 0", after-before)
	}
}

func TestForwardRetriesTruncatedOverTCP(t *testing.T) {
	ns, f := forwardSetup(t, time.Second, "127.0.0.1:5353")

	// A UDP client with EDNS0 room gets all of it: we retried over TCP.
	m := new(mdns.Msg).SetQuestion("big.example.org.", mdns.TypeA)
	m.SetEdns0(4096, false)
	resp, err := exchangeIn(ns, "udp", m)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if len(addrsOf(resp)) != bigAnswerSize || resp.Truncated {
		t.Errorf("UDP with EDNS0 4096: %d answers, TC %v; want %d, no TC", len(addrsOf(resp)), resp.Truncated, bigAnswerSize)
	}
	if f.tcpQueries.Load() == 0 {
		t.Errorf("the upstream saw no TCP query after a truncated UDP answer")
	}

	// A UDP client without EDNS0 gets a truncated answer and retries
	// over TCP, where it gets everything.
	resp = queryIn(t, ns, "udp", "big.example.org", mdns.TypeA)
	if !resp.Truncated || len(addrsOf(resp)) >= bigAnswerSize {
		t.Errorf("UDP without EDNS0: %d answers, TC %v; want fewer than %d and TC", len(addrsOf(resp)), resp.Truncated, bigAnswerSize)
	}
	resp = queryIn(t, ns, "tcp", "big.example.org", mdns.TypeA)
	if len(addrsOf(resp)) != bigAnswerSize {
		t.Errorf("TCP: %d answers, want %d", len(addrsOf(resp)), bigAnswerSize)
	}
	got, err := resolverIn(ns).LookupNetIP(context.Background(), "ip4", "big.example.org.")
	if err != nil || len(got) != bigAnswerSize {
		t.Errorf("Go resolver: big.example.org = %d addresses, %v; want %d", len(got), err, bigAnswerSize)
	}
}

func TestForwardFailures(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name      string
		upstreams []string
		qname     string
		rcode     int
		want      []string
	}{
		// Nothing listens on 5399: the port is closed.
		{"closed port", []string{"127.0.0.1:5399"}, "example.org", mdns.RcodeServerFailure, nil},
		// 5398 is a UDP socket that never answers: the budget runs out.
		{"silent upstream", []string{"127.0.0.1:5398"}, "example.org", mdns.RcodeServerFailure, nil},
		{"failover past closed and silent", []string{"127.0.0.1:5399", "127.0.0.1:5398", "127.0.0.1:5353"}, "example.org", mdns.RcodeSuccess, []string{"192.0.2.1"}},
		{"upstream SERVFAIL", []string{"127.0.0.1:5353"}, "fail.example.org", mdns.RcodeServerFailure, nil},
		{"no upstream", nil, "example.org", mdns.RcodeServerFailure, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := newNetNS(t, true)
			startFakeUpstream(t, host, "127.0.0.1:5353")
			inNS(t, host, func() error {
				silent, err := net.ListenPacket("udp4", "127.0.0.1:5398")
				if err == nil {
					t.Cleanup(func() { silent.Close() })
				}
				return err
			})
			container := newNetNS(t, true)
			s := newServer(t, Config{Upstreams: tt.upstreams, UpstreamNetNS: host, ForwardTimeout: timeout})
			if err := s.Attach("c1", container, viewOn("app")); err != nil {
				t.Fatalf("Attach: %v", err)
			}
			// The client waits far longer than the forward budget: an
			// answer (not a client timeout) shows the bound holds.
			for _, network := range []string{"udp", "tcp"} {
				resp := queryIn(t, container, network, tt.qname, mdns.TypeA)
				if resp.Rcode != tt.rcode || !slices.Equal(addrsOf(resp), tt.want) {
					t.Errorf("%s: %s %v, want %s %v", network, mdns.RcodeToString[resp.Rcode], addrsOf(resp),
						mdns.RcodeToString[tt.rcode], tt.want)
				}
			}
		})
	}
}

func TestDetachAbandonsForwardsInFlight(t *testing.T) {
	host := newNetNS(t, true)
	inNS(t, host, func() error {
		silent, err := net.ListenPacket("udp4", "127.0.0.1:5398")
		if err == nil {
			t.Cleanup(func() { silent.Close() })
		}
		return err
	})
	container := newNetNS(t, true)
	// A budget longer than any test: only Detach can end the forward.
	s := newServer(t, Config{Upstreams: []string{"127.0.0.1:5398"}, UpstreamNetNS: host, ForwardTimeout: time.Hour})
	if err := s.Attach("c1", container, viewOn("app")); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	answered := make(chan *mdns.Msg, 1)
	go func() {
		resp, _ := exchangeIn(container, "tcp", new(mdns.Msg).SetQuestion("example.org.", mdns.TypeA))
		answered <- resp
	}()
	// Wait until the query is in flight: the forward slot is taken.
	deadline := time.Now().Add(10 * time.Second)
	for len(s.fwd.inflight) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the query never reached the forwarder")
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- s.Detach("c1") }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Detach: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Detach hung on a forward in flight")
	}
	if resp := <-answered; resp != nil && resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("the abandoned query got %s, want SERVFAIL or nothing", mdns.RcodeToString[resp.Rcode])
	}
	if len(s.fwd.inflight) != 0 {
		t.Errorf("%d forward slots still taken after Detach", len(s.fwd.inflight))
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Upstreams: []string{"dns.example:53"}},
		{Upstreams: []string{"192.0.2.53"}},
		{ForwardTimeout: -time.Second},
		{UpstreamNetNS: "/nonexistent/netns"},
	} {
		s, err := New(cfg)
		if err == nil {
			s.Close()
			t.Errorf("New(%+v) accepted it", cfg)
			continue
		}
		if !errors.Is(err, ErrConfig) && !errors.Is(err, ErrNamespace) {
			t.Errorf("New(%+v): %v, want ErrConfig or ErrNamespace", cfg, err)
		}
	}
}
