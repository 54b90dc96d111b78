package overlay

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/shoalhq/shoal/overlay/gossip"
	"github.com/shoalhq/shoal/overlay/ingress"
	"github.com/shoalhq/shoal/overlay/vxlan"
	"github.com/shoalhq/shoal/proto/api"
)

// selfNetNS names the agent's own network namespace, the host's.
const selfNetNS = "/proc/self/ns/net"

// nodeEndpointPrefix starts the IDs of the endpoints hosts publish for
// themselves on the ingress network (their gateway address).
const nodeEndpointPrefix = "node."

// SetIngress gives the host the routing mesh: the ingress network and
// this node's own address on it (from the managers' heartbeat answers).
// The host then carries the ingress network whether or not it runs
// tasks on it, publishes its gateway address to the other hosts, and
// accepts every published port. Idempotent; nil ingress does nothing.
func (h *Host) SetIngress(n *api.Network, attachments []*api.NetworkAttachment) error {
	if n == nil {
		return nil
	}
	var own netip.Prefix
	for _, a := range attachments {
		if a.GetNetworkId() == n.GetId() && len(a.GetAddresses()) > 0 {
			own, _ = netip.ParsePrefix(a.GetAddresses()[0])
		}
	}
	if !own.IsValid() {
		return nil // not allocated yet: a later heartbeat brings it
	}
	h.mu.Lock()
	same := h.ingress != nil && h.ingress.GetId() == n.GetId() && h.ingressAddr == own
	h.networks[n.GetId()] = n
	h.mu.Unlock()
	if same {
		return nil
	}
	subnet, _, err := subnetOf(n)
	if err != nil {
		return err
	}
	if _, err := h.vx.EnsureNetwork(vxlan.Network{VNI: n.GetVni(), Subnet: subnet, Gateway: own.Addr()}); err != nil {
		return fmt.Errorf("overlay: ingress network: %w", err)
	}
	err = h.table.Publish(gossip.Endpoint{
		ID:        nodeEndpointPrefix + h.cfg.NodeID,
		NetworkID: n.GetId(),
		Addr:      own.Addr(),
		MAC:       vxlan.BridgeMAC(n.GetVni(), h.cfg.VTEP).String(),
		VTEP:      h.cfg.VTEP,
	})
	if err != nil {
		return fmt.Errorf("overlay: publish the node's ingress address: %w", err)
	}
	h.mu.Lock()
	h.ingress, h.ingressAddr = n, own
	h.mu.Unlock()
	h.kickProgram()
	return nil
}

// kickProgram asks the background loop to reprogram.
func (h *Host) kickProgram() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// ingressGateway returns the bridge address a task's ingress attachment
// uses on this host: the node's own ingress address, not the network's
// shared gateway.
func (h *Host) ingressGateway(n *api.Network) (netip.Addr, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.ingressAddr.IsValid() || h.ingress.GetId() != n.GetId() {
		return netip.Addr{}, fmt.Errorf("%w: this node's ingress address is not known yet", ErrUnknownNetwork)
	}
	return h.ingressAddr.Addr(), nil
}

// programMesh sets this host's published ports: every port a service
// publishes through the mesh (from the ingress endpoints), DNATed to its
// tasks on any host, and the host-mode ports of the tasks running here,
// DNATed to them.
func (h *Host) programMesh(eps []gossip.Endpoint, locals []*local) error {
	type key struct {
		proto        string
		port, target uint16
	}
	backends := map[key][]netip.Addr{}
	var keys []key
	add := func(k key, a netip.Addr) {
		if _, seen := backends[k]; !seen {
			keys = append(keys, k)
		}
		if !slices.Contains(backends[k], a) {
			backends[k] = append(backends[k], a)
		}
	}
	for _, ep := range eps {
		for _, p := range ep.Ports {
			if proto, published, target, ok := parsePort(p); ok {
				add(key{proto, published, target}, ep.Addr)
			}
		}
	}
	for _, l := range locals {
		addr := h.localAddr(l.task)
		if !addr.IsValid() {
			continue
		}
		for _, p := range l.task.GetEndpoint().GetPorts() {
			if p.GetPublishMode() != api.PortConfig_PUBLISH_MODE_HOST || p.GetPublishedPort() == 0 {
				continue
			}
			proto := ingress.TCP
			if p.GetProtocol() == api.PortConfig_PROTOCOL_UDP {
				proto = ingress.UDP
			}
			add(key{proto, uint16(p.GetPublishedPort()), uint16(p.GetTargetPort())}, addr)
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.port != b.port {
			return int(a.port) - int(b.port)
		}
		return strings.Compare(a.proto, b.proto)
	})
	var pub []ingress.Published
	for _, k := range keys {
		pub = append(pub, ingress.Published{Protocol: k.proto, Port: k.port, TargetPort: k.target, Backends: backends[k]})
	}
	return ingress.ApplyHost(selfNetNS, pub)
}

