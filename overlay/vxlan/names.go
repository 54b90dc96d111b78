package vxlan

import (
	"encoding/binary"
	"hash/fnv"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Interface name prefixes. Everything this package creates carries one of
// them, so leftovers can be found and removed.
const (
	BridgePrefix = "shbr"
	VxlanPrefix  = "shvx"
)

// BridgeName returns the name of the bridge of network vni ("shbr4096");
// at most 12 characters for any VNI in range.
func BridgeName(vni uint32) string { return BridgePrefix + strconv.FormatUint(uint64(vni), 10) }

// VxlanName returns the name of the VXLAN device of network vni ("shvx4096").
func VxlanName(vni uint32) string { return VxlanPrefix + strconv.FormatUint(uint64(vni), 10) }

// vniFromName parses a name made by BridgeName or VxlanName; ok is false
// for any other name.
func vniFromName(name string) (vni uint32, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(name, BridgePrefix):
		rest = name[len(BridgePrefix):]
	case strings.HasPrefix(name, VxlanPrefix):
		rest = name[len(VxlanPrefix):]
	default:
		return 0, false
	}
	if rest == "" || rest[0] == '0' {
		return 0, false // not canonical: not ours
	}
	n, err := strconv.ParseUint(rest, 10, 32)
	if err != nil || n > MaxVNI {
		return 0, false
	}
	return uint32(n), true
}

// MACFor returns the MAC address Shoal gives to the endpoint with IPv4
// address addr: 02:42 followed by the four address bytes, as Docker does.
// It is locally administered and unicast. It returns nil when addr is not
// an IPv4 address.
func MACFor(addr netip.Addr) net.HardwareAddr {
	addr = addr.Unmap()
	if !addr.Is4() {
		return nil
	}
	a := addr.As4()
	return net.HardwareAddr{0x02, 0x42, a[0], a[1], a[2], a[3]}
}

// BridgeMAC returns the MAC address EnsureNetwork gives to the bridge of
// network vni on the host whose VTEP is vtep, when Network.BridgeMAC is
// not set: 02:53 followed by 32 bits of a hash of both, so it is locally
// administered, unicast, stable across restarts, and never one of the
// 02:42 task MACs of MACFor. Publish a bridge's Gateway address with this
// MAC on the other hosts.
func BridgeMAC(vni uint32, vtep netip.Addr) net.HardwareAddr {
	h := fnv.New64a()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], vni)
	h.Write(b[:])
	v := vtep.Unmap().As16()
	h.Write(v[:])
	sum := h.Sum64()
	return net.HardwareAddr{0x02, 0x53, byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)}
}
