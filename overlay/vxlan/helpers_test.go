package vxlan_test

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/shoalhq/shoal/overlay/vxlan"
	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// env is N hosts on one underlay, each with a Manager.
type env struct {
	u    *vxlantest.Underlay
	mgrs []*vxlan.Manager
}

func newEnv(t testing.TB, n int) *env {
	t.Helper()
	u := vxlantest.NewUnderlay(t, vxlantest.Prefix("ovx"), n)
	e := &env{u: u}
	for _, h := range u.Hosts {
		e.mgrs = append(e.mgrs, newManager(t, h))
	}
	return e
}

func newManager(t testing.TB, h vxlantest.Host) *vxlan.Manager {
	t.Helper()
	m, err := vxlan.New(vxlan.Config{NetNS: h.NS, VTEP: h.Addr})
	if err != nil {
		t.Fatalf("vxlan.New on %s: %v", h.Name, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// forwarding is what the kernel holds on one VXLAN device.
type forwarding struct {
	flood []netip.Addr            // all-zero-MAC entries' VTEPs, sorted
	fdb   map[string][]netip.Addr // MAC → VTEPs
	neigh map[netip.Addr]string   // permanent neighbours: addr → MAC
}

func readForwarding(t testing.TB, h *netlink.Handle, vni uint32) forwarding {
	t.Helper()
	vx, err := h.LinkByName(vxlan.VxlanName(vni))
	if err != nil {
		t.Fatalf("look up %s: %v", vxlan.VxlanName(vni), err)
	}
	f := forwarding{fdb: map[string][]netip.Addr{}, neigh: map[netip.Addr]string{}}
	fdb, err := h.NeighList(vx.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		t.Fatalf("list FDB: %v", err)
	}
	for _, n := range fdb {
		if n.Flags&netlink.NTF_SELF == 0 || n.Flags&netlink.NTF_MASTER != 0 {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP)
		if bytes.Equal(n.HardwareAddr, net.HardwareAddr{0, 0, 0, 0, 0, 0}) {
			f.flood = append(f.flood, ip.Unmap())
			continue
		}
		f.fdb[n.HardwareAddr.String()] = append(f.fdb[n.HardwareAddr.String()], ip.Unmap())
	}
	slices.SortFunc(f.flood, netip.Addr.Compare)
	neighs, err := h.NeighList(vx.Attrs().Index, unix.AF_INET)
	if err != nil {
		t.Fatalf("list neighbours: %v", err)
	}
	for _, n := range neighs {
		if n.State&netlink.NUD_PERMANENT != 0 {
			ip, _ := netip.AddrFromSlice(n.IP)
			f.neigh[ip.Unmap()] = n.HardwareAddr.String()
		}
	}
	return f
}

// expectForwarding is what SetPeers(peers) and SetRemotes(remotes) must
// leave on the host with VTEP self.
func expectForwarding(self netip.Addr, peers []netip.Addr, remotes []vxlan.Remote) forwarding {
	f := forwarding{fdb: map[string][]netip.Addr{}, neigh: map[netip.Addr]string{}}
	for _, p := range peers {
		if p != self && !slices.Contains(f.flood, p) {
			f.flood = append(f.flood, p)
		}
	}
	slices.SortFunc(f.flood, netip.Addr.Compare)
	for _, r := range remotes {
		if r.VTEP == self {
			continue
		}
		f.fdb[r.MAC.String()] = []netip.Addr{r.VTEP}
		f.neigh[r.Addr] = r.MAC.String()
	}
	return f
}

func (f forwarding) equal(g forwarding) bool {
	if !slices.Equal(f.flood, g.flood) || len(f.fdb) != len(g.fdb) || len(f.neigh) != len(g.neigh) {
		return false
	}
	for k, v := range f.fdb {
		if !slices.Equal(v, g.fdb[k]) {
			return false
		}
	}
	for k, v := range f.neigh {
		if g.neigh[k] != v {
			return false
		}
	}
	return true
}

func remote(addr string, vtep netip.Addr) vxlan.Remote {
	a := netip.MustParseAddr(addr)
	return vxlan.Remote{Addr: a, MAC: vxlan.MACFor(a), VTEP: vtep}
}

func linkByName(t testing.TB, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("look up %s: %v", name, err)
	}
	return l
}
