package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/shoalhq/shoal/overlay/nsrun"
	"github.com/shoalhq/shoal/overlay/sandbox"
)

// hostLink is the host namespace, open, with a netlink socket inside it.
type hostLink struct {
	ns   netns.NsHandle
	nl   *netlink.Handle
	desc string // for errors: "namespace /run/netns/x"
}

// openNS opens the namespace at path ("" = the caller's own).
func openNS(path string) (netns.NsHandle, string, error) {
	if path == "" {
		ns, err := netns.Get()
		return ns, "the caller's namespace", err
	}
	ns, err := netns.GetFromPath(path)
	return ns, "namespace " + path, err
}

// openHost opens Config.HostNS and a netlink socket inside it.
func openHost(path string) (*hostLink, error) {
	ns, desc, err := openNS(path)
	if err != nil {
		return nil, fmt.Errorf("%w: Config.HostNS %q cannot be opened: %w", ErrInvalid, path, err)
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("bridge: open a netlink socket in %s (is it a network namespace?): %w", desc, err)
	}
	return &hostLink{ns: ns, nl: nl, desc: desc}, nil
}

func (h *hostLink) close() {
	h.nl.Close()
	h.ns.Close()
}

// dump runs a netlink dump, again when the kernel reports that it was
// interrupted by a concurrent change, so the result is consistent.
func dump[T any](fn func() ([]T, error)) ([]T, error) {
	var (
		out []T
		err error
	)
	for range 5 {
		if out, err = fn(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}

// findBridge returns the bridge's index, 0 when it does not exist, or
// ErrNameInUse when the name belongs to another kind of interface.
func (h *hostLink) findBridge(name string) (int, error) {
	l, err := h.nl.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("bridge: look up %s in %s: %w", name, h.desc, err)
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return 0, fmt.Errorf("%w: %s in %s is a %s, not a bridge; remove it or choose another Config.Bridge", ErrNameInUse, name, h.desc, l.Type())
	}
	return l.Attrs().Index, nil
}

// checkSubnet errs with ErrSubnetConflict when subnet overlaps a route of
// the main table (default routes aside) or an address, other than those
// of the bridge (index bridgeIdx, 0 if none) itself.
func (h *hostLink) checkSubnet(subnet netip.Prefix, bridgeIdx int) error {
	routes, err := dump(func() ([]netlink.Route, error) { return h.nl.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("bridge: list routes in %s: %w", h.desc, err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.LinkIndex == bridgeIdx && bridgeIdx != 0 {
			continue
		}
		dst, ok := prefixOf(r.Dst)
		if !ok || dst.Bits() == 0 || !dst.Overlaps(subnet) {
			continue
		}
		return fmt.Errorf("%w: Config.Subnet %v overlaps the route to %v%s in %s; choose another Config.Subnet", ErrSubnetConflict, subnet, dst, h.linkDesc(r.LinkIndex), h.desc)
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.nl.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("bridge: list addresses in %s: %w", h.desc, err)
	}
	for _, a := range addrs {
		if a.LinkIndex == bridgeIdx && bridgeIdx != 0 {
			continue
		}
		p, ok := prefixOf(a.IPNet)
		if !ok || !p.Masked().Overlaps(subnet) {
			continue
		}
		return fmt.Errorf("%w: Config.Subnet %v overlaps the address %v%s in %s; choose another Config.Subnet", ErrSubnetConflict, subnet, p, h.linkDesc(a.LinkIndex), h.desc)
	}
	return nil
}

func (h *hostLink) linkDesc(index int) string {
	if index == 0 {
		return ""
	}
	if l, err := h.nl.LinkByIndex(index); err == nil {
		return " on " + l.Attrs().Name
	}
	return fmt.Sprintf(" on interface %d", index)
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	ones, bits := n.Mask.Size()
	if !ok || bits != 8*len(n.Mask) || !ip.Unmap().Is4() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

// ensureBridge makes the bridge exist in the host namespace with MTU, a
// fixed MAC (macFor the gateway: a bridge otherwise takes its lowest
// port's MAC, which changes as tasks come and go and strands the tasks'
// ARP entries for the gateway), the gateway as its only IPv4 address,
// and up. It returns the bridge's index.
func (h *hostLink) ensureBridge(cfg Config) (int, error) {
	idx, err := h.findBridge(cfg.Bridge)
	if err != nil {
		return 0, err
	}
	gw := gateway(cfg.Subnet)
	mac := macFor(gw)
	if idx == 0 {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: cfg.Bridge, MTU: cfg.MTU, HardwareAddr: mac}}
		if err := h.nl.LinkAdd(br); err != nil && !errors.Is(err, os.ErrExist) {
			return 0, fmt.Errorf("bridge: create bridge %s in %s: %w", cfg.Bridge, h.desc, err)
		}
		if idx, err = h.findBridge(cfg.Bridge); err != nil {
			return 0, err
		}
		if idx == 0 {
			return 0, fmt.Errorf("bridge: bridge %s vanished from %s right after its creation", cfg.Bridge, h.desc)
		}
	}
	l, err := h.nl.LinkByIndex(idx)
	if err != nil {
		return 0, fmt.Errorf("bridge: read back %s in %s: %w", cfg.Bridge, h.desc, err)
	}
	fail := func(what string, err error) error {
		return fmt.Errorf("bridge: %s on %s in %s: %w", what, cfg.Bridge, h.desc, err)
	}
	if l.Attrs().MTU != cfg.MTU {
		if err := h.nl.LinkSetMTU(l, cfg.MTU); err != nil {
			return 0, fail(fmt.Sprintf("set MTU %d", cfg.MTU), err)
		}
	}
	if !bytes.Equal(l.Attrs().HardwareAddr, mac) {
		if err := h.nl.LinkSetHardwareAddr(l, mac); err != nil {
			return 0, fail("set MAC "+mac.String(), err)
		}
	}
	if err := h.ensureAddr(l, netip.PrefixFrom(gw, cfg.Subnet.Bits()), fail); err != nil {
		return 0, err
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.nl.LinkSetUp(l); err != nil {
			return 0, fail("set up", err)
		}
	}
	return idx, nil
}

// ensureAddr leaves want as l's only IPv4 address.
func (h *hostLink) ensureAddr(l netlink.Link, want netip.Prefix, fail func(string, error) error) error {
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.nl.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return fail("list addresses", err)
	}
	have := false
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p == want {
			have = true
			continue
		}
		if err := h.nl.AddrDel(l, &a); err != nil {
			return fail("remove stale address "+a.IPNet.String(), err)
		}
	}
	if have {
		return nil
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: want.Addr().AsSlice(), Mask: net.CIDRMask(want.Bits(), 32)}}
	if err := h.nl.AddrAdd(l, a); err != nil && !errors.Is(err, os.ErrExist) {
		return fail("add gateway address "+want.String(), err)
	}
	return nil
}

