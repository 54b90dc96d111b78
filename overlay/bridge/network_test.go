package bridge_test

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/bridge"
	"github.com/shoalhq/shoal/overlay/nsrun"
	"github.com/shoalhq/shoal/overlay/sandbox"
)

func TestTasksReachOutsideMasqueradedAndEachOtherDirectly(t *testing.T) {
	w := newWorld(t)
	setForwarding(t, w.host, "0") // Open must turn it on
	serveEcho(t, w.outside, serverAddr, 7777)
	n := w.open(t, w.config())
	ns1, ns2 := w.task(t, "t1"), w.task(t, "t2")
	p1, err := n.Attach("task-1", ns1)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := n.Attach("task-2", ns2)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParsePrefix("172.18.0.2/16"); p1 != want {
		t.Errorf("first task got %v, want %v", p1, want)
	}
	if want := netip.MustParsePrefix("172.18.0.3/16"); p2 != want {
		t.Errorf("second task got %v, want %v", p2, want)
	}
	if got := readForwarding(t, w.host); got != "1" {
		t.Errorf("ip_forward in the host namespace = %q after Open, want 1", got)
	}

	gw := netip.MustParseAddr("172.18.0.1")
	for _, tc := range []struct {
		ns  string
		p   netip.Prefix
		mac string
	}{{ns1, p1, "02:42:ac:12:00:02"}, {ns2, p2, "02:42:ac:12:00:03"}} {
		s := readTask(t, tc.ns)
		if !slices.Equal(s.addrs, []netip.Prefix{tc.p}) || s.defaultVia != gw || s.mac != tc.mac || s.mtu != bridge.DefaultMTU {
			t.Errorf("eth0 in %s = %+v, want address %v, default via %v, MAC %s, MTU %d", tc.ns, s, tc.p, gw, tc.mac, bridge.DefaultMTU)
		}
		for _, network := range []string{"tcp4", "udp4"} {
			if seen := ask(t, tc.ns, network, serverAddr, 7777, "hello"); seen != hostUplink.Addr() {
				t.Errorf("%s from %v: the outside server saw %v, want the host's %v (masquerade)", network, tc.p, seen, hostUplink.Addr())
			}
		}
	}

	serveEcho(t, ns2, p2.Addr(), 8000)
	for _, network := range []string{"tcp4", "udp4"} {
		if seen := ask(t, ns1, network, p2.Addr(), 8000, "neighbour"); seen != p1.Addr() {
			t.Errorf("%s task 1 → task 2: task 2 saw %v, want task 1's own %v (no NAT on the bridge)", network, seen, p1.Addr())
		}
	}

	br, err := w.hostNL.LinkByName(bridge.DefaultBridge)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := br.Attrs().HardwareAddr.String(), "02:42:ac:12:00:01"; got != want {
		t.Errorf("bridge MAC with two ports = %s, want the fixed %s", got, want)
	}
}

func TestNATTableReadBack(t *testing.T) {
	w := newWorld(t)
	cfg := w.config()
	cfg.Subnet = netip.MustParsePrefix("10.77.0.0/20")
	cfg.Bridge = "shbrtest"
	n := w.open(t, cfg)
	checkNAT(t, w.host, cfg.Subnet, cfg.Bridge)

	n2 := w.open(t, cfg) // Open again: still exactly one rule
	checkNAT(t, w.host, cfg.Subnet, cfg.Bridge)
	_ = n2

	deleteTable(t, w.host) // an operator flushed the ruleset: Reconcile restores it
	if err := n.Reconcile(); err != nil {
		t.Fatal(err)
	}
	checkNAT(t, w.host, cfg.Subnet, cfg.Bridge)
}

