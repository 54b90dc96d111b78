package vip

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"pgregory.net/rapid"

	"github.com/shoalhq/shoal/overlay/internal/nstest"
)

func svc(vip string, backends ...string) Service {
	return Service{VIP: netip.MustParseAddr(vip), Backends: nstest.Addrs(backends...)}
}

// kernelChains lists the chains of the VIP table in ns, sorted.
func kernelChains(tb nstest.Failer, ns string) []string {
	tb.Helper()
	s, err := open(ns)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	chains, err := tableChains(s.Conn)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, c := range chains {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return names
}

// wantChains is the exact chain set Apply must leave for services.
func wantChains(services []Service) []string {
	names := []string{natChainName, rejectChainName}
	for _, s := range services {
		if len(s.Backends) == 0 {
			continue
		}
		names = append(names, serviceChainName(s.VIP))
		for _, b := range s.Backends {
			names = append(names, endpointChainName(s.VIP, b))
		}
	}
	slices.Sort(names)
	return names
}

// applyAndCheck applies state and asserts that Read returns it normalised
// and that the table holds exactly the chains it needs (no stale ones).
func applyAndCheck(t nstest.Failer, ns string, state []Service) {
	t.Helper()
	if err := Apply(ns, state); err != nil {
		t.Fatalf("Apply(%v): %v", state, err)
	}
	got, err := Read(ns)
	if err != nil {
		t.Fatalf("Read after Apply(%v): %v", state, err)
	}
	if want := normalize(state); !reflect.DeepEqual(got, want) {
		t.Fatalf("Read after Apply:\n got %v\nwant %v", got, want)
	}
	if got, want := kernelChains(t, ns), wantChains(normalize(state)); !slices.Equal(got, want) {
		t.Fatalf("chains after Apply:\n got %v\nwant %v", got, want)
	}
}

func TestApplyReadRoundTrip(t *testing.T) {
	ns := newNS(t, "rt")
	steps := []struct {
		name  string
		state []Service
	}{
		{"one service, backends out of order", []Service{svc("10.99.0.1", "10.0.0.3", "10.0.0.1", "10.0.0.2")}},
		{"same state again", []Service{svc("10.99.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1")}},
		{"grow to five backends", []Service{svc("10.99.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5")}},
		{"shrink to one backend", []Service{svc("10.99.0.1", "10.0.0.4")}},
		{"add a service with no backends and another with two", []Service{
			svc("10.99.0.3", "10.0.0.7", "10.0.0.6"), svc("10.99.0.1", "10.0.0.4"), svc("10.99.0.2")}},
		{"same backend in two services", []Service{
			svc("10.99.0.3", "10.0.0.7", "10.0.0.4"), svc("10.99.0.1", "10.0.0.4"), svc("10.99.0.2")}},
		{"remove the first service", []Service{svc("10.99.0.3", "10.0.0.7", "10.0.0.4"), svc("10.99.0.2")}},
		{"empty service gains backends", []Service{svc("10.99.0.3", "10.0.0.7", "10.0.0.4"), svc("10.99.0.2", "10.0.0.9")}},
		{"service loses all backends", []Service{svc("10.99.0.3"), svc("10.99.0.2", "10.0.0.9")}},
		{"no services", nil},
		{"services again after none", []Service{svc("10.99.0.1", "10.0.0.1")}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) { applyAndCheck(t, ns, step.state) })
	}
}

