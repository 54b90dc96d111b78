package gossip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPublishWithdrawPropagate: endpoints published on three of five
// hosts reach every table; changes and withdrawals follow.
func TestPublishWithdrawPropagate(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 5, clusterOpts{})
	sub, cancel := c.table(5).Subscribe()
	defer cancel()

	a1, b1, b2, c1 := c.tep(1, 1, "netA"), c.tep(2, 1, "netA"), c.tep(2, 2, "netB"), c.tep(3, 1, "netB")
	for _, p := range []struct {
		i  int
		ep Endpoint
	}{{1, a1}, {2, b1}, {2, b2}, {3, c1}} {
		if err := c.table(p.i).Publish(p.ep); err != nil {
			t.Fatalf("publish on %s: %v", name(p.i), err)
		}
	}
	all := slices.Concat(want(1, a1), want(2, b1, b2), want(3, c1))
	took := c.waitTables(all)
	t.Logf("4 endpoints published on 3 hosts visible in all 5 tables after %v", took)

	select {
	case <-sub:
	default:
		t.Errorf("subscriber on h5 got no signal")
	}
	got := c.table(5).Endpoints("netA")
	if gotIDs := ids(got); !slices.Equal(gotIDs, slices.Concat(want(1, a1), want(2, b1))) {
		t.Fatalf("h5 Endpoints(netA) = %v", gotIDs)
	}
	if e := got[1]; e.Node != "h2" || e.VTEP != c.addr(2).Addr() || e.MAC != "02:42:0a:01:02:01" ||
		e.VIP != netip.MustParseAddr("10.1.255.1") || !slices.Equal(e.Aliases, []string{"www"}) || e.ServiceName != "web" {
		t.Errorf("h5 sees h2's endpoint as %+v", e)
	}
	got[1].Aliases[0] = "mutated"
	if again := c.table(5).Endpoints("netA"); again[1].Aliases[0] != "www" {
		t.Errorf("Endpoints returned memory shared with the table")
	}

	// Change an endpoint (new address), withdraw another.
	a1.Addr = netip.MustParseAddr("10.1.1.99")
	if err := c.table(1).Publish(a1); err != nil {
		t.Fatal(err)
	}
	if err := c.table(2).Withdraw(b1.ID); err != nil {
		t.Fatal(err)
	}
	took = c.waitTables(slices.Concat(want(1, a1), want(2, b2), want(3, c1)))
	t.Logf("a change and a withdrawal visible everywhere after %v", took)

	// Replace: h2 now runs only b3.
	b3 := c.tep(2, 3, "netA")
	if err := c.table(2).Replace([]Endpoint{b3}); err != nil {
		t.Fatal(err)
	}
	c.waitTables(slices.Concat(want(1, a1), want(2, b3), want(3, c1)))
}

// TestCrashRemovesEntries: a host that dies without leaving loses its
// entries in every table within the failure-detection bound; when it
// comes back on its address with new entries, the others rejoin it by
// themselves (nobody calls Join) and hold only the new entries.
func TestCrashRemovesEntries(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 5, clusterOpts{mod: func(_ int, cfg *Config) { cfg.ReconnectInterval = 300 * time.Millisecond }})
	eps := map[int]Endpoint{}
	var all []string
	for i := 1; i <= 3; i++ {
		eps[i] = c.tep(i, 1, "netA")
		if err := c.table(i).Publish(eps[i]); err != nil {
			t.Fatal(err)
		}
		all = append(all, want(i, eps[i])...)
	}
	c.waitTables(all)

	c.crash(3)
	took := c.waitTables(slices.Concat(want(1, eps[1]), want(2, eps[2])))
	t.Logf("crashed host's entries left all 4 other tables after %v (ProbeInterval %v, SuspicionMult %d)",
		took, DefaultProbeInterval, DefaultSuspicionMult)
	c.waitMembers(4)
	if !strings.Contains(c.logs.String(), "peer failed") {
		t.Errorf("peers did not log h3 as failed")
	}

	// The host comes back with a new task; nobody calls Join.
	t3 := c.start(3)
	fresh := c.tep(3, 2, "netB")
	if err := t3.Publish(fresh); err != nil {
		t.Fatal(err)
	}
	took = c.waitTables(slices.Concat(want(1, eps[1]), want(2, eps[2]), want(3, fresh)))
	t.Logf("restarted host rejoined by reconnect and converged after %v", took)
	c.waitMembers(5)
}

