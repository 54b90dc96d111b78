package bridge

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
)

// allocator hands out the task addresses of one subnet: every address but
// the network address, the gateway (the first) and the broadcast (the
// last), to one task at a time. It searches from the address after the
// last one handed out (the cursor), wrapping around, so a freed address
// is reused as late as possible. It does no I/O and is not safe for
// concurrent use.
type allocator struct {
	subnet netip.Prefix
	base   uint32 // the subnet's address
	first  uint32 // offset of the first task address (2)
	count  uint32 // number of task addresses
	byTask map[string]netip.Addr
	byAddr map[netip.Addr]string
	last   netip.Addr // cursor: the last address handed out; zero if none
}

// newAllocator returns an empty allocator of subnet, which must be an
// IPv4 subnet of MinPrefixBits to MaxPrefixBits bits (Config checks it).
func newAllocator(subnet netip.Prefix) *allocator {
	b := subnet.Addr().As4()
	return &allocator{
		subnet: subnet,
		base:   binary.BigEndian.Uint32(b[:]),
		first:  2,
		count:  uint32(1)<<(32-subnet.Bits()) - 3,
		byTask: map[string]netip.Addr{},
		byAddr: map[netip.Addr]string{},
	}
}

func (a *allocator) addr(off uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a.base+off)
	return netip.AddrFrom4(b)
}

// offset returns addr's position among the task addresses (0..count-1),
// or false when addr is not a task address of the subnet.
func (a *allocator) offset(addr netip.Addr) (uint32, bool) {
	if !addr.Is4() || !a.subnet.Contains(addr) {
		return 0, false
	}
	b := addr.As4()
	off := binary.BigEndian.Uint32(b[:]) - a.base
	if off < a.first || off-a.first >= a.count {
		return 0, false
	}
	return off - a.first, true
}

// lookup returns the address of task, if it has one.
func (a *allocator) lookup(task string) (netip.Addr, bool) {
	addr, ok := a.byTask[task]
	return addr, ok
}

// allocate returns task's address, handing out the next free one after
// the cursor when it has none; fresh tells which. It errs with
// ErrExhausted when no address is free.
func (a *allocator) allocate(task string) (addr netip.Addr, fresh bool, err error) {
	if addr, ok := a.byTask[task]; ok {
		return addr, false, nil
	}
	start := uint32(0)
	if pos, ok := a.offset(a.last); ok {
		start = (pos + 1) % a.count
	}
	for i := uint32(0); i < a.count; i++ {
		cand := a.addr(a.first + (start+i)%a.count)
		if _, taken := a.byAddr[cand]; taken {
			continue
		}
		a.byTask[task] = cand
		a.byAddr[cand] = task
		a.last = cand
		return cand, true, nil
	}
	return netip.Addr{}, false, fmt.Errorf("%w: all %d task addresses of %v are allocated; detach tasks or configure a larger Config.Subnet", ErrExhausted, a.count, a.subnet)
}

// release frees task's address and returns it; false if it had none.
// The cursor does not move.
func (a *allocator) release(task string) (netip.Addr, bool) {
	addr, ok := a.byTask[task]
	if !ok {
		return netip.Addr{}, false
	}
	delete(a.byTask, task)
	delete(a.byAddr, addr)
	return addr, true
}

// restore records that task holds addr (as loaded from the state file).
// It errs when addr is not a task address of the subnet (outOfRange) or
// is already held by another task, or task already holds another address.
func (a *allocator) restore(task string, addr netip.Addr) (outOfRange bool, err error) {
	if _, ok := a.offset(addr); !ok {
		return true, fmt.Errorf("address %v of task %q is not a task address of %v", addr, task, a.subnet)
	}
	if other, ok := a.byAddr[addr]; ok && other != task {
		return false, fmt.Errorf("address %v is recorded for both task %q and task %q", addr, other, task)
	}
	if have, ok := a.byTask[task]; ok && have != addr {
		return false, fmt.Errorf("task %q is recorded with both %v and %v", task, have, addr)
	}
	a.byTask[task] = addr
	a.byAddr[addr] = task
	return false, nil
}

// setCursor moves the cursor to last when it is a task address of the
// subnet, and clears it otherwise.
func (a *allocator) setCursor(last netip.Addr) {
	if _, ok := a.offset(last); ok {
		a.last = last
		return
	}
	a.last = netip.Addr{}
}

// tasks returns a copy of the allocations.
func (a *allocator) tasks() map[string]netip.Addr { return maps.Clone(a.byTask) }
