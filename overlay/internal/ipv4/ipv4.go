// Package ipv4 holds the checks of IPv4 addresses that the overlay
// packages validate their input with, so that they agree on what a
// usable task or virtual address is.
package ipv4

import "net/netip"

// broadcast is the limited broadcast address.
var broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// IsUnicast reports whether a is a unicast IPv4 address: not the zero
// value, not IPv6 nor IPv4-mapped IPv6, not unspecified (0.0.0.0),
// loopback, multicast or the limited broadcast address.
func IsUnicast(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && !a.IsLoopback() && !a.IsMulticast() && a != broadcast
}

// Describe prints an address for an error message, including the zero
// value, which netip prints as "invalid IP": it gives "(unset)".
func Describe(a netip.Addr) string {
	if !a.IsValid() {
		return "(unset)"
	}
	return a.String()
}

// ListFault is the first fault of an address list found by CheckList.
type ListFault struct {
	// Index is the position of the faulty address in the list.
	Index int
	// Addr is the faulty address.
	Addr netip.Addr
	// Repeats is the position of the earlier equal address when Addr is
	// a repetition, and -1 when Addr is not a unicast IPv4 address.
	Repeats int
}

// CheckList checks list in order and returns its first address that is
// not unicast (IsUnicast) or repeats an earlier one, or nil when every
// address is unicast and listed once. An address that is both is
// reported as not unicast.
func CheckList(list []netip.Addr) *ListFault {
	seen := make(map[netip.Addr]int, len(list))
	for k, a := range list {
		if !IsUnicast(a) {
			return &ListFault{Index: k, Addr: a, Repeats: -1}
		}
		if j, dup := seen[a]; dup {
			return &ListFault{Index: k, Addr: a, Repeats: j}
		}
		seen[a] = k
	}
	return nil
}
