package vip

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/shoalhq/shoal/overlay/internal/nstest"
)

// BenchmarkApply measures one Apply of 10 services with 10 backends each,
// alternating between two states that differ in half of every backend
// list, so that every call changes rules.
func BenchmarkApply(b *testing.B) {
	ns := newNS(b, "ba")
	states := applyBenchStates()
	for i := 0; b.Loop(); i++ {
		if err := Apply(ns, states[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVIPConnectLocal compares TCP connect latency through the VIP
// with a connect straight to a backend address, interleaved in the same
// run, between two namespaces of this host. It reports the median of
// each (µs) and ratio = VIP / direct.
func BenchmarkVIPConnectLocal(b *testing.B) {
	tp := newTopology(b, 3)
	if err := Apply(tp.client, []Service{{VIP: testVIP, Backends: tp.backends}}); err != nil {
		b.Fatal(err)
	}
	connect := func(addr netip.Addr) (time.Duration, error) {
		start := time.Now()
		c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(addr, tcpPort).String(), 2*time.Second)
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		// Close with a reset: no TIME_WAIT, so b.N connects never run out
		// of ephemeral ports.
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
		return d, nil
	}
	vip, dir := nstest.Interleave(b, tp.client,
		func(int) (time.Duration, error) { return connect(testVIP) },
		func(i int) (time.Duration, error) { return connect(tp.backends[i%len(tp.backends)]) })
	b.ReportMetric(float64(vip)/float64(dir), "ratio")
	b.ReportMetric(float64(vip)/1e3, "vip-p50-us")
	b.ReportMetric(float64(dir)/1e3, "direct-p50-us")
}

// applyBenchStates returns two states of 10 services with 10 backends
// each that differ in the second half of every backend list.
func applyBenchStates() [2][]Service {
	const services, backends = 10, 10
	var states [2][]Service
	for k := range states {
		for i := range services {
			s := Service{VIP: netip.AddrFrom4([4]byte{10, 99, 0, byte(1 + i)})}
			for j := range backends {
				host := byte(1 + j)
				if k == 1 && j >= backends/2 {
					host += 100
				}
				s.Backends = append(s.Backends, netip.AddrFrom4([4]byte{10, 0, byte(i), host}))
			}
			states[k] = append(states[k], s)
		}
	}
	return states
}

// BenchmarkApplyRoundRobin applies the same two states as BenchmarkApply
// to 8 namespaces in turn, as an agent updating every container of a
// service does: consecutive commits go to different namespaces.
func BenchmarkApplyRoundRobin(b *testing.B) {
	var nss []string
	for range 8 {
		nss = append(nss, newNS(b, "br"))
	}
	states := applyBenchStates()
	for i := 0; b.Loop(); i++ {
		if err := Apply(nss[i%len(nss)], states[(i/len(nss))%2]); err != nil {
			b.Fatal(err)
		}
	}
}
