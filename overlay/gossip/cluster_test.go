package gossip

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// This file holds the helpers of the multi-node tests: clusters of real
// memberlist instances on loopback addresses 127.A.B.1, 127.A.B.2, ...
// (all of 127/8 is loopback), with A.B and the port drawn at random and a
// per-run memberlist label, so that concurrent runs never hear each other.

// testCluster is n tables on loopback, started and stopped by index
// (1-based, like hosts).
type testCluster struct {
	tb     testing.TB
	prefix [3]byte
	port   uint16
	label  string
	logs   *syncBuffer
	opts   clusterOpts
	mu     sync.Mutex
	tables map[int]*Table
	faults map[int]*faultTransport
}

// clusterOpts adjusts a test cluster.
type clusterOpts struct {
	// mod, when not nil, adjusts each node's Config.
	mod func(i int, c *Config)
	// faulty runs every node on a faultTransport (see cut); otherwise
	// memberlist makes its own transport, as in production.
	faulty bool
}

// newCluster starts n tables and joins them all to node 1.
func newCluster(tb testing.TB, n int, opts clusterOpts) *testCluster {
	tb.Helper()
	c := &testCluster{
		tb: tb, logs: &syncBuffer{}, opts: opts,
		tables: map[int]*Table{}, faults: map[int]*faultTransport{},
	}
	var tag [4]byte
	if _, err := rand.Read(tag[:]); err != nil {
		tb.Fatal(err)
	}
	c.label = "shoal-gossip-test-" + hex.EncodeToString(tag[:])
	tb.Cleanup(func() {
		c.mu.Lock()
		tables := c.tables
		c.tables = map[int]*Table{}
		c.mu.Unlock()
		for _, t := range tables {
			_ = t.Shutdown()
		}
		if tb.Failed() {
			tb.Logf("cluster logs:\n%s", c.logs.String())
		}
	})
	// Draw a free loopback /24 and port; node 1 binding proves it free.
	for attempt := 0; ; attempt++ {
		c.prefix = [3]byte{127, byte(randInt(tb, 1, 254)), byte(randInt(tb, 1, 254))}
		c.port = uint16(randInt(tb, 20000, 60000))
		if _, err := c.tryStart(1); err == nil {
			break
		} else if attempt == 5 {
			tb.Fatalf("start node 1: %v", err)
		}
	}
	for i := 2; i <= n; i++ {
		c.start(i)
	}
	for i := 2; i <= n; i++ {
		c.join(i, 1)
	}
	c.waitMembers(n)
	return c
}

func randInt(tb testing.TB, lo, hi int64) int64 {
	n, err := rand.Int(rand.Reader, big.NewInt(hi-lo+1))
	if err != nil {
		tb.Fatal(err)
	}
	return lo + n.Int64()
}

// addr returns node i's bind address.
func (c *testCluster) addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{c.prefix[0], c.prefix[1], c.prefix[2], byte(i)}), c.port)
}

// testKey returns gossip key number n: KeySize bytes, fixed for n and
// different for every n. (Clusters are kept apart by their labels, not
// their keys.)
func testKey(n int) []byte {
	k := sha256.Sum256(fmt.Appendf(nil, "shoal gossip test key %d", n))
	return k[:]
}

// name returns node i's name.
func name(i int) string { return fmt.Sprintf("h%d", i) }

