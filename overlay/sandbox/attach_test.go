package sandbox_test

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/shoalhq/shoal/overlay/sandbox"
	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
	"github.com/vishvananda/netlink"
	"pgregory.net/rapid"
)

// host is a namespace with an MTU-1450 bridge "shbr7", as vxlan's
// EnsureNetwork leaves it, plus netlink handles for reading back.
type host struct {
	prefix string
	ns     string
	nl     *netlink.Handle
}

func newHost(t testing.TB) *host {
	t.Helper()
	prefix := vxlantest.Prefix("osb")
	h := &host{prefix: prefix, ns: vxlantest.NewNS(t, prefix+"host")}
	h.nl = vxlantest.Handle(t, h.ns)
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "shbr7", HardwareAddr: net.HardwareAddr{2, 0x53, 0, 0, 0, 7}}}
	if err := h.nl.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	if err := h.nl.LinkSetMTU(br, 1450); err != nil {
		t.Fatal(err)
	}
	if err := h.nl.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *host) attachment(t testing.TB, task, addr string) sandbox.Attachment {
	t.Helper()
	p := netip.MustParsePrefix(addr)
	a4 := p.Addr().As4()
	return sandbox.Attachment{
		HostNS:  h.ns,
		TaskNS:  vxlantest.NewNS(t, h.prefix+task),
		Bridge:  "shbr7",
		HostIf:  sandbox.IfNameFor(task, "net7"),
		IfName:  "eth0",
		Addr:    p,
		MAC:     net.HardwareAddr{2, 0x42, a4[0], a4[1], a4[2], a4[3]},
		Gateway: netip.MustParseAddr("10.7.0.1"),
	}
}

// state is an attachment as read back from the kernel.
type state struct {
	hostIndex, taskIndex int
	master               string
	hostMTU, taskMTU     int
	mac                  string
	addrs                []string
	defaultVia           string
	hostUp, taskUp, loUp bool
}

func readState(t testing.TB, h *host, a sandbox.Attachment) state {
	t.Helper()
	task := vxlantest.Handle(t, a.TaskNS)
	he, err := h.nl.LinkByName(a.HostIf)
	if err != nil {
		t.Fatalf("host end %s: %v", a.HostIf, err)
	}
	te, err := task.LinkByName(a.IfName)
	if err != nil {
		t.Fatalf("task end %s: %v", a.IfName, err)
	}
	lo, err := task.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	s := state{
		hostIndex: he.Attrs().Index, taskIndex: te.Attrs().Index,
		hostMTU: he.Attrs().MTU, taskMTU: te.Attrs().MTU,
		mac:    te.Attrs().HardwareAddr.String(),
		hostUp: he.Attrs().Flags&net.FlagUp != 0, taskUp: te.Attrs().Flags&net.FlagUp != 0,
		loUp: lo.Attrs().Flags&net.FlagUp != 0,
	}
	if m, err := h.nl.LinkByIndex(he.Attrs().MasterIndex); err == nil {
		s.master = m.Attrs().Name
	}
	addrs, err := task.AddrList(te, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range addrs {
		s.addrs = append(s.addrs, ad.IPNet.String())
	}
	routes, err := task.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			s.defaultVia = r.Gw.String()
		} else if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			s.defaultVia = r.Gw.String()
		}
	}
	return s
}

func wantState(a sandbox.Attachment, mtu int) state {
	s := state{
		master: a.Bridge, hostMTU: mtu, taskMTU: mtu, mac: a.MAC.String(),
		addrs: []string{a.Addr.String()}, hostUp: true, taskUp: true, loUp: true,
	}
	if a.Gateway.IsValid() {
		s.defaultVia = a.Gateway.String()
	}
	return s
}

func (s state) sameConfig(o state) bool {
	s.hostIndex, s.taskIndex, o.hostIndex, o.taskIndex = 0, 0, 0, 0
	return s.master == o.master && s.hostMTU == o.hostMTU && s.taskMTU == o.taskMTU &&
		s.mac == o.mac && slices.Equal(s.addrs, o.addrs) && s.defaultVia == o.defaultVia &&
		s.hostUp == o.hostUp && s.taskUp == o.taskUp && s.loUp == o.loUp
}

