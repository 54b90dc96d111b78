package ingress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/shoalhq/shoal/overlay/vxlan"
	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
)

// newTaskNS makes a namespace with an interface ifName up at addr (with
// its prefix), standing for a task's ingress interface: one end of a veth
// pair whose other end (shpeer) stays in the namespace, up.
func newTaskNS(t *testing.T, role, ifName string, addr netip.Prefix) string {
	t.Helper()
	ns := newNS(t, role)
	h := vxlantest.Handle(t, ns)
	d := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifName}, PeerName: "shpeer"}
	if err := h.LinkAdd(d); err != nil {
		t.Fatalf("add %s: %v", ifName, err)
	}
	peer, err := h.LinkByName("shpeer")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		t.Fatal(err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}}
	if err := h.AddrAdd(d, a); err != nil {
		t.Fatalf("address %s: %v", ifName, err)
	}
	if err := h.LinkSetUp(d); err != nil {
		t.Fatalf("%s up: %v", ifName, err)
	}
	return ns
}

// gw is gateway k at 10.255.0.k+1 with the bridge MAC of a made-up VTEP.
func gw(k int) Gateway {
	addr := netip.AddrFrom4([4]byte{10, 255, 0, byte(k + 1)})
	return Gateway{Index: k, Addr: addr, MAC: vxlan.BridgeMAC(4096, netip.AddrFrom4([4]byte{192, 168, 237, byte(k)}))}
}

