package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Attach makes the attachment exist: a veth pair whose host end HostIf is
// a port of Bridge in HostNS (MTU, up) and whose other end is IfName in
// TaskNS with MAC, Addr (its only IPv4 address), MTU, up, lo up, and a
// default route via Gateway (or no default route via IfName when Gateway
// is not set).
//
// It is idempotent: when HostIf and IfName already form the pair, they are
// converged in place (changed address, MAC, MTU or gateway included);
// when HostIf exists but its peer is not IfName in TaskNS (a leftover), it
// is deleted and the pair made again. It errs with ErrInvalid for a bad
// Attachment or an MTU above the bridge's, ErrBridgeNotFound when Bridge
// is missing, and ErrNameInUse when IfName in TaskNS (or HostIf in HostNS)
// belongs to another interface. On a kernel error part of the work may be
// done; calling Attach again converges, Detach undoes it.
func Attach(a Attachment) error {
	if err := a.validate(); err != nil {
		return err
	}
	host, err := openNS(a.HostNS, "Attachment.HostNS")
	if err != nil {
		return err
	}
	defer host.close()
	task, err := openNS(a.TaskNS, "Attachment.TaskNS")
	if err != nil {
		return err
	}
	defer task.close()

	br, err := host.h.LinkByName(a.Bridge)
	if isNotFound(err) {
		return fmt.Errorf("%w: Attachment.Bridge %q does not exist in %s; create the network first", ErrBridgeNotFound, a.Bridge, host.desc)
	}
	if err != nil {
		return fmt.Errorf("sandbox: look up bridge %s in %s: %w", a.Bridge, host.desc, err)
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		return fmt.Errorf("%w: Attachment.Bridge %q in %s is a %s, not a bridge", ErrBridgeNotFound, a.Bridge, host.desc, br.Type())
	}
	if a.MTU > br.Attrs().MTU {
		return fmt.Errorf("%w: Attachment.MTU %d is above bridge %s's MTU %d: full-size frames would be dropped", ErrInvalid, a.MTU, a.Bridge, br.Attrs().MTU)
	}

	hostEnd, taskEnd, err := findPair(host, task, a)
	if err != nil {
		return err
	}
	if hostEnd == nil {
		if hostEnd, taskEnd, err = createPair(host, task, a, br.Attrs().Index); err != nil {
			return err
		}
	}
	if err := convergeHostEnd(host, hostEnd, a, br.Attrs().Index); err != nil {
		return err
	}
	return convergeTaskEnd(task, taskEnd, a)
}

// findPair returns the existing pair, or nils when it must be made (after
// deleting a leftover HostIf whose peer is not IfName in TaskNS).
func findPair(host, task *nsLink, a Attachment) (hostEnd, taskEnd netlink.Link, err error) {
	hostEnd, err = host.h.LinkByName(a.HostIf)
	if isNotFound(err) {
		hostEnd = nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("sandbox: look up %s in %s: %w", a.HostIf, host.desc, err)
	} else if _, ok := hostEnd.(*netlink.Veth); !ok {
		return nil, nil, fmt.Errorf("%w: Attachment.HostIf %q in %s is a %s, not a veth; remove it", ErrNameInUse, a.HostIf, host.desc, hostEnd.Type())
	}
	taskEnd, err = task.h.LinkByName(a.IfName)
	if isNotFound(err) {
		taskEnd = nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("sandbox: look up %s in %s: %w", a.IfName, task.desc, err)
	}
	if hostEnd != nil && taskEnd != nil && isPair(host, task, hostEnd, taskEnd) {
		return hostEnd, taskEnd, nil
	}
	if taskEnd != nil {
		return nil, nil, fmt.Errorf("%w: Attachment.IfName %q already exists in %s and is not the peer of %s; detach its owner first", ErrNameInUse, a.IfName, task.desc, a.HostIf)
	}
	if hostEnd != nil { // leftover whose peer is elsewhere: deleting it deletes the pair
		if err := host.h.LinkDel(hostEnd); err != nil && !isNotFound(err) {
			return nil, nil, fmt.Errorf("sandbox: delete leftover %s in %s: %w", a.HostIf, host.desc, err)
		}
	}
	return nil, nil, nil
}

