package vxlan

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Manager creates, converges and removes overlay networks in one network
// namespace. Build it with New; it is safe for concurrent use.
type Manager struct {
	mu       sync.Mutex
	cfg      Config
	nsDesc   string         // namespace, for error messages
	ns       netns.NsHandle // open namespace (netns.None() for the caller's own)
	h        *netlink.Handle
	underIdx int // underlay interface index
}

// New opens a Manager on the namespace cfg.NetNS. It checks that the
// underlay interface exists (cfg.UnderlayLink, or the one holding
// cfg.VTEP) and that its MTU is at least cfg.MTU+Overhead; the underlay is
// looked up once, so a Manager must be made again if it is replaced. It
// errs with ErrInvalid for a bad Config and ErrUnderlay for an unusable
// underlay.
func New(cfg Config) (*Manager, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, nsDesc: "the caller's namespace", ns: netns.None()}
	if cfg.NetNS != "" {
		m.nsDesc = "namespace " + cfg.NetNS
		ns, err := netns.GetFromPath(cfg.NetNS)
		if err != nil {
			return nil, fmt.Errorf("%w: Config.NetNS %s cannot be opened: %v", ErrInvalid, cfg.NetNS, err)
		}
		m.ns = ns
	}
	h, err := netlink.NewHandleAt(m.ns)
	if err != nil {
		m.ns.Close()
		return nil, fmt.Errorf("vxlan: open netlink socket in %s: %w", m.nsDesc, err)
	}
	m.h = h
	if err := m.findUnderlay(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func (m *Manager) findUnderlay() error {
	var link netlink.Link
	if m.cfg.UnderlayLink != "" {
		l, err := m.h.LinkByName(m.cfg.UnderlayLink)
		if err != nil {
			return fmt.Errorf("%w: Config.UnderlayLink %q not found in %s: %v", ErrUnderlay, m.cfg.UnderlayLink, m.nsDesc, err)
		}
		link = l
	} else {
		addrs, err := m.h.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("vxlan: list addresses in %s: %w", m.nsDesc, err)
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == m.cfg.VTEP {
				l, err := m.h.LinkByIndex(a.LinkIndex)
				if err != nil {
					return fmt.Errorf("vxlan: interface holding Config.VTEP %v in %s: %w", m.cfg.VTEP, m.nsDesc, err)
				}
				link = l
				break
			}
		}
		if link == nil {
			return fmt.Errorf("%w: Config.VTEP %v is not assigned to any interface in %s; assign it or set Config.UnderlayLink", ErrUnderlay, m.cfg.VTEP, m.nsDesc)
		}
	}
	if mtu := link.Attrs().MTU; mtu < m.cfg.MTU+Overhead {
		return fmt.Errorf("%w: underlay %s has MTU %d, Config.MTU %d needs at least %d; lower Config.MTU",
			ErrUnderlay, link.Attrs().Name, mtu, m.cfg.MTU, m.cfg.MTU+Overhead)
	}
	m.underIdx = link.Attrs().Index
	return nil
}

// Close releases the netlink socket and the namespace handle. The devices
// stay. Calling Close again returns nil.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return nil
	}
	m.h.Close()
	m.h = nil
	if m.ns.IsOpen() {
		m.ns.Close()
	}
	return nil
}

// EnsureNetwork makes the network's bridge and VXLAN device exist with the
// right settings and returns the bridge's name. It is idempotent: a
// device that already matches is left alone (its forwarding entries too);
// a VXLAN device with other settings (VNI, VTEP, port, underlay, learning,
// proxy) is recreated, which drops its entries, so call SetPeers and
// SetRemotes after EnsureNetwork. MTU, bridge MAC, master, up state and the
// bridge's IPv4 addresses (exactly Gateway, or none) are converged in
// place. It errs with ErrInvalid for a bad Network.
func (m *Manager) EnsureNetwork(n Network) (bridge string, err error) {
	if err := n.validate(); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return "", ErrClosed
	}
	mac := n.BridgeMAC
	if mac == nil {
		mac = BridgeMAC(n.VNI, m.cfg.VTEP)
	}
	br, err := m.ensureBridge(BridgeName(n.VNI), mac)
	if err != nil {
		return "", err
	}
	vx, err := m.ensureVxlan(VxlanName(n.VNI), n.VNI)
	if err != nil {
		return "", err
	}
	if vx.Attrs().MasterIndex != br.Attrs().Index {
		if err := m.h.LinkSetMasterByIndex(vx, br.Attrs().Index); err != nil {
			return "", fmt.Errorf("vxlan: enslave %s to %s in %s: %w", vx.Attrs().Name, br.Attrs().Name, m.nsDesc, err)
		}
	}
	if err := m.ensureGateway(br, n); err != nil {
		return "", err
	}
	for _, l := range []netlink.Link{vx, br} {
		if l.Attrs().Flags&net.FlagUp == 0 {
			if err := m.h.LinkSetUp(l); err != nil {
				return "", fmt.Errorf("vxlan: set %s up in %s: %w", l.Attrs().Name, m.nsDesc, err)
			}
		}
	}
	return br.Attrs().Name, nil
}