func TestAttachIsIdempotentAndConverges(t *testing.T) {
	vxlantest.RequireRoot(t)
	h := newHost(t)
	a := h.attachment(t, "t1", "10.7.0.2/24")
	if err := sandbox.Attach(a); err != nil {
		t.Fatal(err)
	}
	first := readState(t, h, a)
	if want := wantState(a, 1450); !first.sameConfig(want) {
		t.Fatalf("after Attach: %+v, want %+v", first, want)
	}
	if err := sandbox.Attach(a); err != nil {
		t.Fatalf("second Attach: %v", err)
	}
	if second := readState(t, h, a); !second.sameConfig(first) || second.hostIndex != first.hostIndex || second.taskIndex != first.taskIndex {
		t.Fatalf("second Attach changed state: %+v then %+v", first, second)
	}

	// Changed address, MAC, MTU and no gateway: converged in place.
	b := a
	b.Addr = netip.MustParsePrefix("10.7.0.3/24")
	b.MAC = net.HardwareAddr{2, 0x42, 10, 7, 0, 3}
	b.Gateway = netip.Addr{}
	b.MTU = 1400
	if err := sandbox.Attach(b); err != nil {
		t.Fatal(err)
	}
	got := readState(t, h, b)
	if want := wantState(b, 1400); !got.sameConfig(want) {
		t.Fatalf("after converging Attach: %+v, want %+v", got, want)
	}
	if got.hostIndex != first.hostIndex {
		t.Fatalf("converging Attach recreated the veth")
	}

	// Renamed inside the task: the old pair is replaced.
	c := b
	c.IfName = "eth1"
	c.Gateway = a.Gateway
	if err := sandbox.Attach(c); err != nil {
		t.Fatal(err)
	}
	if got := readState(t, h, c); !got.sameConfig(wantState(c, 1400)) {
		t.Fatalf("after renaming Attach: %+v", got)
	}
	if _, err := vxlantest.Handle(t, c.TaskNS).LinkByName("eth0"); err == nil {
		t.Fatal("old eth0 survived the new attachment")
	}

	// The bridge keeps its own MAC with a port whatever that port's MAC.
	br, err := h.nl.LinkByName("shbr7")
	if err != nil {
		t.Fatal(err)
	}
	if br.Attrs().HardwareAddr.String() != "02:53:00:00:00:07" {
		t.Fatalf("bridge took MAC %s", br.Attrs().HardwareAddr)
	}
}

func TestAttachReplacesLeftoverAndRefusesForeignNames(t *testing.T) {
	vxlantest.RequireRoot(t)
	h := newHost(t)
	a := h.attachment(t, "t1", "10.7.0.2/24")
	// A crash left HostIf with its peer still in the host namespace.
	left := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a.HostIf}, PeerName: "shtmp0"}
	if err := h.nl.LinkAdd(left); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.Attach(a); err != nil {
		t.Fatalf("Attach over a leftover: %v", err)
	}
	if got := readState(t, h, a); !got.sameConfig(wantState(a, 1450)) {
		t.Fatalf("after Attach over a leftover: %+v", got)
	}
	if _, err := h.nl.LinkByName("shtmp0"); err == nil {
		t.Fatal("leftover peer survived")
	}

	// IfName taken in the task namespace by a veth that is not our peer.
	b := h.attachment(t, "t2", "10.7.0.5/24")
	if err := vxlantest.Handle(t, b.TaskNS).LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "foreign0"}); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.Attach(b); !errors.Is(err, sandbox.ErrNameInUse) || !strings.Contains(err.Error(), "Attachment.IfName") {
		t.Fatalf("Attach with eth0 taken: %v, want ErrNameInUse naming Attachment.IfName", err)
	}
	if _, err := h.nl.LinkByName(b.HostIf); err == nil {
		t.Fatal("a refused Attach left its host veth")
	}

	// Detach refuses to delete what is not a veth.
	if err := h.nl.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "shvbridge"}}); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.Detach(h.ns, "shvbridge"); !errors.Is(err, sandbox.ErrNameInUse) {
		t.Fatalf("Detach of a bridge: %v, want ErrNameInUse", err)
	}
	if _, err := h.nl.LinkByName("shvbridge"); err != nil {
		t.Fatal("Detach deleted a non-veth")
	}
}

