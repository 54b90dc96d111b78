package vxlan_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/shoalhq/shoal/overlay/vxlan"
	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"pgregory.net/rapid"
)

var testSubnet = netip.MustParsePrefix("10.20.0.0/24")

func TestBadInputNamesTheField(t *testing.T) {
	e := newEnv(t, 1)
	h := e.u.Hosts[0]
	m := e.mgrs[0]

	configs := []struct {
		name  string
		cfg   vxlan.Config
		field string
		want  error
	}{
		{"no VTEP", vxlan.Config{NetNS: h.NS}, "Config.VTEP", vxlan.ErrInvalid},
		{"IPv6 VTEP", vxlan.Config{NetNS: h.NS, VTEP: netip.MustParseAddr("fd00::1")}, "Config.VTEP", vxlan.ErrInvalid},
		{"MTU below 1280", vxlan.Config{NetNS: h.NS, VTEP: h.Addr, MTU: 1200}, "Config.MTU", vxlan.ErrInvalid},
		{"MTU too big for underlay", vxlan.Config{NetNS: h.NS, VTEP: h.Addr, MTU: 1460}, "Config.MTU", vxlan.ErrUnderlay},
		{"VTEP not on any interface", vxlan.Config{NetNS: h.NS, VTEP: netip.MustParseAddr("192.168.237.200")}, "Config.VTEP", vxlan.ErrUnderlay},
		{"missing underlay link", vxlan.Config{NetNS: h.NS, VTEP: h.Addr, UnderlayLink: "nosuch0"}, "Config.UnderlayLink", vxlan.ErrUnderlay},
		{"missing namespace", vxlan.Config{NetNS: "/run/netns/" + e.u.Prefix + "nosuch", VTEP: h.Addr}, "Config.NetNS", vxlan.ErrInvalid},
	}
	for _, c := range configs {
		t.Run("Config/"+c.name, func(t *testing.T) {
			m, err := vxlan.New(c.cfg)
			if err == nil {
				m.Close()
				t.Fatalf("New(%+v) = nil error", c.cfg)
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("New error %q: want %v naming %s", err, c.want, c.field)
			}
		})
	}

	networks := []struct {
		name  string
		n     vxlan.Network
		field string
	}{
		{"VNI 0", vxlan.Network{VNI: 0, Subnet: testSubnet}, "Network.VNI"},
		{"VNI 2^24", vxlan.Network{VNI: 1 << 24, Subnet: testSubnet}, "Network.VNI"},
		{"IPv6 subnet", vxlan.Network{VNI: 4096, Subnet: netip.MustParsePrefix("fd00:1::/64")}, "Network.Subnet"},
		{"no subnet", vxlan.Network{VNI: 4096}, "Network.Subnet"},
		{"gateway outside", vxlan.Network{VNI: 4096, Subnet: testSubnet, Gateway: netip.MustParseAddr("10.21.0.1")}, "Network.Gateway"},
		{"gateway is broadcast", vxlan.Network{VNI: 4096, Subnet: testSubnet, Gateway: netip.MustParseAddr("10.20.0.255")}, "Network.Gateway"},
		{"multicast bridge MAC", vxlan.Network{VNI: 4096, Subnet: testSubnet, BridgeMAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}}, "Network.BridgeMAC"},
	}
	for _, c := range networks {
		t.Run("Network/"+c.name, func(t *testing.T) {
			_, err := m.EnsureNetwork(c.n)
			if !errors.Is(err, vxlan.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("EnsureNetwork error %v: want ErrInvalid naming %s", err, c.field)
			}
		})
	}
	if vnis, err := m.Networks(); err != nil || len(vnis) != 0 {
		t.Fatalf("bad input created networks %v (err %v)", vnis, err)
	}

	if _, err := m.EnsureNetwork(vxlan.Network{VNI: 4096, Subnet: testSubnet}); err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("192.168.237.9")
	remoteCases := []struct {
		name    string
		remotes []vxlan.Remote
		field   string
	}{
		{"IPv6 addr", []vxlan.Remote{{Addr: netip.MustParseAddr("fd00::2"), MAC: vxlan.MACFor(netip.MustParseAddr("10.20.0.2")), VTEP: peer}}, "remotes[0].Addr"},
		{"no MAC", []vxlan.Remote{{Addr: netip.MustParseAddr("10.20.0.2"), VTEP: peer}}, "remotes[0].MAC"},
		{"no VTEP", []vxlan.Remote{{Addr: netip.MustParseAddr("10.20.0.2"), MAC: vxlan.MACFor(netip.MustParseAddr("10.20.0.2"))}}, "remotes[0].VTEP"},
		{"addr with two MACs", []vxlan.Remote{remote("10.20.0.2", peer), {Addr: netip.MustParseAddr("10.20.0.2"), MAC: vxlan.MACFor(netip.MustParseAddr("10.20.0.3")), VTEP: peer}}, "remotes[1].Addr"},
		{"MAC on two VTEPs", []vxlan.Remote{remote("10.20.0.2", peer), remote("10.20.0.2", netip.MustParseAddr("192.168.237.10"))}, "remotes[1].MAC"},
	}
	for _, c := range remoteCases {
		t.Run("Remotes/"+c.name, func(t *testing.T) {
			err := m.SetRemotes(4096, c.remotes)
			if !errors.Is(err, vxlan.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("SetRemotes error %v: want ErrInvalid naming %s", err, c.field)
			}
		})
	}
	if err := m.SetPeers(0, nil); !errors.Is(err, vxlan.ErrInvalid) || !strings.Contains(err.Error(), "vni") {
		t.Fatalf("SetPeers(0): %v, want ErrInvalid naming vni", err)
	}
	if err := m.SetPeers(4096, []netip.Addr{netip.MustParseAddr("fd00::9")}); !errors.Is(err, vxlan.ErrInvalid) || !strings.Contains(err.Error(), "vteps[0]") {
		t.Fatalf("SetPeers(IPv6): %v, want ErrInvalid naming vteps[0]", err)
	}
	if err := m.SetRemotes(4097, nil); !errors.Is(err, vxlan.ErrNetworkNotFound) {
		t.Fatalf("SetRemotes on a missing network: %v, want ErrNetworkNotFound", err)
	}
	if got := readForwarding(t, vxlantest.Handle(t, h.NS), 4096); !got.equal(expectForwarding(h.Addr, nil, nil)) {
		t.Fatalf("bad input changed forwarding: %+v", got)
	}
}