// isPair reports whether hostEnd and taskEnd are the two ends of one veth:
// each one's link index names the other, in the other's namespace.
func isPair(host, task *nsLink, hostEnd, taskEnd netlink.Link) bool {
	if _, ok := taskEnd.(*netlink.Veth); !ok {
		return false
	}
	ha, ta := hostEnd.Attrs(), taskEnd.Attrs()
	if ha.ParentIndex != ta.Index || ta.ParentIndex != ha.Index {
		return false
	}
	if id, err := host.h.GetNetNsIdByFd(int(task.ns)); err == nil && id >= 0 && ha.NetNsID >= 0 && id != ha.NetNsID {
		return false
	}
	if id, err := task.h.GetNetNsIdByFd(int(host.ns)); err == nil && id >= 0 && ta.NetNsID >= 0 && id != ta.NetNsID {
		return false
	}
	return true
}

// createPair makes the veth in one step: host end in HostNS enslaved to the
// bridge, peer created directly in TaskNS under its final name and MAC.
func createPair(host, task *nsLink, a Attachment, bridgeIdx int) (hostEnd, taskEnd netlink.Link, err error) {
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: a.HostIf, MTU: a.MTU, MasterIndex: bridgeIdx},
		PeerName:         a.IfName,
		PeerHardwareAddr: a.MAC,
		PeerMTU:          uint32(a.MTU),
		PeerNamespace:    netlink.NsFd(int(task.ns)),
	}
	if err := host.h.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("sandbox: create veth %s in %s with peer %s in %s: %w", a.HostIf, host.desc, a.IfName, task.desc, err)
	}
	if hostEnd, err = host.h.LinkByName(a.HostIf); err != nil {
		return nil, nil, fmt.Errorf("sandbox: read back %s in %s: %w", a.HostIf, host.desc, err)
	}
	if taskEnd, err = task.h.LinkByName(a.IfName); err != nil {
		return nil, nil, fmt.Errorf("sandbox: read back %s in %s: %w", a.IfName, task.desc, err)
	}
	return hostEnd, taskEnd, nil
}

func convergeHostEnd(host *nsLink, l netlink.Link, a Attachment, bridgeIdx int) error {
	at := l.Attrs()
	if at.MTU != a.MTU {
		if err := host.h.LinkSetMTU(l, a.MTU); err != nil {
			return fmt.Errorf("sandbox: set MTU %d on %s in %s: %w", a.MTU, at.Name, host.desc, err)
		}
	}
	if at.MasterIndex != bridgeIdx {
		if err := host.h.LinkSetMasterByIndex(l, bridgeIdx); err != nil {
			return fmt.Errorf("sandbox: enslave %s to %s in %s: %w", at.Name, a.Bridge, host.desc, err)
		}
	}
	if at.Flags&net.FlagUp == 0 {
		if err := host.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("sandbox: set %s up in %s: %w", at.Name, host.desc, err)
		}
	}
	return nil
}

func convergeTaskEnd(task *nsLink, l netlink.Link, a Attachment) error {
	at := l.Attrs()
	fail := func(what string, err error) error {
		return fmt.Errorf("sandbox: %s on %s in %s: %w", what, a.IfName, task.desc, err)
	}
	if at.MTU != a.MTU {
		if err := task.h.LinkSetMTU(l, a.MTU); err != nil {
			return fail(fmt.Sprintf("set MTU %d", a.MTU), err)
		}
	}
	if !bytes.Equal(at.HardwareAddr, a.MAC) {
		if err := task.h.LinkSetDown(l); err != nil {
			return fail("set down to change MAC", err)
		}
		if err := task.h.LinkSetHardwareAddr(l, a.MAC); err != nil {
			return fail("set MAC "+a.MAC.String(), err)
		}
	}
	addrs, err := task.h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fail("list addresses", err)
	}
	have := false
	for _, ad := range addrs {
		ip, _ := netip.AddrFromSlice(ad.IP)
		ones, _ := ad.Mask.Size()
		if netip.PrefixFrom(ip.Unmap(), ones) == a.Addr {
			have = true
			continue
		}
		if err := task.h.AddrDel(l, &ad); err != nil {
			return fail("remove stale address "+ad.IPNet.String(), err)
		}
	}
	if !have {
		ad := &netlink.Addr{IPNet: &net.IPNet{IP: a.Addr.Addr().AsSlice(), Mask: net.CIDRMask(a.Addr.Bits(), 32)}}
		if err := task.h.AddrAdd(l, ad); err != nil {
			return fail("add Attachment.Addr "+a.Addr.String(), err)
		}
	}
	// Re-read the flags: a MAC change set the link down.
	if l, err = task.h.LinkByIndex(at.Index); err != nil {
		return fail("read back", err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := task.h.LinkSetUp(l); err != nil {
			return fail("set up", err)
		}
	}
	lo, err := task.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("sandbox: look up lo in %s: %w", task.desc, err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		if err := task.h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("sandbox: set lo up in %s: %w", task.desc, err)
		}
	}
	return convergeDefaultRoute(task, l, a, fail)
}