// ports returns the names of the task veths (sandbox.HostIfPrefix) that
// are ports of the bridge at index bridgeIdx.
func (h *hostLink) ports(bridgeIdx int) ([]string, error) {
	links, err := dump(h.nl.LinkList)
	if err != nil {
		return nil, fmt.Errorf("bridge: list interfaces in %s: %w", h.desc, err)
	}
	var names []string
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); ok && l.Attrs().MasterIndex == bridgeIdx && strings.HasPrefix(l.Attrs().Name, sandbox.HostIfPrefix) {
			names = append(names, l.Attrs().Name)
		}
	}
	return names, nil
}

// deleteBridge deletes the bridge; a missing one is not an error.
func (h *hostLink) deleteBridge(name string) error {
	idx, err := h.findBridge(name)
	if err != nil || idx == 0 {
		return err
	}
	l, err := h.nl.LinkByIndex(idx)
	if err == nil {
		err = h.nl.LinkDel(l)
	}
	var nf netlink.LinkNotFoundError
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("bridge: delete bridge %s in %s: %w", name, h.desc, err)
	}
	return nil
}

// ipForward is the sysctl that turns on IPv4 forwarding, per namespace.
const ipForward = "/proc/sys/net/ipv4/ip_forward"

// enableForwarding turns IPv4 forwarding on in the namespace at path (""
// = the caller's own): files under /proc/sys/net belong to the namespace
// of the thread that opens them, so the write runs on a thread inside it.
func enableForwarding(path string) error {
	write := func() error {
		if cur, err := os.ReadFile(ipForward); err == nil && strings.TrimSpace(string(cur)) == "1" {
			return nil
		}
		return os.WriteFile(ipForward, []byte("1\n"), 0o644)
	}
	var err error
	if path == "" {
		err = write()
	} else {
		err = nsrun.Do(path, write)
	}
	if err != nil {
		return fmt.Errorf("bridge: turn on IPv4 forwarding (%s) in the host namespace %q: %w", ipForward, path, err)
	}
	return nil
}

// sameNamespace reports whether the namespaces at paths a and b ("" = the
// caller's own) are one and the same.
func sameNamespace(a, b string) (bool, error) {
	na, _, err := openNS(a)
	if err != nil {
		return false, err
	}
	defer na.Close()
	nb, _, err := openNS(b)
	if err != nil {
		return false, err
	}
	defer nb.Close()
	return na.Equal(nb), nil
}