// localAddr is the address a host-mode port of a local task leads to: its
// bridge address, or its address on its first overlay network.
func (h *Host) localAddr(t *api.Task) netip.Addr {
	if t.GetSpec().NetworkMode() == api.NetworkBridge {
		return h.bridge.Tasks()[t.GetId()]
	}
	for _, a := range t.GetNetworks() {
		if h.isIngress(a.GetNetworkId()) {
			continue
		}
		if p, _, err := addressOf(a); err == nil {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// programTaskMesh sets the return path of a local task attached to the
// ingress network: replies to a connection that came in through node k
// go back through node k, so the client sees its own address answered.
func (h *Host) programTaskMesh(l *local, n *api.Network, eps []gossip.Endpoint) error {
	name := ""
	for i, a := range l.task.GetNetworks() {
		if a.GetNetworkId() == n.GetId() {
			name = ifName(l.task, i)
		}
	}
	if name == "" {
		return nil
	}
	subnet, _, err := subnetOf(n)
	if err != nil {
		return err
	}
	side := ingress.TaskSide{IfName: name}
	for _, ep := range eps {
		if !strings.HasPrefix(ep.ID, nodeEndpointPrefix) {
			continue
		}
		mac, err := net.ParseMAC(ep.MAC)
		if err != nil {
			continue
		}
		side.Gateways = append(side.Gateways, ingress.Gateway{Index: offset(subnet, ep.Addr), Addr: ep.Addr, MAC: mac})
	}
	for _, p := range l.task.GetEndpoint().GetPorts() {
		if p.GetPublishMode() == api.PortConfig_PUBLISH_MODE_INGRESS && p.GetProtocol() == api.PortConfig_PROTOCOL_UDP {
			side.UDPPorts = append(side.UDPPorts, uint16(p.GetTargetPort()))
		}
	}
	return ingress.ApplyTask(l.nsPath, side)
}

// offset is an address's position in its subnet: a small number unique
// per node on the ingress network, used for its mark and routing table.
func offset(subnet netip.Prefix, a netip.Addr) int {
	u := func(x netip.Addr) int {
		b := x.As4()
		return int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	}
	return u(a) - u(subnet.Masked().Addr())
}

// meshPorts renders a task's published ingress ports for its ingress
// endpoint.
func meshPorts(t *api.Task) []string {
	var out []string
	for _, p := range t.GetEndpoint().GetPorts() {
		if p.GetPublishMode() != api.PortConfig_PUBLISH_MODE_INGRESS || p.GetPublishedPort() == 0 {
			continue
		}
		proto := "tcp"
		if p.GetProtocol() == api.PortConfig_PROTOCOL_UDP {
			proto = "udp"
		}
		out = append(out, fmt.Sprintf("%s/%d:%d", proto, p.GetPublishedPort(), p.GetTargetPort()))
	}
	return out
}

// parsePort reads PROTO/PUBLISHED:TARGET.
func parsePort(s string) (proto string, published, target uint16, ok bool) {
	proto, rest, ok1 := strings.Cut(s, "/")
	pub, tgt, ok2 := strings.Cut(rest, ":")
	p, err1 := strconv.ParseUint(pub, 10, 16)
	t, err2 := strconv.ParseUint(tgt, 10, 16)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return proto, uint16(p), uint16(t), true
}
