package ingress

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/shoalhq/shoal/overlay/internal/ipv4"
)

// Protocols a port can be published for.
const (
	TCP = "tcp"
	UDP = "udp"
)

// MinSlots is the number of slots of a service's slot map when it has at
// most that many backends: a new connection picks a slot at random
// (numgen random mod slots), and the slots are filled round-robin with
// the backends. With n backends each gets ⌊16/n⌋ or ⌈16/n⌉ of the 16
// slots (for 3 backends: 6/16, 5/16 and 5/16 of the connections). A
// service with more backends has one slot per backend.
const MinSlots = 16

// Published is one port published through the routing mesh: a connection
// (TCP) or datagram flow (UDP) to Port on any local address of a node is
// forwarded, without source NAT, to TargetPort of one of Backends, chosen
// at random per flow. IPv4 only.
type Published struct {
	// Protocol is TCP or UDP.
	Protocol string
	// Port is the published port, 1..65535, unique per protocol on a host.
	Port uint16
	// TargetPort is the task's port, 1..65535.
	TargetPort uint16
	// Backends are the service's healthy tasks' addresses on the ingress
	// network (on any host), unicast IPv4, in any order, without
	// duplicates. An empty list is valid: the port then refuses at once
	// (TCP reset, ICMP port unreachable for UDP).
	Backends []netip.Addr
}

// protoNumber returns the IP protocol number of a valid protocol name.
func protoNumber(p string) byte {
	if p == UDP {
		return 17 // IPPROTO_UDP
	}
	return 6 // IPPROTO_TCP
}

// validateServices checks services against the rules of Published and
// returns the first violation, wrapped in a sentinel error and naming the
// field.
func validateServices(services []Published) error {
	type key struct {
		proto string
		port  uint16
	}
	ports := make(map[key]int, len(services))
	for i, s := range services {
		if s.Protocol != TCP && s.Protocol != UDP {
			return fmt.Errorf("ingress: services[%d].Protocol %q: %w", i, s.Protocol, ErrInvalidProtocol)
		}
		if s.Port == 0 {
			return fmt.Errorf("ingress: services[%d].Port is 0: %w", i, ErrInvalidPort)
		}
		if s.TargetPort == 0 {
			return fmt.Errorf("ingress: services[%d].TargetPort is 0: %w", i, ErrInvalidPort)
		}
		k := key{s.Protocol, s.Port}
		if j, dup := ports[k]; dup {
			return fmt.Errorf("ingress: services[%d] publishes %s/%d like services[%d]: %w", i, s.Protocol, s.Port, j, ErrDuplicatePort)
		}
		ports[k] = i
		if f := ipv4.CheckList(s.Backends); f != nil {
			if f.Repeats < 0 {
				return fmt.Errorf("ingress: services[%d].Backends[%d] %s: %w", i, f.Index, ipv4.Describe(f.Addr), ErrInvalidBackend)
			}
			return fmt.Errorf("ingress: services[%d].Backends[%d] %s is also Backends[%d]: %w", i, f.Index, f.Addr, f.Repeats, ErrDuplicateBackend)
		}
	}
	return nil
}

// normalizeServices returns a copy of services sorted by protocol then
// port, each with its backends sorted and an empty list as nil: the form
// ReadHost returns.
func normalizeServices(services []Published) []Published {
	if len(services) == 0 {
		return nil
	}
	out := make([]Published, len(services))
	for i, s := range services {
		out[i] = Published{Protocol: s.Protocol, Port: s.Port, TargetPort: s.TargetPort}
		if len(s.Backends) > 0 {
			out[i].Backends = slices.Clone(s.Backends)
			slices.SortFunc(out[i].Backends, netip.Addr.Compare)
		}
	}
	slices.SortFunc(out, func(a, b Published) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	})
	return out
}

// slotCount is the number of slots for n backends (n > 0).
func slotCount(n int) int { return max(n, MinSlots) }

// fillSlots returns the slot table of sorted backends: slot i holds
// backends[i mod n].
func fillSlots(backends []netip.Addr) []netip.Addr {
	slots := make([]netip.Addr, slotCount(len(backends)))
	for i := range slots {
		slots[i] = backends[i%len(backends)]
	}
	return slots
}