func TestApplyRefusesInvalidInput(t *testing.T) {
	ns := newNS(t, "iv")
	before := []Service{svc("10.99.0.1", "10.0.0.1")}
	applyAndCheck(t, ns, before)

	cases := []struct {
		name     string
		services []Service
		want     error
	}{
		{"zero VIP", []Service{{Backends: nstest.Addrs("10.0.0.1")}}, ErrInvalidVIP},
		{"IPv6 VIP", []Service{svc("fd00::1", "10.0.0.1")}, ErrInvalidVIP},
		{"IPv4-mapped VIP", []Service{svc("::ffff:10.99.0.1", "10.0.0.1")}, ErrInvalidVIP},
		{"loopback VIP", []Service{svc("127.0.0.5")}, ErrInvalidVIP},
		{"multicast VIP", []Service{svc("224.0.0.1")}, ErrInvalidVIP},
		{"broadcast VIP", []Service{svc("255.255.255.255")}, ErrInvalidVIP},
		{"unspecified VIP", []Service{svc("0.0.0.0")}, ErrInvalidVIP},
		{"IPv6 backend", []Service{svc("10.99.0.1", "fd00::2")}, ErrInvalidBackend},
		{"zero backend", []Service{{VIP: testVIP, Backends: []netip.Addr{{}}}}, ErrInvalidBackend},
		{"duplicate VIPs", []Service{svc("10.99.0.1", "10.0.0.1"), svc("10.99.0.1", "10.0.0.2")}, ErrDuplicateVIP},
		{"duplicate backends", []Service{svc("10.99.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1")}, ErrDuplicateBackend},
		{"VIP is its own backend", []Service{svc("10.99.0.1", "10.99.0.1")}, ErrVIPIsBackend},
		{"VIP is another service's backend", []Service{svc("10.99.0.1", "10.0.0.1"), svc("10.0.0.1")}, ErrVIPIsBackend},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Apply(ns, tc.services)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Apply = %v, want an error wrapping %v", err, tc.want)
			}
			got, err := Read(ns)
			if err != nil || !reflect.DeepEqual(got, normalize(before)) {
				t.Fatalf("refused Apply changed the state: Read = %v, %v; want %v", got, err, before)
			}
		})
	}
}

func TestErrorsNameTheField(t *testing.T) {
	err := validate([]Service{svc("10.99.0.1", "10.0.0.1"), svc("10.99.0.2", "10.0.0.2", "10.0.0.2")})
	if want := "vip: services[1].Backends[1] 10.0.0.2 is also services[1].Backends[0]: " + ErrDuplicateBackend.Error(); err == nil || err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
}

func TestReadRemoveWithoutTable(t *testing.T) {
	ns := newNS(t, "rm")
	if got, err := Read(ns); err != nil || got != nil {
		t.Fatalf("Read of a fresh namespace = %v, %v; want nil, nil", got, err)
	}
	for i := range 2 {
		if err := Remove(ns); err != nil {
			t.Fatalf("Remove #%d without a table: %v", i+1, err)
		}
	}
	applyAndCheck(t, ns, []Service{svc("10.99.0.1", "10.0.0.1")})
	if err := Remove(ns); err != nil {
		t.Fatal(err)
	}
	if chains := kernelChains(t, ns); len(chains) != 0 {
		t.Fatalf("chains left after Remove: %v", chains)
	}
	if got, err := Read(ns); err != nil || got != nil {
		t.Fatalf("Read after Remove = %v, %v; want nil, nil", got, err)
	}
}

func TestNamespaceErrors(t *testing.T) {
	notNS := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notNS, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", "/run/netns/" + runPrefix + "missing", notNS} {
		if err := Apply(path, nil); !errors.Is(err, ErrNamespace) {
			t.Errorf("Apply(%q) = %v, want ErrNamespace", path, err)
		}
		if _, err := Read(path); !errors.Is(err, ErrNamespace) {
			t.Errorf("Read(%q) = %v, want ErrNamespace", path, err)
		}
		if err := Remove(path); !errors.Is(err, ErrNamespace) {
			t.Errorf("Remove(%q) = %v, want ErrNamespace", path, err)
		}
	}
}