// checkNAT asserts that the host namespace holds table ip shoal_bridge
// with one nat postrouting chain holding one rule
// "ip saddr SUBNET oifname != BRIDGE masquerade".
func checkNAT(t *testing.T, hostNS string, subnet netip.Prefix, bridgeName string) {
	t.Helper()
	c, done := nftIn(t, hostNS)
	defer done()
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	var ours []*nftables.Chain
	for _, ch := range chains {
		if ch.Table.Name == bridge.TableName {
			ours = append(ours, ch)
		}
	}
	if len(ours) != 1 {
		t.Fatalf("table ip %s has %d chains, want 1", bridge.TableName, len(ours))
	}
	ch := ours[0]
	if ch.Type != nftables.ChainTypeNAT || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookPostrouting ||
		ch.Priority == nil || *ch.Priority != *nftables.ChainPriorityNATSource {
		t.Errorf("chain %s: type %s hook %v priority %v, want nat postrouting srcnat", ch.Name, ch.Type, ch.Hooknum, ch.Priority)
	}
	rules, err := c.GetRules(ch.Table, ch)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 {
		t.Fatalf("chain %s has %d rules, want 1", ch.Name, len(rules))
	}
	var saddr, mask, notIf []byte
	var masq, oifname bool
	for _, e := range rules[0].Exprs {
		switch e := e.(type) {
		case *expr.Payload:
			if e.Base != expr.PayloadBaseNetworkHeader || e.Offset != 12 || e.Len != 4 {
				t.Errorf("payload %+v, want ip saddr", e)
			}
		case *expr.Bitwise:
			mask = e.Mask
		case *expr.Meta:
			oifname = e.Key == expr.MetaKeyOIFNAME
		case *expr.Cmp:
			if e.Op == expr.CmpOpEq {
				saddr = e.Data
			} else if e.Op == expr.CmpOpNeq {
				notIf = e.Data
			}
		case *expr.Masq:
			masq = true
		}
	}
	if !bytes.Equal(saddr, subnet.Addr().AsSlice()) || !bytes.Equal(mask, net.CIDRMask(subnet.Bits(), 32)) {
		t.Errorf("rule matches saddr %v mask %v, want %v", net.IP(saddr), net.IPMask(mask), subnet)
	}
	if !oifname || string(bytes.TrimRight(notIf, "\x00")) != bridgeName {
		t.Errorf("rule matches oifname != %q (meta oifname %v), want != %q", notIf, oifname, bridgeName)
	}
	if !masq {
		t.Errorf("rule does not masquerade")
	}
}

func nftIn(t testing.TB, ns string) (*nftables.Conn, func()) {
	t.Helper()
	fd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return c, func() { unix.Close(fd) }
}

func deleteTable(t testing.TB, ns string) {
	t.Helper()
	c, done := nftIn(t, ns)
	defer done()
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: bridge.TableName})
	if err := c.Flush(); err != nil {
		t.Fatalf("delete table: %v", err)
	}
}

func hasTable(t testing.TB, ns string) bool {
	t.Helper()
	c, done := nftIn(t, ns)
	defer done()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(tables, func(tb *nftables.Table) bool { return tb.Name == bridge.TableName })
}

func setForwarding(t testing.TB, ns, v string) {
	t.Helper()
	if err := nsrun.Do(ns, func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte(v), 0o644) }); err != nil {
		t.Fatal(err)
	}
}