// kernelState is everything ApplyTask owns in a namespace, printed: its
// rules, routes, table rules and map elements.
func kernelState(t *testing.T, ns string) string {
	t.Helper()
	h := vxlantest.Handle(t, ns)
	rt, err := readRouting(h)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range rt.rules {
		lines = append(lines, "rule "+shapeOfRule(r).String())
	}
	for _, r := range rt.routes {
		lines = append(lines, "route "+shapeOfRoute(r).String())
	}
	s, err := openNft(ns, "ns")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ifName, macs, present, err := readTaskTable(s.Conn)
	if err != nil {
		t.Fatal(err)
	}
	lines = append(lines, fmt.Sprintf("table %v %s", present, ifName))
	for k, m := range macs {
		lines = append(lines, fmt.Sprintf("map %d %s", k, m))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// foreignState prints every rule and route outside the ranges ApplyTask
// owns (main, local and default tables included), which it must never
// touch.
func foreignState(t *testing.T, ns string) string {
	t.Helper()
	h := vxlantest.Handle(t, ns)
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range rules {
		if !isOurPref(r.Priority) {
			lines = append(lines, r.String())
		}
	}
	for _, r := range routes {
		if !isOurTable(r.Table) {
			lines = append(lines, fmt.Sprintf("%s table %d", r, r.Table))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func applyTaskAndCheck(t *testing.T, ns string, side TaskSide) {
	t.Helper()
	if err := ApplyTask(ns, side); err != nil {
		t.Fatalf("ApplyTask(%+v): %v", side, err)
	}
	got, err := ReadTask(ns)
	if err != nil {
		t.Fatalf("ReadTask after ApplyTask(%+v): %v", side, err)
	}
	if want := side.normalize(); !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadTask after ApplyTask:\n got %+v\nwant %+v", got, want)
	}
}

func TestApplyTaskIsIdempotentAndConverges(t *testing.T) {
	ns := newTaskNS(t, "tk", "eth1", netip.MustParsePrefix("10.255.0.50/24"))
	foreign := foreignState(t, ns)
	if !strings.Contains(foreign, "10.255.0.0/24") || !strings.Contains(foreign, "table 255") {
		t.Fatalf("the test namespace lacks its main and local routes:\n%s", foreign)
	}
	// Gateways 153..155 would be tables 253..255 (default, main, local)
	// if numbered 100+k.
	three := TaskSide{IfName: "eth1", Gateways: []Gateway{gw(3), gw(1), gw(12), gw(154), gw(155)}, UDPPorts: []uint16{81, 53}}
	applyTaskAndCheck(t, ns, three)
	if got := foreignState(t, ns); got != foreign {
		t.Fatalf("ApplyTask changed rules or routes it does not own:\n%s\nthen\n%s", foreign, got)
	}
	before := kernelState(t, ns)
	applyTaskAndCheck(t, ns, three)
	if after := kernelState(t, ns); after != before {
		t.Fatalf("ApplyTask twice changed the kernel state:\n%s\nthen\n%s", before, after)
	}
	for _, want := range []string{"rule pref 112 fwmark 0x10c/0xfff lookup 268\n", "route default via 10.255.0.13 dev #3 table 268\n",
		"map 12 " + gw(12).MAC.String(), "rule pref 400 ipproto udp sport 53 lookup 256\n", "rule pref 400 ipproto udp sport 81 lookup 256\n",
		"route default dev #3 table 256\n"} {
		if !strings.Contains(before, want) {
			t.Errorf("kernel state lacks %q:\n%s", want, before)
		}
	}

	// Gateway 12 leaves, gateway 1 moves to another address, port 53 goes.
	moved := gw(1)
	moved.Addr = netip.MustParseAddr("10.255.0.99")
	two := TaskSide{IfName: "eth1", Gateways: []Gateway{gw(3), moved}, UDPPorts: []uint16{81}}
	applyTaskAndCheck(t, ns, two)
	state := kernelState(t, ns)
	for _, gone := range []string{"pref 112", "table 268", "map 12", "sport 53", "10.255.0.2 "} {
		if strings.Contains(state, gone) {
			t.Errorf("after removing it, the kernel state still holds %q:\n%s", gone, state)
		}
	}

	// No gateways and no ports: only the table and its empty map remain.
	applyTaskAndCheck(t, ns, TaskSide{IfName: "eth1"})
	if state := kernelState(t, ns); state != "table true eth1" {
		t.Fatalf("with no gateways the kernel holds:\n%s", state)
	}

	applyTaskAndCheck(t, ns, three)
	if err := RemoveTask(ns); err != nil {
		t.Fatal(err)
	}
	if state := kernelState(t, ns); state != "table false " {
		t.Fatalf("after RemoveTask the kernel holds:\n%s", state)
	}
	if err := RemoveTask(ns); err != nil {
		t.Fatalf("RemoveTask twice: %v", err)
	}
	if got := foreignState(t, ns); got != foreign {
		t.Fatalf("ApplyTask and RemoveTask changed rules or routes they do not own:\n%s\nthen\n%s", foreign, got)
	}
	if got, err := ReadTask(ns); err != nil || !reflect.DeepEqual(got, TaskSide{}) {
		t.Fatalf("ReadTask after RemoveTask: %+v, %v", got, err)
	}
}

// TestApplyTaskRepairsLeftovers: stale rules and routes in the ranges the
// package owns, and a damaged table, are replaced by one ApplyTask.
func TestApplyTaskRepairsLeftovers(t *testing.T) {
	ns := newTaskNS(t, "tl", "eth0", netip.MustParsePrefix("10.255.0.50/24"))
	side := TaskSide{IfName: "eth0", Gateways: []Gateway{gw(1), gw(2)}, UDPPorts: []uint16{81}}
	applyTaskAndCheck(t, ns, side)
	h := vxlantest.Handle(t, ns)
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	// A crashed agent's leftovers: gateway 7's rule and route, a rule at
	// gateway 2's priority with another mark, a UDP rule for a port gone.
	for _, r := range []ruleShape{gatewayRule(7), {pref: gatewayPref(2), table: gatewayTable(2), mark: 0x999, mask: markRuleMask}, udpRule(99)} {
		if err := h.RuleAdd(r.rule()); err != nil {
			t.Fatalf("add leftover rule %+v: %v", r, err)
		}
	}
	if err := h.RouteReplace(routeShape{table: gatewayTable(7), gw: gw(7).Addr, link: eth0.Attrs().Index}.route()); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTask(ns); !errors.Is(err, ErrUnrecognized) {
		t.Fatalf("ReadTask with leftovers: %v, want ErrUnrecognized", err)
	}
	applyTaskAndCheck(t, ns, side)
}

func TestApplyTaskRefusesInvalidInput(t *testing.T) {
	ns := newTaskNS(t, "ti", "eth0", netip.MustParsePrefix("10.255.0.50/24"))
	good := TaskSide{IfName: "eth0", Gateways: []Gateway{gw(1)}, UDPPorts: []uint16{81}}
	applyTaskAndCheck(t, ns, good)
	before := kernelState(t, ns)
	badMAC := gw(2)
	badMAC.MAC = net.HardwareAddr{1, 2, 3, 4, 5, 6} // multicast
	sameMAC := gw(2)
	sameMAC.MAC = gw(1).MAC
	for _, c := range []struct {
		name string
		side TaskSide
		want error
	}{
		{"no interface name", TaskSide{}, ErrInvalidInterface},
		{"lo", TaskSide{IfName: "lo"}, ErrInvalidInterface},
		{"missing interface", TaskSide{IfName: "eth9"}, ErrInvalidInterface},
		{"index 0", TaskSide{IfName: "eth0", Gateways: []Gateway{gw(0)}}, ErrInvalidGateway},
		{"index 256", TaskSide{IfName: "eth0", Gateways: []Gateway{{Index: 256, Addr: gw(1).Addr, MAC: gw(1).MAC}}}, ErrInvalidGateway},
		{"IPv6 gateway", TaskSide{IfName: "eth0", Gateways: []Gateway{{Index: 1, Addr: netip.MustParseAddr("fd00::1"), MAC: gw(1).MAC}}}, ErrInvalidGateway},
		{"multicast MAC", TaskSide{IfName: "eth0", Gateways: []Gateway{badMAC}}, ErrInvalidGateway},
		{"same index twice", TaskSide{IfName: "eth0", Gateways: []Gateway{gw(1), {Index: 1, Addr: gw(2).Addr, MAC: gw(2).MAC}}}, ErrDuplicateGateway},
		{"same MAC twice", TaskSide{IfName: "eth0", Gateways: []Gateway{gw(1), sameMAC}}, ErrDuplicateGateway},
		{"port 0", TaskSide{IfName: "eth0", UDPPorts: []uint16{0}}, ErrInvalidPort},
		{"port twice", TaskSide{IfName: "eth0", UDPPorts: []uint16{53, 53}}, ErrDuplicatePort},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := ApplyTask(ns, c.side); !errors.Is(err, c.want) {
				t.Fatalf("ApplyTask: %v, want %v", err, c.want)
			}
			if after := kernelState(t, ns); after != before {
				t.Fatalf("a refused ApplyTask changed the kernel state:\n%s\nthen\n%s", before, after)
			}
		})
	}
	if err := ApplyTask("/nonexistent/ns", good); !errors.Is(err, ErrNamespace) {
		t.Fatalf("ApplyTask in a missing namespace: %v, want ErrNamespace", err)
	}
}
