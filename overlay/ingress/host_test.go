package ingress

import (
	"errors"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"pgregory.net/rapid"

	"github.com/shoalhq/shoal/overlay/internal/nft"
	"github.com/shoalhq/shoal/overlay/internal/nstest"
	"github.com/shoalhq/shoal/overlay/nsrun"
)

func pub(proto string, port, target uint16, backends ...string) Published {
	return Published{Protocol: proto, Port: port, TargetPort: target, Backends: nstest.Addrs(backends...)}
}

// applyHostAndCheck applies state and asserts that ReadHost returns it
// normalised.
func applyHostAndCheck(t nstest.Failer, ns string, state []Published) {
	t.Helper()
	if err := ApplyHost(ns, state); err != nil {
		t.Fatalf("ApplyHost(%v): %v", state, err)
	}
	got, err := ReadHost(ns)
	if err != nil {
		t.Fatalf("ReadHost after ApplyHost(%v): %v", state, err)
	}
	if want := normalizeServices(state); !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadHost after ApplyHost:\n got %v\nwant %v", got, want)
	}
}

func TestApplyHostReadRoundTrip(t *testing.T) {
	ns := newNS(t, "rt")
	steps := []struct {
		name  string
		state []Published
	}{
		{"one tcp service", []Published{pub(TCP, 8080, 80, "10.255.0.9", "10.255.0.7")}},
		{"same again", []Published{pub(TCP, 8080, 80, "10.255.0.7", "10.255.0.9")}},
		{"udp beside tcp on the same port, empty service", []Published{
			pub(UDP, 8080, 53, "10.255.0.3"), pub(TCP, 8080, 80, "10.255.0.7", "10.255.0.9"), pub(TCP, 9000, 90)}},
		{"target port changes", []Published{pub(TCP, 8080, 81, "10.255.0.7", "10.255.0.9"), pub(TCP, 9000, 90)}},
		{"empty service gains backends, other loses them", []Published{pub(TCP, 8080, 81), pub(TCP, 9000, 90, "10.255.0.2")}},
		{"seventeen backends", []Published{pub(TCP, 9000, 90, "10.255.0.2", "10.255.0.3", "10.255.0.4", "10.255.0.5",
			"10.255.0.6", "10.255.0.7", "10.255.0.8", "10.255.0.9", "10.255.0.10", "10.255.0.11", "10.255.0.12",
			"10.255.0.13", "10.255.0.14", "10.255.0.15", "10.255.0.16", "10.255.0.17", "10.255.0.18")}},
		{"nothing", nil},
		{"again after nothing", []Published{pub(UDP, 53, 53, "10.255.0.2")}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) { applyHostAndCheck(t, ns, step.state) })
	}
}

// TestApplyHostReadProperty: for any sequence of valid states, ReadHost
// returns exactly the last state applied, normalised.
func TestApplyHostReadProperty(t *testing.T) {
	ns := newNS(t, "rp")
	rapid.Check(t, func(rt *rapid.T) {
		for range rapid.IntRange(1, 3).Draw(rt, "steps") {
			applyHostAndCheck(rt, ns, drawServices(rt))
		}
	})
}

// drawServices draws a valid state: up to 6 services on distinct
// protocol and port, each with up to 20 distinct backends (more than
// MinSlots sometimes).
func drawServices(rt *rapid.T) []Published {
	type key struct {
		proto string
		port  uint16
	}
	n := rapid.IntRange(0, 6).Draw(rt, "services")
	seen := map[key]bool{}
	var out []Published
	for range n {
		k := key{rapid.SampledFrom([]string{TCP, UDP}).Draw(rt, "proto"), rapid.Uint16Range(1, 65535).Draw(rt, "port")}
		if seen[k] {
			continue
		}
		seen[k] = true
		s := Published{Protocol: k.proto, Port: k.port, TargetPort: rapid.Uint16Range(1, 65535).Draw(rt, "target")}
		hosts := rapid.SliceOfNDistinct(rapid.IntRange(1, 254), 0, 20, rapid.ID[int]).Draw(rt, "backends")
		for _, h := range hosts {
			s.Backends = append(s.Backends, netip.AddrFrom4([4]byte{10, 255, byte(h % 3), byte(h)}))
		}
		out = append(out, s)
	}
	return out
}