// TestGracefulLeave: a host that leaves loses its entries everywhere
// without waiting for failure detection.
func TestGracefulLeave(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 5, clusterOpts{})
	e1, e2 := c.tep(1, 1, "netA"), c.tep(2, 1, "netA")
	for i, e := range map[int]Endpoint{1: e1, 2: e2} {
		if err := c.table(i).Publish(e); err != nil {
			t.Fatal(err)
		}
	}
	c.waitTables(slices.Concat(want(1, e1), want(2, e2)))
	start := time.Now()
	c.leave(2)
	c.waitTables(want(1, e1))
	t.Logf("leaving host's entries left all 4 other tables %v after Leave began", time.Since(start))
	c.waitMembers(4)
	logs := c.logs.String()
	if strings.Contains(logs, "peer failed") || !strings.Contains(logs, "peer left") {
		t.Errorf("peers did not see h2 leave gracefully (want \"peer left\", no \"peer failed\")")
	}
}

// TestFastRestart: a host restarted faster than failure detection (same
// name and address, new incarnation) replaces its old entries with its new
// ones everywhere.
func TestFastRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 5, clusterOpts{})
	e1, old := c.tep(1, 1, "netA"), c.tep(3, 1, "netA")
	if err := c.table(1).Publish(e1); err != nil {
		t.Fatal(err)
	}
	if err := c.table(3).Publish(old); err != nil {
		t.Fatal(err)
	}
	c.waitTables(slices.Concat(want(1, e1), want(3, old)))

	c.crash(3)
	t3 := c.start(3)
	fresh := c.tep(3, 2, "netA")
	if err := t3.Publish(fresh); err != nil {
		t.Fatal(err)
	}
	c.join(3, 1)
	took := c.waitTables(slices.Concat(want(1, e1), want(3, fresh)))
	t.Logf("restarted host's new entries replaced its old ones everywhere after %v", took)
}

// TestLateJoiner: a host joining after the others published gets the whole
// table during Join (push-pull), and its own entries reach everyone.
func TestLateJoiner(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 4, clusterOpts{})
	var all []string
	for i := 1; i <= 3; i++ {
		e := c.tep(i, 1, "netA")
		if err := c.table(i).Publish(e); err != nil {
			t.Fatal(err)
		}
		all = append(all, want(i, e)...)
	}
	c.waitTables(all)

	t5 := c.start(5)
	e5 := c.tep(5, 1, "netB")
	if err := t5.Publish(e5); err != nil {
		t.Fatal(err)
	}
	c.join(5, 4) // h4 published nothing: the table comes from relayed state
	if got := ids(t5.All()); !slices.Equal(got, append(slices.Clone(all), want(5, e5)...)) {
		t.Errorf("right after Join, h5 holds %v; want %v plus its own", got, all)
	}
	c.waitTables(append(all, want(5, e5)...))
}

// TestPartitionHeals: a host cut off from the network loses the others'
// entries and they lose its; when the link is back the tables converge
// again without anyone calling Join.
func TestPartitionHeals(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 4, clusterOpts{faulty: true, mod: func(_ int, cfg *Config) { cfg.ReconnectInterval = 300 * time.Millisecond }})
	eps := map[int]Endpoint{}
	var all []string
	for i := 1; i <= 4; i++ {
		eps[i] = c.tep(i, 1, "netA")
		if err := c.table(i).Publish(eps[i]); err != nil {
			t.Fatal(err)
		}
		all = append(all, want(i, eps[i])...)
	}
	c.waitTables(all)

	c.setCut(4, true)
	took := c.waitTables(all[:3], 4)
	waitFor(t, 30*time.Second, "h4 to drop the others' entries", func() bool {
		return slices.Equal(ids(c.table(4).All()), want(4, eps[4]))
	})
	t.Logf("cut-off host's entries left the other tables after %v", took)

	// While cut off, h4 changes its endpoint; h1 withdraws its own.
	moved := eps[4]
	moved.Addr = netip.MustParseAddr("10.1.4.77")
	if err := c.table(4).Publish(moved); err != nil {
		t.Fatal(err)
	}
	if err := c.table(1).Withdraw(eps[1].ID); err != nil {
		t.Fatal(err)
	}

	c.setCut(4, false)
	took = c.waitTables(slices.Concat(want(2, eps[2]), want(3, eps[3]), want(4, moved)))
	t.Logf("partition healed and tables converged after %v", took)
	c.waitMembers(4)
}

