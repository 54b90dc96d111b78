package dns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// runPrefix names every namespace of this test run: the package's short
// name and random hex, so parallel runs and leftovers never collide.
var runPrefix = func() string {
	b := make([]byte, 3)
	rand.Read(b)
	return "dns" + hex.EncodeToString(b) + "-"
}()

var nsCounter atomic.Int64

// requireRoot skips tests that create network namespaces when not root.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create network namespaces")
	}
}

// newNetNS creates a named network namespace for this test, with lo up if
// asked, removes it in Cleanup, and returns its path.
func newNetNS(tb testing.TB, loUp bool) string {
	tb.Helper()
	requireRoot(tb)
	name := fmt.Sprintf("%s%d", runPrefix, nsCounter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	if loUp {
		if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
			tb.Fatalf("ip -n %s link set lo up: %v: %s", name, err, out)
		}
	}
	return filepath.Join("/run/netns", name)
}

// inNS runs fn on a thread inside the namespace at path.
func inNS(tb testing.TB, path string, fn func() error) {
	tb.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	defer ns.Close()
	if err := inNetNS(ns, fn); err != nil {
		tb.Fatalf("in %s: %v", path, err)
	}
}

// dialIn opens a client connection from inside the namespace at path.
func dialIn(path, network, addr string) (net.Conn, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return nsDialer{ns: ns}.DialContext(context.Background(), network, addr)
}

// exchangeIn sends one query from inside the namespace at path to
// 127.0.0.11:53 over network ("udp" or "tcp").
func exchangeIn(path, network string, m *mdns.Msg) (*mdns.Msg, error) {
	conn, err := dialIn(path, network, listenAddr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := mdns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := client.ExchangeWithConn(m, &mdns.Conn{Conn: conn})
	return resp, err
}

// queryIn asks for name/qtype from inside the namespace at path and fails
// the test when no answer comes.
func queryIn(tb testing.TB, path, network, name string, qtype uint16) *mdns.Msg {
	tb.Helper()
	m := new(mdns.Msg).SetQuestion(mdns.Fqdn(name), qtype)
	resp, err := exchangeIn(path, network, m)
	if err != nil {
		tb.Fatalf("query %s %s over %s: %v", name, mdns.TypeToString[qtype], network, err)
	}
	return resp
}

// addrsOf returns the A and AAAA addresses of an answer, in order.
func addrsOf(m *mdns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			out = append(out, rr.A.String())
		case *mdns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}

// resolverIn is Go's own resolver, talking to 127.0.0.11:53 from inside
// the namespace at path.
func resolverIn(path string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			ns, err := netns.GetFromPath(path)
			if err != nil {
				return nil, err
			}
			defer ns.Close()
			return nsDialer{ns: ns}.DialContext(ctx, network, listenAddr)
		},
	}
}

// newServer returns a Server closed in Cleanup.
func newServer(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}
