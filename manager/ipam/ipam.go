// Package ipam holds the pure address arithmetic of overlay networks:
// carving subnets out of address pools, picking VXLAN IDs, and handing
// out the addresses of one subnet. It keeps no state beyond a Pool value
// and does no I/O: the allocator rebuilds Pools from the store at every
// leadership change and writes every allocation through Raft before it
// is used, which is what keeps an address from being handed out twice.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Errors, wrapped with what was asked.
var (
	// ErrExhausted means a pool or subnet has nothing left to give.
	ErrExhausted = errors.New("exhausted")
	// ErrInUse means an address is already allocated.
	ErrInUse = errors.New("address already in use")
	// ErrOutOfRange means an address is not a host address of the subnet.
	ErrOutOfRange = errors.New("address not usable in subnet")
	// ErrBadSubnet means a subnet cannot hold addresses (IPv6, too small).
	ErrBadSubnet = errors.New("unusable subnet")
)

// VNI range for overlay networks: below 4096 is left to VLAN-style
// numbering, as Swarm does; the top is VXLAN's 24 bits.
const (
	MinVNI uint32 = 4096
	MaxVNI uint32 = 1<<24 - 1
)

// DefaultPool is where subnets come from when the cluster names no pool.
var DefaultPool = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}

// DefaultSubnetSize is the prefix length of subnets carved from a pool.
const DefaultSubnetSize = 24

// NextSubnet returns the lowest subnet of prefix length bits inside one of
// pools (tried in order) that overlaps none of used. It fails with
// ErrExhausted when every candidate overlaps, and ErrBadSubnet when bits
// does not fit a pool's IPv4 range.
func NextSubnet(pools []netip.Prefix, bits int, used []netip.Prefix) (netip.Prefix, error) {
	if bits < 1 || bits > 30 {
		return netip.Prefix{}, fmt.Errorf("%w: subnet size /%d: use /1 to /30", ErrBadSubnet, bits)
	}
	for _, pool := range pools {
		pool = pool.Masked()
		if !pool.Addr().Is4() || pool.Bits() > bits {
			continue
		}
		start := u32(pool.Addr())
		step := uint64(1) << (32 - bits)
		end := uint64(start) + uint64(1)<<(32-pool.Bits())
		for a := uint64(start); a < end; a += step {
			cand := netip.PrefixFrom(addr(uint32(a)), bits)
			clash := -1
			for i, u := range used {
				if u.Overlaps(cand) {
					clash = i
					break
				}
			}
			if clash < 0 {
				return cand, nil
			}
			// Skip past the clashing subnet when it is larger than a
			// candidate, so a /8 in use costs one step, not 65,536.
			if u := used[clash].Masked(); u.Bits() < bits {
				next := uint64(u32(u.Addr())) + uint64(1)<<(32-u.Bits())
				if next > a+step {
					a = next - step
				}
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("%w: no free /%d left in address pools %v", ErrExhausted, bits, pools)
}

// NextVNI returns the lowest VNI in [MinVNI, MaxVNI] not in used.
func NextVNI(used []uint32) (uint32, error) {
	s := slices.Clone(used)
	slices.Sort(s)
	next := MinVNI
	for _, v := range s {
		if v < next {
			continue
		}
		if v > next {
			break
		}
		next++
	}
	if next > MaxVNI {
		return 0, fmt.Errorf("%w: every VXLAN ID is taken", ErrExhausted)
	}
	return next, nil
}

// Gateway returns the default gateway of a subnet: its first host address.
func Gateway(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

// CheckSubnet reports whether subnet can hold overlay addresses: IPv4,
// given as its network address, with at least 4 addresses (/30).
func CheckSubnet(subnet netip.Prefix) error {
	switch {
	case !subnet.IsValid():
		return fmt.Errorf("%w: not a CIDR", ErrBadSubnet)
	case !subnet.Addr().Is4():
		return fmt.Errorf("%w: %s is not IPv4 (overlays carry IPv4 only)", ErrBadSubnet, subnet)
	case subnet.Masked() != subnet:
		return fmt.Errorf("%w: %s has host bits set: write %s", ErrBadSubnet, subnet, subnet.Masked())
	case subnet.Bits() > 30:
		return fmt.Errorf("%w: %s is too small: use /30 or larger", ErrBadSubnet, subnet)
	}
	return nil
}

// HostCount is how many addresses of subnet can be handed out: all but
// the network and broadcast addresses.
func HostCount(subnet netip.Prefix) int {
	return 1<<(32-subnet.Bits()) - 2
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