func (m *Manager) ensureBridge(name string, mac net.HardwareAddr) (netlink.Link, error) {
	l, err := m.h.LinkByName(name)
	if err == nil {
		if _, ok := l.(*netlink.Bridge); !ok {
			// Our prefix, wrong kind: a leftover; replace it.
			if err := m.h.LinkDel(l); err != nil {
				return nil, fmt.Errorf("vxlan: delete %s (a %s, not a bridge) in %s: %w", name, l.Type(), m.nsDesc, err)
			}
			l = nil
		}
	} else if !isNotFound(err) {
		return nil, fmt.Errorf("vxlan: look up bridge %s in %s: %w", name, m.nsDesc, err)
	} else {
		l = nil
	}
	if l == nil {
		// The MAC given at creation is marked as set by the user, so the
		// bridge keeps it whatever ports join.
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: mac}}
		if err := m.h.LinkAdd(br); err != nil {
			return nil, fmt.Errorf("vxlan: create bridge %s in %s: %w", name, m.nsDesc, err)
		}
		if l, err = m.h.LinkByName(name); err != nil {
			return nil, fmt.Errorf("vxlan: read back bridge %s in %s: %w", name, m.nsDesc, err)
		}
	}
	// Setting the MTU after creation marks it as set by the user, so the
	// bridge does not follow its ports' MTU.
	if l.Attrs().MTU != m.cfg.MTU {
		if err := m.h.LinkSetMTU(l, m.cfg.MTU); err != nil {
			return nil, fmt.Errorf("vxlan: set MTU %d on %s in %s: %w", m.cfg.MTU, name, m.nsDesc, err)
		}
	}
	if !bytes.Equal(l.Attrs().HardwareAddr, mac) {
		if err := m.h.LinkSetHardwareAddr(l, mac); err != nil {
			return nil, fmt.Errorf("vxlan: set MAC %s on %s in %s: %w", mac, name, m.nsDesc, err)
		}
	}
	return l, nil
}

func (m *Manager) wantVxlan(name string, vni uint32) *netlink.Vxlan {
	return &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: name, MTU: m.cfg.MTU},
		VxlanId:      int(vni),
		VtepDevIndex: m.underIdx,
		SrcAddr:      m.cfg.VTEP.AsSlice(),
		Port:         Port,
		Learning:     false,
		Proxy:        true,
	}
}

// vxlanMatches reports whether an existing device has the settings that
// can only be given at creation.
func vxlanMatches(have, want *netlink.Vxlan) bool {
	src, _ := netip.AddrFromSlice(have.SrcAddr)
	wsrc, _ := netip.AddrFromSlice(want.SrcAddr)
	noGroup := len(have.Group) == 0 || have.Group.IsUnspecified()
	return have.VxlanId == want.VxlanId && have.VtepDevIndex == want.VtepDevIndex &&
		src.Unmap() == wsrc.Unmap() && have.Port == want.Port &&
		have.Learning == want.Learning && have.Proxy == want.Proxy &&
		!have.FlowBased && noGroup
}