// TestSelfConflictReincarnates: a host restarted with a lower incarnation
// than its previous run (a clock that jumped back) sees its old state in
// gossip, moves above it and wins.
func TestSelfConflictReincarnates(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, clusterOpts{mod: func(i int, cfg *Config) {
		if i == 3 {
			cfg.Incarnation = uint64(time.Now().Add(time.Hour).UnixNano())
		}
	}})
	old := c.tep(3, 1, "netA")
	if err := c.table(3).Publish(old); err != nil {
		t.Fatal(err)
	}
	c.waitTables(want(3, old))

	c.crash(3)
	c.opts.mod = func(int, *Config) {} // back to the clock: a lower incarnation
	t3 := c.start(3)
	fresh := c.tep(3, 2, "netA")
	if err := t3.Publish(fresh); err != nil {
		t.Fatal(err)
	}
	c.join(3, 1)
	c.waitTables(want(3, fresh))
	if !strings.Contains(c.logs.String(), "moving to a higher incarnation") {
		t.Errorf("h3 converged without reincarnating: the test did not exercise the conflict")
	}
}

func TestSubscribe(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, clusterOpts{})
	tb := c.table(1)
	ch, cancel := tb.Subscribe()
	other, _ := tb.Subscribe()
	for n := range 10 {
		if err := tb.Publish(c.tep(1, n+1, "netA")); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := <-ch; !ok {
		t.Fatalf("channel closed, want a signal")
	}
	select {
	case <-ch:
		t.Errorf("ten changes gave more than one pending signal")
	default:
	}
	if err := tb.Publish(c.tep(1, 1, "netA")); err != nil { // unchanged: no signal
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Errorf("republishing an unchanged endpoint signalled")
	default:
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Errorf("cancelled channel still open")
	}
	if err := tb.Shutdown(); err != nil {
		t.Fatal(err)
	}
	<-other // the pending signal
	if _, ok := <-other; ok {
		t.Errorf("Shutdown left a subscriber channel open")
	}
	late, _ := tb.Subscribe()
	if _, ok := <-late; ok {
		t.Errorf("Subscribe after Shutdown returned an open channel")
	}
}

func TestClosedTable(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, clusterOpts{})
	left := c.table(2)
	if err := left.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := left.Leave(time.Second); err != nil {
		t.Errorf("second Leave = %v, want nil", err)
	}
	if err := left.Publish(c.tep(2, 1, "netA")); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Leave = %v, want ErrClosed", err)
	}
	tb := c.table(1)
	if err := tb.Publish(c.tep(1, 1, "netA")); err != nil {
		t.Fatal(err)
	}
	if err := tb.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := tb.Shutdown(); err != nil {
		t.Errorf("second Shutdown = %v, want nil", err)
	}
	for what, err := range map[string]error{
		"Publish":  tb.Publish(c.tep(1, 2, "netA")),
		"Withdraw": tb.Withdraw("h1-1"),
		"Replace":  tb.Replace(nil),
		"Leave":    tb.Leave(time.Second),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Shutdown = %v, want ErrClosed", what, err)
		}
	}
	if _, err := tb.Join([]string{c.addr(2).String()}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Shutdown = %v, want ErrClosed", err)
	}
	if got := ids(tb.All()); len(got) != 1 {
		t.Errorf("table after Shutdown holds %v, want its last contents", got)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 1, clusterOpts{})
	tb := c.table(1)
	good := c.tep(1, 1, "netA")
	huge := good
	for n := range 200 {
		huge.Aliases = append(huge.Aliases, fmt.Sprintf("alias-%03d", n))
	}
	bad := good
	bad.VTEP = netip.Addr{}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"invalid endpoint", tb.Publish(bad), ErrInvalidEndpoint},
		{"oversized endpoint", tb.Publish(huge), ErrEndpointTooLarge},
		{"duplicate IDs in Replace", tb.Replace([]Endpoint{good, good}), ErrInvalidEndpoint},
		{"invalid endpoint in Replace", tb.Replace([]Endpoint{good, bad}), ErrInvalidEndpoint},
		{"host name peer", joinErr(tb, "localhost:7946"), ErrInvalidPeer},
		{"port 0 peer", joinErr(tb, "127.0.0.1:0"), ErrInvalidPeer},
		{"no peer", joinErr(tb), ErrJoin},
		{"nobody listening", joinErr(tb, netip.AddrPortFrom(c.addr(9).Addr(), c.port).String()), ErrJoin},
	}
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if got := tb.All(); len(got) != 0 {
		t.Errorf("failed calls published %v", ids(got))
	}
	// The address is taken by node 1: a second table cannot bind it.
	cfg := c.config(1)
	cfg.NodeName = "other"
	if _, err := Start(cfg); !errors.Is(err, ErrBind) {
		t.Errorf("Start on a taken address: err = %v, want ErrBind", err)
	}
}

func joinErr(t *Table, peers ...string) error {
	_, err := t.Join(peers)
	return err
}