func readForwarding(t testing.TB, ns string) string {
	t.Helper()
	var v []byte
	if err := nsrun.Do(ns, func() (err error) { v, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward"); return err }); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}

func TestAttachAndOpenAreIdempotent(t *testing.T) {
	w := newWorld(t)
	n := w.open(t, w.config())
	ns := w.task(t, "t1")
	p1, err := n.Attach("task-1", ns)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := n.Attach("task-1", ns)
	if err != nil {
		t.Fatal(err)
	}
	if p1 != p2 {
		t.Errorf("Attach twice: %v then %v, want the same address", p1, p2)
	}
	if ports := w.ports(t, bridge.DefaultBridge); len(ports) != 1 {
		t.Errorf("bridge ports after Attach twice: %v, want one", ports)
	}
	again := w.open(t, w.config()) // a second Open keeps the allocation and the veth
	if got := again.Tasks(); len(got) != 1 || got["task-1"] != p1.Addr() {
		t.Errorf("Tasks after a second Open = %v, want task-1 → %v", got, p1.Addr())
	}
	if !hasLink(t, ns, bridge.TaskIfName) {
		t.Errorf("a second Open removed task-1's eth0")
	}
	if ports := w.ports(t, bridge.DefaultBridge); len(ports) != 1 {
		t.Errorf("bridge ports after a second Open: %v, want one", ports)
	}
	if s := readTask(t, ns); !slices.Equal(s.addrs, []netip.Prefix{p1}) {
		t.Errorf("eth0 addresses after a second Open: %v, want %v", s.addrs, p1)
	}
}

func TestDetachFreesAndFreedAddressIsReusedLast(t *testing.T) {
	w := newWorld(t)
	cfg := w.config()
	cfg.Subnet = netip.MustParsePrefix("10.66.0.0/29") // task addresses .2 to .6
	n := w.open(t, cfg)
	nsA, nsB, nsC := w.task(t, "a"), w.task(t, "b"), w.task(t, "c")
	a, _ := n.Attach("A", nsA)
	b, _ := n.Attach("B", nsB)
	if err := n.Detach("A"); err != nil {
		t.Fatal(err)
	}
	if hasLink(t, nsA, bridge.TaskIfName) || slices.Contains(w.ports(t, bridge.DefaultBridge), sandbox.IfNameFor("A", bridge.DefaultBridge)) {
		t.Errorf("after Detach(A), its veth remains")
	}
	if _, ok := n.Tasks()["A"]; ok {
		t.Errorf("Tasks after Detach(A) still has A: %v", n.Tasks())
	}
	if err := n.Detach("A"); err != nil {
		t.Errorf("Detach of a detached task: %v, want nil", err)
	}
	c, err := n.Attach("C", nsC)
	if err != nil {
		t.Fatal(err)
	}
	if c == a || c == b {
		t.Errorf("C got %v; A had %v, B has %v: a freed address must be reused last", c, a, b)
	}
	// Fill the subnet: .5 and .6 go, then the freed .2 comes back, then it is full.
	var got []netip.Addr
	for _, id := range []string{"D", "E", "F"} {
		p, err := n.Attach(id, w.task(t, strings.ToLower(id)))
		if err != nil {
			t.Fatalf("Attach(%s): %v", id, err)
		}
		got = append(got, p.Addr())
	}
	want := []netip.Addr{netip.MustParseAddr("10.66.0.5"), netip.MustParseAddr("10.66.0.6"), a.Addr()}
	if !slices.Equal(got, want) {
		t.Errorf("D, E, F got %v, want %v", got, want)
	}
	if _, err := n.Attach("G", w.task(t, "g")); !errors.Is(err, bridge.ErrExhausted) {
		t.Errorf("Attach on a full subnet: %v, want ErrExhausted", err)
	}
}

func TestRestartKeepsAllocationsAndRemovesLeftoverPorts(t *testing.T) {
	w := newWorld(t)
	n1, err := bridge.Open(w.config())
	if err != nil {
		t.Fatal(err)
	}
	nsA, nsB := w.task(t, "a"), w.task(t, "b")
	a, _ := n1.Attach("A", nsA)
	b, _ := n1.Attach("B", nsB)
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.Attach("C", w.task(t, "c0")); !errors.Is(err, bridge.ErrClosed) {
		t.Errorf("Attach after Close: %v, want ErrClosed", err)
	}
	// A crash left a veth on the bridge that no allocation knows.
	stray := sandbox.IfNameFor("ghost", bridge.DefaultBridge)
	br, err := w.hostNL.LinkByName(bridge.DefaultBridge)
	if err != nil {
		t.Fatal(err)
	}
	ghost := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: stray, MasterIndex: br.Attrs().Index}, PeerName: "shghostpeer"}
	if err := w.hostNL.LinkAdd(ghost); err != nil {
		t.Fatal(err)
	}

	n2 := w.open(t, w.config())
	if got := n2.Tasks(); len(got) != 2 || got["A"] != a.Addr() || got["B"] != b.Addr() {
		t.Errorf("Tasks after restart = %v, want A → %v, B → %v", got, a.Addr(), b.Addr())
	}
	if slices.Contains(w.ports(t, bridge.DefaultBridge), stray) {
		t.Errorf("leftover port %s survived Open", stray)
	}
	if ports := w.ports(t, bridge.DefaultBridge); len(ports) != 2 {
		t.Errorf("bridge ports after restart: %v, want A's and B's", ports)
	}
	c, err := n2.Attach("C", w.task(t, "c"))
	if err != nil {
		t.Fatal(err)
	}
	if c == a || c == b {
		t.Errorf("C got %v after restart, which A or B holds", c)
	}
	if again, err := n2.Attach("A", nsA); err != nil || again != a {
		t.Errorf("re-Attach A after restart = %v, %v; want %v", again, err, a)
	}
	serveEcho(t, w.outside, serverAddr, 7777)
	if seen := ask(t, nsA, "tcp4", serverAddr, 7777, "after restart"); seen != hostUplink.Addr() {
		t.Errorf("after restart the server saw %v, want %v", seen, hostUplink.Addr())
	}
}

func TestReconcileRecreatesADeletedBridge(t *testing.T) {
	w := newWorld(t)
	n := w.open(t, w.config())
	br, err := w.hostNL.LinkByName(bridge.DefaultBridge)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.hostNL.LinkDel(br); err != nil {
		t.Fatal(err)
	}
	ns := w.task(t, "t1")
	if _, err := n.Attach("task-1", ns); err != nil {
		t.Fatalf("Attach after the bridge was deleted: %v", err)
	}
	serveEcho(t, w.outside, serverAddr, 7777)
	if seen := ask(t, ns, "udp4", serverAddr, 7777, "x"); seen != hostUplink.Addr() {
		t.Errorf("server saw %v, want %v", seen, hostUplink.Addr())
	}
}

func TestAttachRefusesTheHostNamespace(t *testing.T) {
	w := newWorld(t)
	n := w.open(t, w.config())
	if _, err := n.Attach("host-task", w.host); !errors.Is(err, bridge.ErrHostNamespace) {
		t.Errorf("Attach of the host namespace: %v, want ErrHostNamespace", err)
	}
	if len(n.Tasks()) != 0 {
		t.Errorf("a refused Attach allocated: %v", n.Tasks())
	}
}

func TestRemoveDeletesEverything(t *testing.T) {
	w := newWorld(t)
	n, err := bridge.Open(w.config())
	if err != nil {
		t.Fatal(err)
	}
	ns := w.task(t, "t1")
	if _, err := n.Attach("task-1", ns); err != nil {
		t.Fatal(err)
	}
	if err := n.Remove(); err != nil {
		t.Fatal(err)
	}
	if hasLink(t, w.host, bridge.DefaultBridge) || hasLink(t, ns, bridge.TaskIfName) {
		t.Errorf("Remove left the bridge or the task's eth0")
	}
	if hasTable(t, w.host) {
		t.Errorf("Remove left table ip %s", bridge.TableName)
	}
	if _, err := os.Stat(w.state); !os.IsNotExist(err) {
		t.Errorf("Remove left the state file: %v", err)
	}
	if err := n.Remove(); !errors.Is(err, bridge.ErrClosed) {
		t.Errorf("Remove twice: %v, want ErrClosed", err)
	}
}

func TestAttachUndoesTheAllocationWhenTheStateCannotBeSaved(t *testing.T) {
	w := newWorld(t)
	cfg := w.config()
	cfg.StateFile = filepath.Join(t.TempDir(), "sub", "bridge.json")
	if err := os.Mkdir(filepath.Dir(cfg.StateFile), 0o700); err != nil {
		t.Fatal(err)
	}
	n := w.open(t, cfg)
	ns := w.task(t, "t1")
	if err := os.RemoveAll(filepath.Dir(cfg.StateFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Attach("task-1", ns); !errors.Is(err, bridge.ErrState) {
		t.Fatalf("Attach with the state directory gone: %v, want ErrState", err)
	}
	if len(n.Tasks()) != 0 || hasLink(t, ns, bridge.TaskIfName) {
		t.Errorf("a failed save left an allocation %v or an eth0", n.Tasks())
	}
	if err := os.Mkdir(filepath.Dir(cfg.StateFile), 0o700); err != nil {
		t.Fatal(err)
	}
	p, err := n.Attach("task-1", ns)
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParsePrefix("172.18.0.2/16"); p != want {
		t.Errorf("Attach after the directory came back = %v, want %v (the cursor must not have moved)", p, want)
	}
	data, err := os.ReadFile(cfg.StateFile)
	if err != nil || !strings.Contains(string(data), `"task-1": "172.18.0.2"`) {
		t.Errorf("state file %q (%v) does not record task-1", data, err)
	}
}