func TestEnsureNetworkCreatesAndIsIdempotent(t *testing.T) {
	e := newEnv(t, 1)
	h, m := e.u.Hosts[0], e.mgrs[0]
	nl := vxlantest.Handle(t, h.NS)
	n := vxlan.Network{VNI: 4096, Subnet: testSubnet, Gateway: netip.MustParseAddr("10.20.0.1")}

	br, err := m.EnsureNetwork(n)
	if err != nil {
		t.Fatal(err)
	}
	if br != "shbr4096" {
		t.Fatalf("bridge name %q, want shbr4096", br)
	}
	first := checkNetwork(t, nl, h, n, vxlan.BridgeMAC(n.VNI, h.Addr))
	if err := m.SetPeers(n.VNI, []netip.Addr{netip.MustParseAddr("192.168.237.7")}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.EnsureNetwork(n); err != nil {
		t.Fatalf("second EnsureNetwork: %v", err)
	}
	second := checkNetwork(t, nl, h, n, vxlan.BridgeMAC(n.VNI, h.Addr))
	if first != second {
		t.Fatalf("second EnsureNetwork recreated devices: indexes %v then %v", first, second)
	}
	if f := readForwarding(t, nl, n.VNI); len(f.flood) != 1 {
		t.Fatalf("second EnsureNetwork dropped forwarding entries: %+v", f)
	}

	// Converge in place: another gateway and a fixed bridge MAC.
	n.Gateway = netip.MustParseAddr("10.20.0.254")
	n.BridgeMAC = net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	if _, err := m.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	if third := checkNetwork(t, nl, h, n, n.BridgeMAC); third != first {
		t.Fatalf("changing gateway and MAC recreated devices")
	}
	n.Gateway = netip.Addr{}
	if _, err := m.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	checkNetwork(t, nl, h, n, n.BridgeMAC)

	// A device with creation-time settings that differ (here: Linux's
	// default port 8472) is replaced.
	vx := linkByName(t, nl, "shvx4096")
	if err := nl.LinkDel(vx); err != nil {
		t.Fatal(err)
	}
	wrong := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "shvx4096"}, VxlanId: 4096, Learning: true}
	if err := nl.LinkAdd(wrong); err != nil {
		t.Fatal(err)
	}
	if _, err := m.EnsureNetwork(n); err != nil {
		t.Fatal(err)
	}
	checkNetwork(t, nl, h, n, n.BridgeMAC)
}

type indexes struct{ bridge, vxlan int }

