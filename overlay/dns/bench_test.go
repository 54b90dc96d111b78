package dns

import (
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// BenchmarkDNSLookup measures A queries for a service name from inside a
// container's namespace, over one UDP socket to 127.0.0.11:53, and reports
// the latency percentiles p50-us and p99-us (target p99 < 1000).
func BenchmarkDNSLookup(b *testing.B) {
	ns := newNetNS(b, true)
	s := newServer(b, Config{})
	if err := s.Attach("bench", ns, viewOn("app")); err != nil {
		b.Fatalf("Attach: %v", err)
	}
	conn, err := dialIn(ns, "udp", listenAddr)
	if err != nil {
		b.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	co := &mdns.Conn{Conn: conn}
	client := mdns.Client{Net: "udp", Timeout: 5 * time.Second}
	query := new(mdns.Msg).SetQuestion("web.", mdns.TypeA)

	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		resp, _, err := client.ExchangeWithConn(query, co)
		latencies = append(latencies, time.Since(start))
		if err != nil || len(resp.Answer) != 1 {
			b.Fatalf("web: %v %v", resp, err)
		}
	}
	b.StopTimer()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(p*float64(len(latencies)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-us")
	b.ReportMetric(pct(0.99), "p99-us")
}
