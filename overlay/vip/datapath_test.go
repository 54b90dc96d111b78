package vip

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestVIPBalancesTCPAndUDP: 300 TCP connections to a VIP configured
// nowhere reach all three backends (each at least 15%), and UDP request /
// response datagrams come back through the VIP from every backend.
func TestVIPBalancesTCPAndUDP(t *testing.T) {
	tp := newTopology(t, 3)
	if err := Apply(tp.client, []Service{{VIP: testVIP, Backends: tp.backends}}); err != nil {
		t.Fatal(err)
	}
	const conns, datagrams = 300, 60
	tcpHits := map[netip.Addr]int{}
	udpHits := map[netip.Addr]int{}
	err := inNS(tp.client, func() error {
		for range conns {
			b, err := askTCP(testVIP, 2*time.Second)
			if err != nil {
				return err
			}
			tcpHits[b]++
		}
		for range datagrams {
			// A connected UDP socket accepts only replies from the VIP:
			// an answer proves conntrack reversed the DNAT.
			b, err := askUDP(testVIP, 2*time.Second)
			if err != nil {
				return err
			}
			udpHits[b]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("through VIP %s: %v", testVIP, err)
	}
	t.Logf("TCP %v, UDP %v", tcpHits, udpHits)
	if len(tcpHits) != len(tp.backends) || len(udpHits) != len(tp.backends) {
		t.Fatalf("answers from %v (TCP), %v (UDP); want exactly the backends %v", tcpHits, udpHits, tp.backends)
	}
	for _, b := range tp.backends {
		if tcpHits[b] < conns*15/100 {
			t.Errorf("backend %s got %d of %d TCP connections, want at least 15%%", b, tcpHits[b], conns)
		}
		if udpHits[b] == 0 {
			t.Errorf("backend %s got none of %d UDP datagrams", b, datagrams)
		}
	}
}

// TestVIPClientIsItsOwnBackend: a task reaching its own service through
// the VIP lands on itself with no extra setup (DNAT to a local address).
func TestVIPClientIsItsOwnBackend(t *testing.T) {
	tp := newTopology(t, 1)
	serve(t, tp.client, clientAddr)
	if err := Apply(tp.client, []Service{{VIP: testVIP, Backends: []netip.Addr{clientAddr}}}); err != nil {
		t.Fatal(err)
	}
	err := inNS(tp.client, func() error {
		for _, ask := range []func(netip.Addr, time.Duration) (netip.Addr, error){askTCP, askUDP} {
			b, err := ask(testVIP, 2*time.Second)
			if err != nil {
				return err
			}
			if b != clientAddr {
				t.Errorf("answer from %s, want the client itself %s", b, clientAddr)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVIPWithoutBackendsRefuses: a service with no backends refuses at
// once instead of letting the client wait for a timeout. TCP: connect
// fails with ECONNREFUSED (reset). UDP: the send fails with EPERM (the
// datagram is dropped locally) and the next receive with ECONNREFUSED
// (ICMP port unreachable). A backend added later is reachable.
func TestVIPWithoutBackendsRefuses(t *testing.T) {
	tp := newTopology(t, 1)
	if err := Apply(tp.client, []Service{{VIP: testVIP}}); err != nil {
		t.Fatal(err)
	}
	const bound = time.Second // a bound, not a timing assertion: a timeout fails the test
	err := inNS(tp.client, func() error {
		b, err := askTCP(testVIP, bound)
		switch {
		case err == nil:
			t.Errorf("TCP through a VIP with no backends reached %s", b)
		case isTimeout(err) || !errors.Is(err, syscall.ECONNREFUSED):
			t.Errorf("TCP through a VIP with no backends: %v, want connection refused", err)
		}

		c, err := net.Dial("udp4", netip.AddrPortFrom(testVIP, udpPort).String())
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("who?")); !errors.Is(err, syscall.EPERM) {
			t.Errorf("UDP send to a VIP with no backends: %v, want operation not permitted", err)
		}
		_ = c.SetReadDeadline(time.Now().Add(bound))
		if _, err := c.Read(make([]byte, 64)); isTimeout(err) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("UDP receive after a send to a VIP with no backends: %v, want connection refused", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := Apply(tp.client, []Service{{VIP: testVIP, Backends: tp.backends}}); err != nil {
		t.Fatal(err)
	}
	err = inNS(tp.client, func() error {
		_, err := askTCP(testVIP, 2*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("after adding a backend: %v", err)
	}
}

// connResult is one connection of the load generator.
type connResult struct {
	start   time.Time
	backend netip.Addr
	err     error
}

// TestApplyUnderLoad: while a client connects every few milliseconds, the
// service shrinks from 3 backends to 1 in one Apply. No connection fails,
// and no connection started after Apply returned reaches a removed backend.
func TestApplyUnderLoad(t *testing.T) {
	tp := newTopology(t, 3)
	if err := Apply(tp.client, []Service{{VIP: testVIP, Backends: tp.backends}}); err != nil {
		t.Fatal(err)
	}
	kept := tp.backends[1]

	var (
		mu      sync.Mutex
		results []connResult
		stop    = make(chan struct{})
		done    = make(chan error, 1)
	)
	go func() {
		done <- inNS(tp.client, func() error {
			for {
				select {
				case <-stop:
					return nil
				case <-time.After(3 * time.Millisecond):
				}
				start := time.Now()
				b, err := askTCP(testVIP, 2*time.Second)
				mu.Lock()
				results = append(results, connResult{start, b, err})
				mu.Unlock()
			}
		})
	}()
	// countSince counts finished connections started after t0.
	countSince := func(t0 time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range results {
			if r.start.After(t0) {
				n++
			}
		}
		return n
	}
	waitFor := func(t0 time.Time, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for countSince(t0) < n {
			if time.Now().After(deadline) {
				close(stop)
				t.Fatalf("only %d connections after %v, want %d", countSince(t0), t0, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	waitFor(time.Time{}, 60)
	if err := Apply(tp.client, []Service{{VIP: testVIP, Backends: []netip.Addr{kept}}}); err != nil {
		close(stop)
		t.Fatal(err)
	}
	applied := time.Now()
	waitFor(applied, 60)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	before := map[netip.Addr]int{}
	after := map[netip.Addr]int{}
	failed := 0
	for _, r := range results {
		switch {
		case r.err != nil:
			failed++
			t.Errorf("connection started at %v failed: %v", r.start, r.err)
		case r.start.After(applied):
			after[r.backend]++
		default:
			before[r.backend]++
		}
	}
	t.Logf("%d connections, %d failed; before or during Apply %v; after %v", len(results), failed, before, after)
	if len(before) < 2 {
		t.Errorf("before the shrink connections reached only %v; the test cannot tell backends apart", before)
	}
	for b, n := range after {
		if b != kept {
			t.Errorf("%d connections started after Apply returned reached removed backend %s", n, b)
		}
	}
}
