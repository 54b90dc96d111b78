package gossip

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
)

// Endpoint is one task's attachment to one overlay network, as its host
// publishes it. Every agent with tasks on NetworkID uses it to program
// VXLAN forwarding (MAC behind VTEP), the service's VIP backends and DNS.
type Endpoint struct {
	// ID names the endpoint (the task's attachment); unique per network.
	ID string
	// NetworkID is the overlay network the endpoint is attached to.
	NetworkID string
	// ServiceID and ServiceName are the task's service; both empty for a
	// container attached without a service.
	ServiceID   string
	ServiceName string
	// Aliases are the DNS names the endpoint answers to on this network
	// besides the service name. Publish sorts them and drops duplicates.
	Aliases []string
	// Addr is the task's address on the overlay.
	Addr netip.Addr
	// MAC is the task's interface address, in the canonical lower-case
	// colon form (Publish normalises it).
	MAC string
	// VTEP is the underlay address of the host running the task: VXLAN
	// frames for MAC go there.
	VTEP netip.Addr
	// VIP is the service's virtual IP on this network; the zero Addr when
	// the service has none (endpoint mode dnsrr, or no service).
	VIP netip.Addr
	// Ports are the ports the service publishes through the routing
	// mesh, as PROTO/PUBLISHED:TARGET (tcp/8080:80), on the ingress
	// network's endpoints: every host needs them to accept the port,
	// whether or not it runs a task of the service.
	Ports []string
	// Node is the name of the host that published the endpoint. The table
	// sets it; whatever a caller passes to Publish is overwritten.
	Node string
}

// portRE is the form of a published port.
var portRE = regexp.MustCompile(`^(tcp|udp)/[1-9][0-9]{0,4}:[1-9][0-9]{0,4}$`)

// normalize returns ep in the form the table stores and compares: aliases
// sorted without duplicates, addresses unmapped and without zone, the MAC
// canonical. It
// errs (ErrInvalidEndpoint) on an endpoint that consumers could not use.
func normalize(ep Endpoint) (Endpoint, error) {
	bad := func(format string, args ...any) (Endpoint, error) {
		return Endpoint{}, fmt.Errorf("%w %q: %s", ErrInvalidEndpoint, ep.ID, fmt.Sprintf(format, args...))
	}
	if ep.ID == "" {
		return bad("empty ID: every endpoint needs the ID of its task attachment")
	}
	if ep.NetworkID == "" {
		return bad("empty NetworkID: name the overlay network the task is attached to")
	}
	if !ep.Addr.IsValid() {
		return bad("no task address (Addr)")
	}
	if !ep.VTEP.IsValid() {
		return bad("no VTEP: set the host's underlay address")
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return bad("MAC %q: %v", ep.MAC, err)
	}
	out := ep
	out.Addr = ep.Addr.Unmap().WithZone("")
	out.VTEP = ep.VTEP.Unmap().WithZone("")
	out.VIP = ep.VIP.Unmap().WithZone("")
	out.MAC = mac.String()
	out.Aliases = nil
	for _, a := range ep.Aliases {
		if a == "" {
			return bad("empty alias")
		}
		out.Aliases = append(out.Aliases, a)
	}
	slices.Sort(out.Aliases)
	out.Aliases = slices.Compact(out.Aliases)
	out.Ports = nil
	for _, p := range ep.Ports {
		if !portRE.MatchString(p) {
			return bad("port %q: write PROTO/PUBLISHED:TARGET, e.g. tcp/8080:80", p)
		}
		out.Ports = append(out.Ports, p)
	}
	slices.Sort(out.Ports)
	out.Ports = slices.Compact(out.Ports)
	return out, nil
}

// equal reports whether a and b are the same endpoint, field by field.
func (ep Endpoint) equal(o Endpoint) bool {
	return ep.ID == o.ID && ep.NetworkID == o.NetworkID &&
		ep.ServiceID == o.ServiceID && ep.ServiceName == o.ServiceName &&
		slices.Equal(ep.Aliases, o.Aliases) && ep.Addr == o.Addr &&
		ep.MAC == o.MAC && ep.VTEP == o.VTEP && ep.VIP == o.VIP &&
		slices.Equal(ep.Ports, o.Ports) && ep.Node == o.Node
}

// clone returns a copy of ep that shares no memory with it.
func (ep Endpoint) clone() Endpoint {
	ep.Aliases = slices.Clone(ep.Aliases)
	ep.Ports = slices.Clone(ep.Ports)
	return ep
}

// compareEndpoints orders endpoints by ID, then by publishing node (two
// hosts may briefly publish the same ID while a task moves).
func compareEndpoints(a, b Endpoint) int {
	if c := cmp.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	return cmp.Compare(a.Node, b.Node)
}