func TestDetachAndListAfterRestart(t *testing.T) {
	vxlantest.RequireRoot(t)
	h := newHost(t)
	a := h.attachment(t, "t1", "10.7.0.2/24")
	b := h.attachment(t, "t2", "10.7.0.3/24")
	for _, x := range []sandbox.Attachment{a, b} {
		if err := sandbox.Attach(x); err != nil {
			t.Fatal(err)
		}
	}
	// A veth that is not ours does not show up.
	if err := h.nl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "other0"}, PeerName: "other1"}); err != nil {
		t.Fatal(err)
	}
	names, err := sandbox.List(h.ns)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{a.HostIf, b.HostIf}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("List = %v, want %v", names, want)
	}
	for range 2 {
		if err := sandbox.Detach(h.ns, a.HostIf); err != nil {
			t.Fatalf("Detach: %v", err)
		}
	}
	if _, err := h.nl.LinkByName(a.HostIf); err == nil {
		t.Fatal("host end survived Detach")
	}
	if _, err := vxlantest.Handle(t, a.TaskNS).LinkByName("eth0"); err == nil {
		t.Fatal("task end survived Detach")
	}
	if names, _ := sandbox.List(h.ns); !slices.Equal(names, []string{b.HostIf}) {
		t.Fatalf("List after Detach = %v, want [%s]", names, b.HostIf)
	}
}

func TestAttachBadInputNamesTheField(t *testing.T) {
	vxlantest.RequireRoot(t)
	h := newHost(t)
	good := h.attachment(t, "t1", "10.7.0.2/24")
	cases := []struct {
		name  string
		edit  func(*sandbox.Attachment)
		want  error
		field string
	}{
		{"MTU below 1280", func(a *sandbox.Attachment) { a.MTU = 1000 }, sandbox.ErrInvalid, "Attachment.MTU"},
		{"MTU above the bridge's", func(a *sandbox.Attachment) { a.MTU = 1500 }, sandbox.ErrInvalid, "Attachment.MTU"},
		{"missing bridge", func(a *sandbox.Attachment) { a.Bridge = "shbr8" }, sandbox.ErrBridgeNotFound, "Attachment.Bridge"},
		{"no bridge", func(a *sandbox.Attachment) { a.Bridge = "" }, sandbox.ErrInvalid, "Attachment.Bridge"},
		{"no task namespace", func(a *sandbox.Attachment) { a.TaskNS = "" }, sandbox.ErrInvalid, "Attachment.TaskNS"},
		{"missing task namespace", func(a *sandbox.Attachment) { a.TaskNS = "/run/netns/" + h.prefix + "nosuch" }, sandbox.ErrInvalid, "Attachment.TaskNS"},
		{"IPv6 address", func(a *sandbox.Attachment) { a.Addr = netip.MustParsePrefix("fd00::2/64") }, sandbox.ErrInvalid, "Attachment.Addr"},
		{"host name without prefix", func(a *sandbox.Attachment) { a.HostIf = "veth0" }, sandbox.ErrInvalid, "Attachment.HostIf"},
		{"host name too long", func(a *sandbox.Attachment) { a.HostIf = "shv0123456789abc" }, sandbox.ErrInvalid, "Attachment.HostIf"},
		{"task name lo", func(a *sandbox.Attachment) { a.IfName = "lo" }, sandbox.ErrInvalid, "Attachment.IfName"},
		{"multicast MAC", func(a *sandbox.Attachment) { a.MAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }, sandbox.ErrInvalid, "Attachment.MAC"},
		{"gateway outside", func(a *sandbox.Attachment) { a.Gateway = netip.MustParseAddr("10.8.0.1") }, sandbox.ErrInvalid, "Attachment.Gateway"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := good
			c.edit(&a)
			err := sandbox.Attach(a)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("Attach: %v, want %v naming %s", err, c.want, c.field)
			}
		})
	}
	if names, _ := sandbox.List(h.ns); len(names) != 0 {
		t.Fatalf("bad input left veths %v", names)
	}
	if err := sandbox.Detach(h.ns, "eth0"); !errors.Is(err, sandbox.ErrInvalid) || !strings.Contains(err.Error(), "hostIf") {
		t.Fatalf("Detach(eth0): %v, want ErrInvalid naming hostIf", err)
	}
}

func TestIfNameForProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		task, network := rapid.String().Draw(t, "task"), rapid.String().Draw(t, "network")
		name := sandbox.IfNameFor(task, network)
		if len(name) != 15 || !strings.HasPrefix(name, sandbox.HostIfPrefix) {
			t.Fatalf("IfNameFor(%q, %q) = %q: want 15 characters starting with %q", task, network, name, sandbox.HostIfPrefix)
		}
		if strings.Trim(name[3:], "0123456789abcdef") != "" {
			t.Fatalf("IfNameFor = %q: suffix is not hex (a vxlan name shvx… must never collide)", name)
		}
		if sandbox.IfNameFor(task, network) != name {
			t.Fatal("IfNameFor is not deterministic")
		}
		if other := rapid.String().Draw(t, "other"); other != network && sandbox.IfNameFor(task, other) == name {
			t.Fatalf("IfNameFor(%q, %q) collides with network %q", task, network, other)
		}
	})
}