func (m *Manager) ensureVxlan(name string, vni uint32) (netlink.Link, error) {
	want := m.wantVxlan(name, vni)
	l, err := m.h.LinkByName(name)
	switch {
	case err == nil:
		if have, ok := l.(*netlink.Vxlan); !ok || !vxlanMatches(have, want) {
			if err := m.h.LinkDel(l); err != nil {
				return nil, fmt.Errorf("vxlan: delete outdated %s in %s: %w", name, m.nsDesc, err)
			}
			l = nil
		}
	case isNotFound(err):
		l = nil
	default:
		return nil, fmt.Errorf("vxlan: look up %s in %s: %w", name, m.nsDesc, err)
	}
	if l == nil {
		if err := m.h.LinkAdd(want); err != nil {
			return nil, fmt.Errorf("vxlan: create %s (VNI %d, VTEP %v, port %d) in %s: %w", name, vni, m.cfg.VTEP, Port, m.nsDesc, err)
		}
		if l, err = m.h.LinkByName(name); err != nil {
			return nil, fmt.Errorf("vxlan: read back %s in %s: %w", name, m.nsDesc, err)
		}
	}
	if l.Attrs().MTU != m.cfg.MTU {
		if err := m.h.LinkSetMTU(l, m.cfg.MTU); err != nil {
			return nil, fmt.Errorf("vxlan: set MTU %d on %s in %s: %w", m.cfg.MTU, name, m.nsDesc, err)
		}
	}
	return l, nil
}

// ensureGateway leaves exactly n.Gateway/len(Subnet) as the bridge's IPv4
// address, or none when Gateway is not set.
func (m *Manager) ensureGateway(br netlink.Link, n Network) error {
	addrs, err := m.h.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("vxlan: list addresses of %s in %s: %w", br.Attrs().Name, m.nsDesc, err)
	}
	var want netip.Prefix
	if n.Gateway.IsValid() {
		want = netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
	}
	have := false
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if p := netip.PrefixFrom(ip.Unmap(), ones); p == want {
			have = true
			continue
		}
		if err := m.h.AddrDel(br, &a); err != nil {
			return fmt.Errorf("vxlan: remove stale address %s from %s in %s: %w", a.IPNet, br.Attrs().Name, m.nsDesc, err)
		}
	}
	if want.IsValid() && !have {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: want.Addr().AsSlice(), Mask: net.CIDRMask(want.Bits(), 32)}}
		if err := m.h.AddrAdd(br, a); err != nil {
			return fmt.Errorf("vxlan: add Network.Gateway %v to %s in %s: %w", want, br.Attrs().Name, m.nsDesc, err)
		}
	}
	return nil
}

// RemoveNetwork deletes the network's VXLAN device and bridge (with them,
// all their forwarding entries). Interfaces still enslaved to the bridge
// stay but are cut off: Detach tasks first. A network that does not exist
// is not an error.
func (m *Manager) RemoveNetwork(vni uint32) error {
	if err := validVNI("vni", vni); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return ErrClosed
	}
	var errs []error
	for _, name := range []string{VxlanName(vni), BridgeName(vni)} {
		l, err := m.h.LinkByName(name)
		if isNotFound(err) {
			continue
		}
		if err == nil {
			err = m.h.LinkDel(l)
		}
		if err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("vxlan: delete %s in %s: %w", name, m.nsDesc, err))
		}
	}
	return errors.Join(errs...)
}

// Networks returns, sorted, the VNIs for which a bridge or a VXLAN device
// named by this package exists in the namespace (complete or half-made),
// so that a restarted agent can remove those it no longer needs.
func (m *Manager) Networks() ([]uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.h == nil {
		return nil, ErrClosed
	}
	links, err := m.h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("vxlan: list interfaces in %s: %w", m.nsDesc, err)
	}
	var vnis []uint32
	for _, l := range links {
		vni, ok := vniFromName(l.Attrs().Name)
		if !ok {
			continue
		}
		if _, isBr := l.(*netlink.Bridge); !isBr {
			if _, isVx := l.(*netlink.Vxlan); !isVx {
				continue
			}
		}
		vnis = append(vnis, vni)
	}
	slices.Sort(vnis)
	return slices.Compact(vnis), nil
}

// vxlanLink returns the VXLAN device of vni, or ErrNetworkNotFound.
func (m *Manager) vxlanLink(vni uint32) (netlink.Link, error) {
	name := VxlanName(vni)
	l, err := m.h.LinkByName(name)
	if isNotFound(err) {
		return nil, fmt.Errorf("%w: no device %s (VNI %d) in %s; call EnsureNetwork first", ErrNetworkNotFound, name, vni, m.nsDesc)
	}
	if err != nil {
		return nil, fmt.Errorf("vxlan: look up %s in %s: %w", name, m.nsDesc, err)
	}
	if _, ok := l.(*netlink.Vxlan); !ok {
		return nil, fmt.Errorf("%w: %s in %s is a %s, not a vxlan device; call EnsureNetwork", ErrNetworkNotFound, name, m.nsDesc, l.Type())
	}
	return l, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return err != nil && errors.As(err, &nf)
}