// TestApplyReconcilesLeftovers plants what a crashed or older agent might
// leave (a base chain with the wrong priority, a stale service chain, a
// rule Read cannot interpret) and checks that Read reports it and Apply
// replaces it.
func TestApplyReconcilesLeftovers(t *testing.T) {
	ns := newNS(t, "lo")
	s, err := open(ns)
	if err != nil {
		t.Fatal(err)
	}
	wrongPrio := nftables.ChainPriority(-50)
	accept := nftables.ChainPolicyAccept
	s.Conn.AddTable(table)
	nat := s.Conn.AddChain(&nftables.Chain{Name: natChainName, Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: &wrongPrio, Policy: &accept})
	stale := s.Conn.AddChain(regularChain(serviceChainName(netip.MustParseAddr("10.99.9.9"))))
	s.Conn.AddRule(&nftables.Rule{Table: table, Chain: stale, Exprs: []expr.Any{&expr.Counter{}}})
	s.Conn.AddRule(&nftables.Rule{Table: table, Chain: nat, Exprs: append(daddrExprs(netip.MustParseAddr("10.99.9.9")),
		&expr.Verdict{Kind: expr.VerdictJump, Chain: stale.Name})})
	reject := s.Conn.AddChain(rejectBase.Chain(table))
	s.Conn.AddRule(&nftables.Rule{Table: table, Chain: reject, Exprs: []expr.Any{&expr.Counter{}}})
	err = s.Conn.Flush()
	s.Close()
	if err != nil {
		t.Fatalf("plant leftovers: %v", err)
	}

	if _, err := Read(ns); !errors.Is(err, ErrUnrecognized) {
		t.Fatalf("Read of planted leftovers = %v, want ErrUnrecognized", err)
	}
	applyAndCheck(t, ns, []Service{svc("10.99.0.1", "10.0.0.1", "10.0.0.2")})
}

// TestApplyReadProperty: for random sequences of valid states, Read after
// each Apply returns that state normalised, and the table holds exactly
// the chains it needs: the last state wins whatever came before.
func TestApplyReadProperty(t *testing.T) {
	ns := newNS(t, "pr")
	// VIPs and backends come from disjoint ranges, so every drawn state is
	// valid; small ranges make states overlap from one step to the next.
	vipGen := rapid.Custom(func(t *rapid.T) netip.Addr {
		return netip.AddrFrom4([4]byte{10, 99, 0, rapid.ByteRange(1, 12).Draw(t, "vip")})
	})
	backendGen := rapid.Custom(func(t *rapid.T) netip.Addr {
		return netip.AddrFrom4([4]byte{10, 0, 0, rapid.ByteRange(1, 16).Draw(t, "backend")})
	})
	stateGen := rapid.Custom(func(t *rapid.T) []Service {
		vips := rapid.SliceOfNDistinct(vipGen, 0, 5, netip.Addr.String).Draw(t, "vips")
		state := make([]Service, len(vips))
		for i, v := range vips {
			state[i] = Service{VIP: v, Backends: rapid.SliceOfNDistinct(backendGen, 0, 6, netip.Addr.String).Draw(t, "backends")}
		}
		return state
	})
	rapid.Check(t, func(t *rapid.T) {
		for _, state := range rapid.SliceOfN(stateGen, 1, 4).Draw(t, "states") {
			applyAndCheck(t, ns, state)
		}
	})
}

// TestConcurrentApply: goroutines applying different states to the same
// namespaces all succeed, and each namespace ends in one of those states.
func TestConcurrentApply(t *testing.T) {
	nss := []string{newNS(t, "ca"), newNS(t, "cb")}
	states := [][]Service{
		{svc("10.99.0.1", "10.0.0.1", "10.0.0.2"), svc("10.99.0.2")},
		{svc("10.99.0.1", "10.0.0.3"), svc("10.99.0.3", "10.0.0.1", "10.0.0.4")},
		{svc("10.99.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7")},
	}
	errs := make(chan error, 2*len(states)*5)
	var wg sync.WaitGroup
	for _, ns := range nss {
		for _, state := range states {
			wg.Go(func() {
				for range 5 {
					errs <- Apply(ns, state)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, ns := range nss {
		got, err := Read(ns)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(states, func(s []Service) bool { return reflect.DeepEqual(got, normalize(s)) }) {
			t.Errorf("%s ends in %v, which no goroutine applied", ns, got)
		}
		if want := wantChains(got); !slices.Equal(kernelChains(t, ns), want) {
			t.Errorf("%s holds chains %v, want %v", ns, kernelChains(t, ns), want)
		}
	}
}