// config returns node i's Config.
func (c *testCluster) config(i int) Config {
	cfg := Config{
		NodeName: name(i),
		BindAddr: c.addr(i),
		Label:    c.label,
		Keys:     [][]byte{testKey(1)},
		Logger:   slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if c.opts.mod != nil {
		c.opts.mod(i, &cfg)
	}
	return cfg
}

// tryStart starts node i, or errs.
func (c *testCluster) tryStart(i int) (*Table, error) {
	cfg := c.config(i)
	var ft *faultTransport
	if c.opts.faulty {
		ft = &faultTransport{}
		cfg.wrapTransport = ft.wrap
	}
	t, err := Start(cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.tables[i], c.faults[i] = t, ft
	c.mu.Unlock()
	return t, nil
}

// start starts node i.
func (c *testCluster) start(i int) *Table {
	c.tb.Helper()
	t, err := c.tryStart(i)
	if err != nil {
		c.tb.Fatalf("start %s: %v", name(i), err)
	}
	return t
}

// join joins node i to node j.
func (c *testCluster) join(i, j int) {
	c.tb.Helper()
	if _, err := c.table(i).Join([]string{c.addr(j).String()}); err != nil {
		c.tb.Fatalf("%s join %s: %v", name(i), name(j), err)
	}
}

// table returns node i's running table.
func (c *testCluster) table(i int) *Table {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tables[i]
	if !ok {
		c.tb.Fatalf("%s is not running", name(i))
	}
	return t
}

// running returns the indexes of the running nodes, sorted.
func (c *testCluster) running() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i := range c.tables {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}

// setCut cuts or restores node i's network (a faulty cluster only).
func (c *testCluster) setCut(i int, cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults[i].cut.Store(cut)
}

// crash shuts node i down without leaving, like a host that dies.
func (c *testCluster) crash(i int) {
	c.tb.Helper()
	t := c.table(i)
	c.mu.Lock()
	delete(c.tables, i)
	c.mu.Unlock()
	if err := t.Shutdown(); err != nil {
		c.tb.Fatalf("shutdown %s: %v", name(i), err)
	}
}

// leave makes node i leave gracefully and shuts it down.
func (c *testCluster) leave(i int) {
	c.tb.Helper()
	t := c.table(i)
	if err := t.Leave(2 * time.Second); err != nil {
		c.tb.Fatalf("leave %s: %v", name(i), err)
	}
	c.crash(i)
}

// waitMembers waits until every running table lists n members.
func (c *testCluster) waitMembers(n int) {
	c.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var short []string
		for _, i := range c.running() {
			if m := c.table(i).Members(); len(m) != n {
				short = append(short, fmt.Sprintf("%s lists %v", name(i), m))
			}
		}
		if len(short) == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("timed out after 20s waiting for every table to list %d members: %v", n, short)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitTables waits until every running table (but those in except) holds
// exactly want (as listed by ids) and returns how long that took.
func (c *testCluster) waitTables(want []string, except ...int) time.Duration {
	c.tb.Helper()
	slices.Sort(want)
	return waitFor(c.tb, 30*time.Second, fmt.Sprintf("every table to hold %v", want), func() bool {
		for _, i := range c.running() {
			if slices.Contains(except, i) {
				continue
			}
			if got := ids(c.table(i).All()); !slices.Equal(got, want) {
				return false
			}
		}
		return true
	})
}

// tablesDump describes every running table, for failure messages.
func (c *testCluster) tablesDump() string {
	var b bytes.Buffer
	for _, i := range c.running() {
		fmt.Fprintf(&b, "%s: members %v, endpoints %v\n", name(i), c.table(i).Members(), ids(c.table(i).All()))
	}
	return b.String()
}

// waitFor polls cond every 20ms until it holds, and returns how long that
// took; it fails the test after timeout.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	tb.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// tep returns a test endpoint published by host i: ID "h<i>-<n>", task
// address 10.<net>.<i>.<n>, VTEP the host's address.
func (c *testCluster) tep(i, n int, network string) Endpoint {
	netByte := byte(1)
	if network == "netB" {
		netByte = 2
	}
	return Endpoint{
		ID: fmt.Sprintf("%s-%d", name(i), n), NetworkID: network,
		ServiceID: "svc-" + network, ServiceName: "web", Aliases: []string{"www"},
		Addr: netip.AddrFrom4([4]byte{10, netByte, byte(i), byte(n)}),
		MAC:  fmt.Sprintf("02:42:0a:%02x:%02x:%02x", netByte, i, n),
		VTEP: c.addr(i).Addr(), VIP: netip.AddrFrom4([4]byte{10, netByte, 255, 1}),
	}
}

// want returns ids() of endpoints as node i publishes them.
func want(i int, eps ...Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, fmt.Sprintf("%s/%s@%s", name(i), e.ID, e.Addr))
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// faultTransport wraps memberlist's network transport and, while cut,
// behaves like a host whose cable was pulled: nothing it sends arrives,
// nothing sent to it is delivered, and dials time out. The node itself
// keeps running, as in a network partition.
type faultTransport struct {
	*memberlist.NetTransport
	cut      atomic.Bool
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	stop     chan struct{}
}

var _ memberlist.NodeAwareTransport = (*faultTransport)(nil)

// wrap is Config.wrapTransport.
func (f *faultTransport) wrap(nt *memberlist.NetTransport) memberlist.NodeAwareTransport {
	f.NetTransport = nt
	f.packetCh = make(chan *memberlist.Packet)
	f.streamCh = make(chan net.Conn)
	f.stop = make(chan struct{})
	go func() {
		for {
			select {
			case p := <-nt.PacketCh():
				if f.cut.Load() {
					continue
				}
				select {
				case f.packetCh <- p:
				case <-f.stop:
					return
				}
			case <-f.stop:
				return
			}
		}
	}()
	go func() {
		for {
			select {
			case conn := <-nt.StreamCh():
				if f.cut.Load() {
					conn.Close()
					continue
				}
				select {
				case f.streamCh <- conn:
				case <-f.stop:
					conn.Close()
					return
				}
			case <-f.stop:
				return
			}
		}
	}()
	return f
}

func (f *faultTransport) PacketCh() <-chan *memberlist.Packet { return f.packetCh }
func (f *faultTransport) StreamCh() <-chan net.Conn           { return f.streamCh }

func (f *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return f.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (f *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if f.cut.Load() {
		return time.Now(), nil
	}
	return f.NetTransport.WriteToAddress(b, a)
}

func (f *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return f.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

var errCut = errors.New("test: link cut")

func (f *faultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if f.cut.Load() {
		select {
		case <-time.After(timeout):
		case <-f.stop:
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errCut}
	}
	return f.NetTransport.DialAddressTimeout(a, timeout)
}

func (f *faultTransport) Shutdown() error {
	close(f.stop)
	return f.NetTransport.Shutdown()
}
