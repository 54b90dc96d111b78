package vxlan

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SetPeers makes the flood list of network vni exactly vteps: one
// all-zero-MAC FDB entry per peer host, used for broadcast and unknown
// unicast. Missing entries are appended, stale ones deleted, others left
// alone. This host's own VTEP and duplicates are ignored. It errs with
// ErrInvalid for a bad VNI or a non-IPv4 VTEP (nothing changed) and with
// ErrNetworkNotFound before EnsureNetwork; kernel errors are collected
// and returned together after every other entry was tried, so a later
// call converges.
func (m *Manager) SetPeers(vni uint32, vteps []netip.Addr) error {
	if err := validVNI("vni", vni); err != nil {
		return err
	}
	want := map[netip.Addr]bool{}
	for i, v := range vteps {
		v = v.Unmap()
		if !v.Is4() {
			return fmt.Errorf("%w: vteps[%d] %v is not an IPv4 address", ErrInvalid, i, v)
		}
		if v != m.cfg.VTEP {
			want[v] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return ErrClosed
	}
	vx, err := m.vxlanLink(vni)
	if err != nil {
		return err
	}
	fdb, err := m.listFDB(vx)
	if err != nil {
		return err
	}
	have := map[netip.Addr]bool{}
	for _, e := range fdb {
		if bytes.Equal(e.HardwareAddr, zeroMAC) {
			have[neighIP(e)] = true
		}
	}
	var errs []error
	for _, v := range sortedAddrs(want) {
		if have[v] {
			continue
		}
		if err := m.h.NeighAppend(floodEntry(vx, v)); err != nil {
			errs = append(errs, fmt.Errorf("vxlan: add flood entry to VTEP %v on %s in %s: %w", v, vx.Attrs().Name, m.nsDesc, err))
		}
	}
	for _, v := range sortedAddrs(have) {
		if want[v] {
			continue
		}
		if err := m.h.NeighDel(floodEntry(vx, v)); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("vxlan: delete flood entry to VTEP %v on %s in %s: %w", v, vx.Attrs().Name, m.nsDesc, err))
		}
	}
	return errors.Join(errs...)
}