// checkNetwork reads the devices of n back and fails unless they have
// every setting the package promises.
func checkNetwork(t *testing.T, nl *netlink.Handle, h vxlantest.Host, n vxlan.Network, mac net.HardwareAddr) indexes {
	t.Helper()
	br := linkByName(t, nl, vxlan.BridgeName(n.VNI))
	if _, ok := br.(*netlink.Bridge); !ok {
		t.Fatalf("%s is a %s", br.Attrs().Name, br.Type())
	}
	vl := linkByName(t, nl, vxlan.VxlanName(n.VNI))
	vx, ok := vl.(*netlink.Vxlan)
	if !ok {
		t.Fatalf("%s is a %s", vl.Attrs().Name, vl.Type())
	}
	eth := linkByName(t, nl, h.Link)
	src, _ := netip.AddrFromSlice(vx.SrcAddr)
	switch {
	case vx.VxlanId != int(n.VNI):
		t.Errorf("VNI %d, want %d", vx.VxlanId, n.VNI)
	case vx.Port != vxlan.Port:
		t.Errorf("port %d, want %d", vx.Port, vxlan.Port)
	case vx.Learning || !vx.Proxy:
		t.Errorf("learning %v proxy %v, want false true", vx.Learning, vx.Proxy)
	case src.Unmap() != h.Addr:
		t.Errorf("source %v, want %v", src, h.Addr)
	case vx.VtepDevIndex != eth.Attrs().Index:
		t.Errorf("underlay index %d, want %d", vx.VtepDevIndex, eth.Attrs().Index)
	case vx.MTU != vxlan.DefaultMTU || br.Attrs().MTU != vxlan.DefaultMTU:
		t.Errorf("MTU vxlan %d bridge %d, want %d", vx.MTU, br.Attrs().MTU, vxlan.DefaultMTU)
	case vx.MasterIndex != br.Attrs().Index:
		t.Errorf("vxlan master %d, want bridge %d", vx.MasterIndex, br.Attrs().Index)
	case vx.Flags&net.FlagUp == 0 || br.Attrs().Flags&net.FlagUp == 0:
		t.Errorf("devices not up: vxlan %v bridge %v", vx.Flags, br.Attrs().Flags)
	case br.Attrs().HardwareAddr.String() != mac.String():
		t.Errorf("bridge MAC %s, want %s", br.Attrs().HardwareAddr, mac)
	}
	addrs, err := nl.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
	}
	var want []string
	if n.Gateway.IsValid() {
		want = []string{netip.PrefixFrom(n.Gateway, n.Subnet.Bits()).String()}
	}
	if !slices.Equal(got, want) {
		t.Errorf("bridge addresses %v, want %v", got, want)
	}
	return indexes{br.Attrs().Index, vx.Attrs().Index}
}

func TestSetPeersAndRemotesConverge(t *testing.T) {
	e := newEnv(t, 1)
	h, m := e.u.Hosts[0], e.mgrs[0]
	nl := vxlantest.Handle(t, h.NS)
	if _, err := m.EnsureNetwork(vxlan.Network{VNI: 4096, Subnet: testSubnet}); err != nil {
		t.Fatal(err)
	}
	p1, p2, p3 := netip.MustParseAddr("192.168.237.11"), netip.MustParseAddr("192.168.237.12"), netip.MustParseAddr("192.168.237.13")
	step := func(name string, peers []netip.Addr, remotes []vxlan.Remote) forwarding {
		t.Helper()
		if err := m.SetPeers(4096, peers); err != nil {
			t.Fatalf("%s: SetPeers: %v", name, err)
		}
		if err := m.SetRemotes(4096, remotes); err != nil {
			t.Fatalf("%s: SetRemotes: %v", name, err)
		}
		got, want := readForwarding(t, nl, 4096), expectForwarding(h.Addr, peers, remotes)
		if !got.equal(want) {
			t.Fatalf("%s: kernel holds %+v, want %+v", name, got, want)
		}
		return got
	}
	all := []vxlan.Remote{remote("10.20.0.2", p1), remote("10.20.0.3", p2), remote("10.20.0.4", p3)}
	// Our own VTEP is ignored, in both lists.
	step("initial", []netip.Addr{p1, p2, h.Addr, p1}, append(all, remote("10.20.0.9", h.Addr)))
	step("same again", []netip.Addr{p1, p2}, all)
	got := step("one remote removed", []netip.Addr{p1, p2}, all[:2])
	if _, ok := got.neigh[all[2].Addr]; ok {
		t.Fatalf("neighbour %v survived its removal", all[2].Addr)
	}
	if _, ok := got.fdb[all[2].MAC.String()]; ok {
		t.Fatalf("FDB entry %s survived its removal", all[2].MAC)
	}
	moved := []vxlan.Remote{all[0], remote("10.20.0.3", p3)}
	step("one remote moved to another host", []netip.Addr{p3}, moved)
	step("everything removed", nil, nil)
}

