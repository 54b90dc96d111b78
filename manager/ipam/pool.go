package ipam

import (
	"fmt"
	"math/bits"
	"net/netip"
)

// Pool hands out the host addresses of one IPv4 subnet. The zero value is
// not usable: make one with NewPool. Not safe for concurrent use.
//
// Allocate moves a cursor forward and wraps, so a released address is
// handed out again only after the rest of the subnet has been: stale ARP
// and conntrack entries of a dead task have time to expire.
type Pool struct {
	subnet netip.Prefix
	base   uint32
	size   uint32 // addresses in the subnet, network and broadcast included
	used   []uint64
	inUse  int
	cursor uint32 // offset where the next search starts
}

// NewPool returns a pool of subnet's host addresses (network and
// broadcast excluded). It fails with ErrBadSubnet (see CheckSubnet).
func NewPool(subnet netip.Prefix) (*Pool, error) {
	if err := CheckSubnet(subnet); err != nil {
		return nil, err
	}
	size := uint32(1) << (32 - subnet.Bits())
	p := &Pool{subnet: subnet, base: u32(subnet.Addr()), size: size, used: make([]uint64, (size+63)/64), cursor: 1}
	p.set(0)
	p.set(size - 1)
	return p, nil
}

// Subnet returns the pool's subnet.
func (p *Pool) Subnet() netip.Prefix { return p.subnet }

// Free returns how many addresses can still be allocated.
func (p *Pool) Free() int { return int(p.size) - 2 - p.inUse }

// InUse returns how many addresses are allocated or claimed.
func (p *Pool) InUse() int { return p.inUse }

// Allocate returns a free address, marking it used. ErrExhausted when
// none is left.
func (p *Pool) Allocate() (netip.Addr, error) {
	for i := uint32(0); i < p.size; i++ {
		off := (p.cursor + i) % p.size
		if !p.isSet(off) {
			p.set(off)
			p.inUse++
			p.cursor = (off + 1) % p.size
			return addr(p.base + off), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w: subnet %s has no free address (%d in use)", ErrExhausted, p.subnet, p.inUse)
}

// Last returns the address Allocate handed out last (invalid if none).
func (p *Pool) Last() netip.Addr {
	if p.cursor == 1 && !p.isSet(1) {
		return netip.Addr{}
	}
	return addr(p.base + (p.cursor+p.size-1)%p.size)
}

// ContinueAfter makes the next Allocate search from the address after a,
// as if a had been the last one handed out: a pool rebuilt from the store
// keeps the order of the pool it replaces. An address outside the subnet
// is ignored.
func (p *Pool) ContinueAfter(a netip.Addr) {
	if !a.Is4() || !p.subnet.Contains(a) {
		return
	}
	p.cursor = (u32(a) - p.base + 1) % p.size
}

// Claim marks a as used: an address found in the store, or one asked for
// by name (a gateway). ErrOutOfRange when a is not a host address of the
// subnet; ErrInUse when it is already used.
func (p *Pool) Claim(a netip.Addr) error {
	off, err := p.offset(a)
	if err != nil {
		return err
	}
	if p.isSet(off) {
		return fmt.Errorf("%w: %s in %s", ErrInUse, a, p.subnet)
	}
	p.set(off)
	p.inUse++
	return nil
}

// Release frees a. Releasing a free or foreign address does nothing.
func (p *Pool) Release(a netip.Addr) {
	off, err := p.offset(a)
	if err != nil || !p.isSet(off) {
		return
	}
	p.used[off/64] &^= 1 << (off % 64)
	p.inUse--
}

// Contains reports whether a is allocated or claimed.
func (p *Pool) Contains(a netip.Addr) bool {
	off, err := p.offset(a)
	return err == nil && p.isSet(off)
}

// offset returns a's offset in the subnet, refusing the network and
// broadcast addresses and addresses outside.
func (p *Pool) offset(a netip.Addr) (uint32, error) {
	if !a.Is4() || !p.subnet.Contains(a) {
		return 0, fmt.Errorf("%w: %s is outside %s", ErrOutOfRange, a, p.subnet)
	}
	off := u32(a) - p.base
	if off == 0 || off == p.size-1 {
		return 0, fmt.Errorf("%w: %s is the network or broadcast address of %s", ErrOutOfRange, a, p.subnet)
	}
	return off, nil
}

func (p *Pool) isSet(off uint32) bool { return p.used[off/64]&(1<<(off%64)) != 0 }
func (p *Pool) set(off uint32)        { p.used[off/64] |= 1 << (off % 64) }

// usedCount recounts the set bits (for tests).
func (p *Pool) usedCount() int {
	n := 0
	for _, w := range p.used {
		n += bits.OnesCount64(w)
	}
	return n - 2
}