// SetRemotes makes the forwarding state of network vni exactly remotes:
// for each, an FDB entry MAC → VTEP and a permanent neighbour entry
// Addr → MAC on the VXLAN device (so the device answers ARP for Addr
// itself). Entries already right are left alone, changed ones replaced,
// entries for endpoints no longer listed deleted (their neighbour entry
// first, so ARP stops answering before forwarding stops). Remotes whose
// VTEP is this host's are local endpoints and are ignored. It errs with
// ErrInvalid (nothing changed) for a bad VNI, a malformed remote, one
// address listed with two MACs, or one MAC listed on two VTEPs; with
// ErrNetworkNotFound before EnsureNetwork; kernel errors are collected and
// returned together after every other entry was tried.
func (m *Manager) SetRemotes(vni uint32, remotes []Remote) error {
	if err := validVNI("vni", vni); err != nil {
		return err
	}
	wantNeigh := map[netip.Addr]string{} // addr → MAC
	wantFDB := map[string]netip.Addr{}   // MAC → VTEP
	for i, r := range remotes {
		if err := r.validate(i); err != nil {
			return err
		}
		if r.VTEP == m.cfg.VTEP {
			continue
		}
		mac := r.MAC.String()
		if old, ok := wantNeigh[r.Addr]; ok && old != mac {
			return fmt.Errorf("%w: remotes[%d].Addr %v is listed with two MACs (%s, %s)", ErrInvalid, i, r.Addr, old, mac)
		}
		if old, ok := wantFDB[mac]; ok && old != r.VTEP {
			return fmt.Errorf("%w: remotes[%d].MAC %s is listed on two VTEPs (%v, %v)", ErrInvalid, i, mac, old, r.VTEP)
		}
		wantNeigh[r.Addr] = mac
		wantFDB[mac] = r.VTEP
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return ErrClosed
	}
	vx, err := m.vxlanLink(vni)
	if err != nil {
		return err
	}
	fdb, err := m.listFDB(vx)
	if err != nil {
		return err
	}
	haveFDB := map[string][]netip.Addr{}
	for _, e := range fdb {
		if !bytes.Equal(e.HardwareAddr, zeroMAC) {
			mac := e.HardwareAddr.String()
			haveFDB[mac] = append(haveFDB[mac], neighIP(e))
		}
	}
	neighs, err := m.h.NeighList(vx.Attrs().Index, unix.AF_INET)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("vxlan: list neighbours of %s in %s: %w", vx.Attrs().Name, m.nsDesc, err)
	}
	haveNeigh := map[netip.Addr]string{}
	for _, n := range neighs {
		if n.State&netlink.NUD_PERMANENT != 0 {
			haveNeigh[neighIP(n)] = n.HardwareAddr.String()
		}
	}

	var errs []error
	fail := func(what string, err error) {
		if err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("vxlan: %s on %s in %s: %w", what, vx.Attrs().Name, m.nsDesc, err))
		}
	}
	// 1. Stale neighbours: ARP stops answering for addresses leaving.
	for _, a := range sortedAddrs(haveNeigh) {
		if _, ok := wantNeigh[a]; !ok {
			fail("delete neighbour "+a.String(), m.h.NeighDel(neighEntry(vx, a, nil)))
		}
	}
	// 2. New and moved FDB entries.
	for _, mac := range sortedMACs(wantFDB) {
		want, have := wantFDB[mac], haveFDB[mac]
		if len(have) == 1 && have[0] == want {
			continue
		}
		hw, _ := net.ParseMAC(mac)
		if len(have) > 1 { // several destinations: keep none but want
			for _, v := range have {
				if v != want {
					fail("delete FDB "+mac+" → "+v.String(), m.h.NeighDel(fdbEntry(vx, hw, v)))
				}
			}
			if slices.Contains(have, want) {
				continue
			}
		}
		fail("set FDB "+mac+" → "+want.String(), m.h.NeighSet(fdbEntry(vx, hw, want)))
	}
	// 3. New and changed neighbours.
	for _, a := range sortedAddrs(wantNeigh) {
		if haveNeigh[a] == wantNeigh[a] {
			continue
		}
		hw, _ := net.ParseMAC(wantNeigh[a])
		fail("set neighbour "+a.String()+" → "+wantNeigh[a], m.h.NeighSet(neighEntry(vx, a, hw)))
	}
	// 4. Stale FDB entries.
	for _, mac := range sortedMACs(haveFDB) {
		if _, ok := wantFDB[mac]; ok {
			continue
		}
		hw, _ := net.ParseMAC(mac)
		for _, v := range haveFDB[mac] {
			fail("delete FDB "+mac+" → "+v.String(), m.h.NeighDel(fdbEntry(vx, hw, v)))
		}
	}
	return errors.Join(errs...)
}

// listFDB returns the VXLAN device's own forwarding entries (NTF_SELF),
// not the bridge's entries for that port.
func (m *Manager) listFDB(vx netlink.Link) ([]netlink.Neigh, error) {
	all, err := m.h.NeighList(vx.Attrs().Index, unix.AF_BRIDGE)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("vxlan: list FDB of %s in %s: %w", vx.Attrs().Name, m.nsDesc, err)
	}
	var out []netlink.Neigh
	for _, n := range all {
		if n.Flags&netlink.NTF_SELF != 0 && n.Flags&netlink.NTF_MASTER == 0 && n.IP != nil {
			out = append(out, n)
		}
	}
	return out, nil
}

func floodEntry(vx netlink.Link, vtep netip.Addr) *netlink.Neigh {
	return fdbEntry(vx, zeroMAC, vtep)
}

func fdbEntry(vx netlink.Link, mac net.HardwareAddr, vtep netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    vx.Attrs().Index,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		State:        netlink.NUD_PERMANENT,
		HardwareAddr: mac,
		IP:           vtep.AsSlice(),
	}
}

func neighEntry(vx netlink.Link, addr netip.Addr, mac net.HardwareAddr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    vx.Attrs().Index,
		Family:       unix.AF_INET,
		State:        netlink.NUD_PERMANENT,
		HardwareAddr: mac,
		IP:           addr.AsSlice(),
	}
}

func neighIP(n netlink.Neigh) netip.Addr {
	a, _ := netip.AddrFromSlice(n.IP)
	return a.Unmap()
}

// sortedAddrs returns a map's keys in order, so changes are applied
// deterministically.
func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, netip.Addr.Compare)
	return keys
}

// sortedMACs returns a map's keys in order.
func sortedMACs[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