func TestNetworksAndRemoveAfterRestart(t *testing.T) {
	e := newEnv(t, 1)
	h, m := e.u.Hosts[0], e.mgrs[0]
	nl := vxlantest.Handle(t, h.NS)
	for _, vni := range []uint32{4097, 4096, vxlan.MaxVNI} {
		if _, err := m.EnsureNetwork(vxlan.Network{VNI: vni, Subnet: testSubnet}); err != nil {
			t.Fatal(err)
		}
	}
	// A half-made network (bridge only), as a crash would leave.
	if err := nl.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "shbr77"}}); err != nil {
		t.Fatal(err)
	}
	// Names that are not ours.
	if err := nl.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "shbr0077"}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Networks(); !errors.Is(err, vxlan.ErrClosed) {
		t.Fatalf("Networks after Close: %v, want ErrClosed", err)
	}

	restarted := newManager(t, h)
	vnis, err := restarted.Networks()
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint32{77, 4096, 4097, vxlan.MaxVNI}; !slices.Equal(vnis, want) {
		t.Fatalf("Networks() = %v, want %v", vnis, want)
	}
	for _, vni := range []uint32{4097, 77, 77} {
		if err := restarted.RemoveNetwork(vni); err != nil {
			t.Fatalf("RemoveNetwork(%d): %v", vni, err)
		}
	}
	for _, name := range []string{"shbr4097", "shvx4097", "shbr77"} {
		if _, err := nl.LinkByName(name); err == nil {
			t.Errorf("%s still exists after RemoveNetwork", name)
		}
	}
	if vnis, _ := restarted.Networks(); !slices.Equal(vnis, []uint32{4096, vxlan.MaxVNI}) {
		t.Fatalf("Networks() after removal = %v", vnis)
	}
	if err := restarted.RemoveNetwork(0); !errors.Is(err, vxlan.ErrInvalid) {
		t.Fatalf("RemoveNetwork(0) = %v, want ErrInvalid", err)
	}
	if err := restarted.SetPeers(4097, nil); !errors.Is(err, vxlan.ErrNetworkNotFound) {
		t.Fatalf("SetPeers on a removed network = %v, want ErrNetworkNotFound", err)
	}
}

func TestFloodEntriesAreBridgeFDBNotARP(t *testing.T) {
	e := newEnv(t, 1)
	h, m := e.u.Hosts[0], e.mgrs[0]
	nl := vxlantest.Handle(t, h.NS)
	if _, err := m.EnsureNetwork(vxlan.Network{VNI: 9, Subnet: testSubnet}); err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("192.168.237.40")
	if err := m.SetPeers(9, []netip.Addr{peer}); err != nil {
		t.Fatal(err)
	}
	vx := linkByName(t, nl, "shvx9")
	arp, err := nl.NeighList(vx.Attrs().Index, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	if len(arp) != 0 {
		t.Fatalf("flood entry became an ARP entry: %+v", arp)
	}
	if f := readForwarding(t, nl, 9); !slices.Equal(f.flood, []netip.Addr{peer}) {
		t.Fatalf("flood list %v, want [%v]", f.flood, peer)
	}
}

// Property: whatever sequence of peer and remote lists is applied, the
// kernel then holds exactly the last ones (minus this host's own VTEP).
func TestSetRemotesLeavesExactlyTheListProperty(t *testing.T) {
	e := newEnv(t, 1)
	h, m := e.u.Hosts[0], e.mgrs[0]
	nl := vxlantest.Handle(t, h.NS)
	if _, err := m.EnsureNetwork(vxlan.Network{VNI: 300, Subnet: testSubnet}); err != nil {
		t.Fatal(err)
	}
	vteps := []netip.Addr{h.Addr}
	for i := 11; i < 15; i++ {
		vteps = append(vteps, netip.AddrFrom4([4]byte{192, 168, 237, byte(i)}))
	}
	rapid.Check(t, func(rt *rapid.T) {
		for step := range rapid.IntRange(1, 4).Draw(rt, "steps") {
			peers := rapid.SliceOfN(rapid.SampledFrom(vteps), 0, 5).Draw(rt, fmt.Sprint("peers", step))
			hosts := rapid.SliceOfNDistinct(rapid.IntRange(2, 40), 0, 12, rapid.ID[int]).Draw(rt, fmt.Sprint("endpoints", step))
			var remotes []vxlan.Remote
			for _, host := range hosts {
				v := rapid.SampledFrom(vteps).Draw(rt, fmt.Sprint("vtep", step, host))
				remotes = append(remotes, remote(fmt.Sprintf("10.20.0.%d", host), v))
			}
			if err := m.SetPeers(300, peers); err != nil {
				rt.Fatalf("SetPeers: %v", err)
			}
			if err := m.SetRemotes(300, remotes); err != nil {
				rt.Fatalf("SetRemotes: %v", err)
			}
			if got, want := readForwarding(t, nl, 300), expectForwarding(h.Addr, peers, remotes); !got.equal(want) {
				rt.Fatalf("kernel holds %+v, want %+v", got, want)
			}
		}
	})
}
