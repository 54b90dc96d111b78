package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/shoalhq/shoal/overlay/internal/ipv4"
)

// Service is one virtual IP and the task addresses it balances over.
// Connections to VIP on any port go to one of Backends, chosen at random
// per connection, on the same port. IPv4 only.
type Service struct {
	// VIP is the virtual address. It must be a unicast IPv4 address that is
	// configured nowhere, unique among the services of a namespace and not
	// a backend of any of them.
	VIP netip.Addr
	// Backends are the task addresses, in any order, without duplicates.
	// An empty list is valid: connections to the VIP are then refused.
	Backends []netip.Addr
}

// ErrInvalidVIP is returned (wrapped) when a VIP is not a unicast IPv4
// address (zero, IPv6, IPv4-mapped IPv6, unspecified, loopback, multicast
// or broadcast).
var ErrInvalidVIP = errors.New("a VIP must be a unicast IPv4 address")

// ErrInvalidBackend is returned (wrapped) when a backend is not a unicast
// IPv4 address.
var ErrInvalidBackend = errors.New("a backend must be a unicast IPv4 address")

// ErrDuplicateVIP is returned (wrapped) when two services share a VIP.
var ErrDuplicateVIP = errors.New("two services have the same VIP; give each service its own")

// ErrDuplicateBackend is returned (wrapped) when a service lists the same
// backend twice.
var ErrDuplicateBackend = errors.New("a service lists the same backend twice; list each task address once")

// ErrVIPIsBackend is returned (wrapped) when an address is both a VIP and
// a backend (of the same or another service): a VIP must be configured
// nowhere.
var ErrVIPIsBackend = errors.New("an address is both a VIP and a backend; VIPs must not be task addresses")

// validate checks services against the rules of Service and returns the
// first violation found, wrapped in a sentinel error and naming the field.
func validate(services []Service) error {
	vips := make(map[netip.Addr]int, len(services))
	for i, s := range services {
		if !ipv4.IsUnicast(s.VIP) {
			return fmt.Errorf("vip: services[%d].VIP %s: %w", i, ipv4.Describe(s.VIP), ErrInvalidVIP)
		}
		if j, dup := vips[s.VIP]; dup {
			return fmt.Errorf("vip: services[%d].VIP %s is also services[%d].VIP: %w", i, s.VIP, j, ErrDuplicateVIP)
		}
		vips[s.VIP] = i
	}
	for i, s := range services {
		// A backend that is a VIP is reported before an invalid or
		// repeated backend that comes after it in the list.
		fault := ipv4.CheckList(s.Backends)
		checked := s.Backends
		if fault != nil {
			checked = s.Backends[:fault.Index]
		}
		for k, b := range checked {
			if j, isVIP := vips[b]; isVIP {
				return fmt.Errorf("vip: services[%d].Backends[%d] %s is services[%d].VIP: %w", i, k, b, j, ErrVIPIsBackend)
			}
		}
		if fault == nil {
			continue
		}
		if fault.Repeats < 0 {
			return fmt.Errorf("vip: services[%d].Backends[%d] %s: %w", i, fault.Index, ipv4.Describe(fault.Addr), ErrInvalidBackend)
		}
		return fmt.Errorf("vip: services[%d].Backends[%d] %s is also services[%d].Backends[%d]: %w", i, fault.Index, fault.Addr, i, fault.Repeats, ErrDuplicateBackend)
	}
	return nil
}

// normalize returns a copy of services sorted by VIP, each with its
// backends sorted and an empty backend list as nil: the form Read returns.
func normalize(services []Service) []Service {
	if len(services) == 0 {
		return nil
	}
	out := make([]Service, len(services))
	for i, s := range services {
		out[i] = Service{VIP: s.VIP}
		if len(s.Backends) > 0 {
			out[i].Backends = slices.Clone(s.Backends)
			slices.SortFunc(out[i].Backends, netip.Addr.Compare)
		}
	}
	slices.SortFunc(out, func(a, b Service) int { return a.VIP.Compare(b.VIP) })
	return out
}
