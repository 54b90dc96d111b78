package vxlan

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
)

// Limits and defaults of the overlay.
const (
	// Port is the UDP port of every VXLAN device (IANA's, not Linux's 8472).
	Port = 4789
	// DefaultMTU is the MTU of bridges, VXLAN devices and task interfaces.
	DefaultMTU = 1450
	// MinMTU is the smallest accepted MTU (IPv6's minimum).
	MinMTU = 1280
	// Overhead is what VXLAN over IPv4 adds to a frame: the underlay's MTU
	// must be at least the overlay MTU plus this.
	Overhead = 50
	// MaxVNI is the largest VXLAN network identifier (24 bits).
	MaxVNI = 1<<24 - 1
)

// Config says where a Manager works.
type Config struct {
	// NetNS is the path of the host's network namespace (a bind mount such
	// as /run/netns/NAME, or /proc/PID/ns/net); "" is the caller's own.
	NetNS string
	// VTEP is this host's IPv4 underlay address, the VXLAN source address.
	VTEP netip.Addr
	// UnderlayLink is the underlay interface's name; "" means the
	// interface that holds VTEP.
	UnderlayLink string
	// MTU of bridges and VXLAN devices; 0 means DefaultMTU.
	MTU int
}

// Network is one overlay network on this host.
type Network struct {
	// VNI is the VXLAN network identifier, 1..MaxVNI.
	VNI uint32
	// Subnet is the network's IPv4 subnet.
	Subnet netip.Prefix
	// Gateway, when valid, is given to the bridge (with Subnet's length);
	// it must be inside Subnet. Local tasks reach it directly (the bridge
	// answers their ARP). Other hosts' tasks reach it only if it is
	// published to them with SetRemotes, with the bridge's MAC; publish
	// only an address unique to this host (such as a node's ingress
	// address), never one every host's bridge holds.
	Gateway netip.Addr
	// BridgeMAC is the bridge's fixed MAC; nil means BridgeMAC(VNI, VTEP).
	// A fixed MAC keeps the bridge from taking its lowest port's MAC.
	BridgeMAC net.HardwareAddr
}

// Remote is an endpoint on another host: its overlay address, its MAC and
// the underlay address (VTEP) of the host it runs on.
type Remote struct {
	Addr netip.Addr
	MAC  net.HardwareAddr
	VTEP netip.Addr
}

func (c *Config) validate() error {
	c.VTEP = c.VTEP.Unmap()
	if !c.VTEP.Is4() {
		return fmt.Errorf("%w: Config.VTEP %v is not an IPv4 address", ErrInvalid, c.VTEP)
	}
	if c.VTEP.IsUnspecified() || c.VTEP.IsMulticast() || c.VTEP.IsLoopback() {
		return fmt.Errorf("%w: Config.VTEP %v must be a unicast underlay address", ErrInvalid, c.VTEP)
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.MTU < MinMTU || c.MTU > 65535-Overhead {
		return fmt.Errorf("%w: Config.MTU %d is outside %d..%d", ErrInvalid, c.MTU, MinMTU, 65535-Overhead)
	}
	return nil
}

func validVNI(field string, vni uint32) error {
	if vni < 1 || vni > MaxVNI {
		return fmt.Errorf("%w: %s %d is outside 1..%d", ErrInvalid, field, vni, MaxVNI)
	}
	return nil
}

func (n *Network) validate() error {
	if err := validVNI("Network.VNI", n.VNI); err != nil {
		return err
	}
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Unmap().Is4() {
		return fmt.Errorf("%w: Network.Subnet %v is not an IPv4 prefix (IPv6 overlays are not supported)", ErrInvalid, n.Subnet)
	}
	n.Subnet = netip.PrefixFrom(n.Subnet.Addr().Unmap(), n.Subnet.Bits()).Masked()
	if n.Subnet.Bits() > 30 {
		return fmt.Errorf("%w: Network.Subnet %v is smaller than a /30", ErrInvalid, n.Subnet)
	}
	if n.Gateway.IsValid() {
		n.Gateway = n.Gateway.Unmap()
		if !n.Subnet.Contains(n.Gateway) {
			return fmt.Errorf("%w: Network.Gateway %v is not inside Network.Subnet %v", ErrInvalid, n.Gateway, n.Subnet)
		}
		if n.Gateway == n.Subnet.Addr() || n.Gateway == lastAddr(n.Subnet) {
			return fmt.Errorf("%w: Network.Gateway %v is the network or broadcast address of %v", ErrInvalid, n.Gateway, n.Subnet)
		}
	}
	if n.BridgeMAC != nil {
		if err := validMAC("Network.BridgeMAC", n.BridgeMAC); err != nil {
			return err
		}
	}
	return nil
}

func validMAC(field string, mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("%w: %s %q is not a 6-byte Ethernet address", ErrInvalid, field, mac)
	}
	if mac[0]&1 != 0 || bytes.Equal(mac, zeroMAC) {
		return fmt.Errorf("%w: %s %s is not a unicast address", ErrInvalid, field, mac)
	}
	return nil
}

func (r *Remote) validate(i int) error {
	r.Addr, r.VTEP = r.Addr.Unmap(), r.VTEP.Unmap()
	if !r.Addr.Is4() {
		return fmt.Errorf("%w: remotes[%d].Addr %v is not an IPv4 address", ErrInvalid, i, r.Addr)
	}
	if !r.VTEP.Is4() {
		return fmt.Errorf("%w: remotes[%d].VTEP %v is not an IPv4 address", ErrInvalid, i, r.VTEP)
	}
	return validMAC(fmt.Sprintf("remotes[%d].MAC", i), r.MAC)
}

// lastAddr returns the last (broadcast) address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}