func TestApplyHostRefusesInvalidInput(t *testing.T) {
	ns := newNS(t, "iv")
	before := []Published{pub(TCP, 8080, 80, "10.255.0.7")}
	applyHostAndCheck(t, ns, before)
	for _, c := range []struct {
		name  string
		state []Published
		want  error
	}{
		{"no protocol", []Published{{Port: 80, TargetPort: 80}}, ErrInvalidProtocol},
		{"sctp", []Published{{Protocol: "sctp", Port: 80, TargetPort: 80}}, ErrInvalidProtocol},
		{"upper case", []Published{{Protocol: "TCP", Port: 80, TargetPort: 80}}, ErrInvalidProtocol},
		{"port 0", []Published{pub(TCP, 0, 80)}, ErrInvalidPort},
		{"target port 0", []Published{pub(TCP, 80, 0)}, ErrInvalidPort},
		{"same port twice", []Published{pub(UDP, 53, 53), pub(UDP, 53, 5353)}, ErrDuplicatePort},
		{"unset backend", []Published{{Protocol: TCP, Port: 80, TargetPort: 80, Backends: []netip.Addr{{}}}}, ErrInvalidBackend},
		{"IPv6 backend", []Published{pub(TCP, 80, 80, "fd00::1")}, ErrInvalidBackend},
		{"IPv4-mapped backend", []Published{pub(TCP, 80, 80, "::ffff:10.0.0.1")}, ErrInvalidBackend},
		{"loopback backend", []Published{pub(TCP, 80, 80, "127.0.0.1")}, ErrInvalidBackend},
		{"same backend twice", []Published{pub(TCP, 80, 80, "10.0.0.1", "10.0.0.1")}, ErrDuplicateBackend},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := ApplyHost(ns, c.state); !errors.Is(err, c.want) {
				t.Fatalf("ApplyHost: %v, want %v", err, c.want)
			}
			if got, err := ReadHost(ns); err != nil || !reflect.DeepEqual(got, normalizeServices(before)) {
				t.Fatalf("a refused ApplyHost changed the state: %v, %v", got, err)
			}
		})
	}
	for _, f := range []func(string) error{
		func(ns string) error { return ApplyHost(ns, nil) },
		func(ns string) error { _, err := ReadHost(ns); return err },
		RemoveHost,
	} {
		if err := f("/nonexistent/ns"); !errors.Is(err, ErrNamespace) {
			t.Errorf("in a missing namespace: %v, want ErrNamespace", err)
		}
		if err := f("/proc/self/ns/uts"); !errors.Is(err, ErrNamespace) {
			t.Errorf("in a UTS namespace: %v, want ErrNamespace", err)
		}
	}
}

// TestApplyHostSetsForwardingAndRemoveHost: ApplyHost turns forwarding on;
// RemoveHost deletes the table (twice is fine) and ReadHost then reports
// nothing.
func TestApplyHostSetsForwardingAndRemoveHost(t *testing.T) {
	ns := newNS(t, "rm")
	readForward := func() string {
		var v []byte
		if err := nsrun.Do(ns, func() (err error) { v, err = os.ReadFile(ipForward); return err }); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(v))
	}
	if got := readForward(); got != "0" {
		t.Fatalf("a new namespace forwards already (%s): the test cannot tell", got)
	}
	applyHostAndCheck(t, ns, []Published{pub(TCP, 8080, 80, "10.255.0.7")})
	if got := readForward(); got != "1" {
		t.Fatalf("after ApplyHost ip_forward is %s, want 1", got)
	}
	for range 2 {
		if err := RemoveHost(ns); err != nil {
			t.Fatal(err)
		}
		if got, err := ReadHost(ns); err != nil || got != nil {
			t.Fatalf("ReadHost after RemoveHost: %v, %v", got, err)
		}
	}
}

// TestReadHostRefusesForeignRules: a rule ApplyHost does not write makes
// ReadHost fail with ErrUnrecognized, and ApplyHost rewrites it.
func TestReadHostRefusesForeignRules(t *testing.T) {
	ns := newNS(t, "fr")
	state := []Published{pub(TCP, 8080, 80, "10.255.0.7", "10.255.0.8"), pub(UDP, 53, 53)}
	applyHostAndCheck(t, ns, state)
	s, err := openNft(ns, "ns")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chains, err := nft.TableChains(s.Conn, hostTable)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		if c.Name == serviceChainName(state[0]) {
			s.Conn.AddRule(&nftables.Rule{Table: hostTable, Chain: c, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})
		}
	}
	if err := s.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHost(ns); !errors.Is(err, ErrUnrecognized) {
		t.Fatalf("ReadHost with a foreign rule: %v, want ErrUnrecognized", err)
	}
	applyHostAndCheck(t, ns, state)
}

// TestApplyHostRewritesLeftovers: a table left with chains and maps of the
// right names but the wrong kinds (an older agent, a crash) is rewritten
// by one ApplyHost.
func TestApplyHostRewritesLeftovers(t *testing.T) {
	ns := newNS(t, "lo")
	s, err := openNft(ns, "ns")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Conn.AddTable(hostTable)
	s.Conn.AddChain(nft.BaseChain{Name: meshPreroutingName, Type: nftables.ChainTypeFilter, Hook: nftables.ChainHookPrerouting, Priority: 0}.Chain(hostTable))
	s.Conn.AddChain(&nftables.Chain{Name: "svc_tcp_1_1", Table: hostTable})
	if err := s.Conn.AddSet(&nftables.Set{Table: hostTable, ID: 1, Name: publishedMapName, KeyType: nftables.TypeIPAddr}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Conn.AddSet(&nftables.Set{Table: hostTable, ID: 2, Name: "slots_tcp_8080", IsMap: true,
		KeyType: nftables.TypeInteger, DataType: nftables.TypeIPAddr}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Conn.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHost(ns); !errors.Is(err, ErrUnrecognized) {
		t.Fatalf("ReadHost of leftovers: %v, want ErrUnrecognized", err)
	}
	applyHostAndCheck(t, ns, []Published{pub(TCP, 8080, 80, "10.255.0.7")})
	chains, err := nft.TableChains(s.Conn, hostTable)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		if c.Name == "svc_tcp_1_1" {
			t.Fatalf("stale chain %s survived ApplyHost", c.Name)
		}
	}
}