func convergeDefaultRoute(task *nsLink, l netlink.Link, a Attachment, fail func(string, error) error) error {
	routes, err := task.h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		return fail("list routes", err)
	}
	for _, r := range routes {
		if !isDefault(r) {
			continue
		}
		if gw, ok := netip.AddrFromSlice(r.Gw); ok && a.Gateway.IsValid() && gw.Unmap() == a.Gateway {
			return nil // already right
		}
		if !a.Gateway.IsValid() {
			if err := task.h.RouteDel(&r); err != nil {
				return fail("remove default route", err)
			}
		}
	}
	if !a.Gateway.IsValid() {
		return nil
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: a.Gateway.AsSlice(), Scope: netlink.SCOPE_UNIVERSE}
	if err := task.h.RouteReplace(r); err != nil {
		return fail("set default route via Attachment.Gateway "+a.Gateway.String(), err)
	}
	return nil
}

func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// Detach deletes the host-side veth hostIf in hostNS ("" = the caller's
// own namespace); the kernel deletes its peer in the task's namespace with
// it. A missing hostIf is not an error. It errs with ErrInvalid for a name
// that is not a HostIfPrefix interface name and with ErrNameInUse when
// hostIf is not a veth (nothing is deleted then).
func Detach(hostNS, hostIf string) error {
	if err := validHostIf("hostIf", hostIf); err != nil {
		return err
	}
	host, err := openNS(hostNS, "hostNS")
	if err != nil {
		return err
	}
	defer host.close()
	l, err := host.h.LinkByName(hostIf)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sandbox: look up %s in %s: %w", hostIf, host.desc, err)
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return fmt.Errorf("%w: %s in %s is a %s, not a veth; not deleting it", ErrNameInUse, hostIf, host.desc, l.Type())
	}
	if err := host.h.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("sandbox: delete %s in %s: %w", hostIf, host.desc, err)
	}
	return nil
}

// List returns, sorted, the names of the host-side veths (HostIfPrefix)
// in hostNS ("" = the caller's own namespace), attached or not, so that a
// restarted agent can Detach those it no longer needs.
func List(hostNS string) ([]string, error) {
	host, err := openNS(hostNS, "hostNS")
	if err != nil {
		return nil, err
	}
	defer host.close()
	links, err := host.h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("sandbox: list interfaces in %s: %w", host.desc, err)
	}
	var names []string
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); ok && strings.HasPrefix(l.Attrs().Name, HostIfPrefix) {
			names = append(names, l.Attrs().Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// nsLink is an open namespace and a netlink socket inside it.
type nsLink struct {
	ns   netns.NsHandle
	h    *netlink.Handle
	desc string
}

// openNS opens the namespace at path ("" = the calling thread's) and a
// netlink socket in it; field names the Attachment field for errors.
func openNS(path, field string) (*nsLink, error) {
	var (
		ns   netns.NsHandle
		err  error
		desc = "namespace " + path
	)
	if path == "" {
		desc = "the caller's namespace"
		ns, err = netns.Get()
	} else {
		ns, err = netns.GetFromPath(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q cannot be opened: %v", ErrInvalid, field, path, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("sandbox: open netlink socket in %s: %w", desc, err)
	}
	return &nsLink{ns: ns, h: h, desc: desc}, nil
}

func (n *nsLink) close() {
	n.h.Close()
	n.ns.Close()
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return err != nil && errors.As(err, &nf)
}
