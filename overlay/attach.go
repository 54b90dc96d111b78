package overlay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/shoalhq/shoal/overlay/dns"
	"github.com/shoalhq/shoal/overlay/sandbox"
	"github.com/shoalhq/shoal/overlay/vip"
	"github.com/shoalhq/shoal/overlay/vxlan"
	"github.com/shoalhq/shoal/proto/api"
)

// Attach wires the network namespace at nsPath for task t. A task in
// bridge mode (no network of its own) gets eth0 on the node's bridge,
// with the default route and outbound NAT. Then, for each of its network
// attachments (eth0, eth1, … in order, after the bridge's), the network's
// bridge and VXLAN device on this host, a veth with the task's address
// and MAC, and the default route through the first overlay network that
// is not internal; then the container's DNS server (which forwards
// outside names to the host's resolvers) and VIP rules, programmed from
// the current endpoint table before Attach returns. It returns the path
// of the resolv.conf to mount in the container ("" in host and none
// modes). Idempotent. ErrUnknownNetwork when a network's details have not
// arrived yet.
func (h *Host) Attach(ctx context.Context, t *api.Task, nsPath string) (string, error) {
	mode := t.GetSpec().NetworkMode()
	if mode == api.NetworkHost || mode == api.NetworkNone {
		return "", nil
	}
	if mode == api.NetworkBridge {
		// eth0 on the node's bridge, with the default route and NAT out.
		if _, err := h.bridge.Attach(t.GetId(), nsPath); err != nil {
			return "", fmt.Errorf("overlay: task %s on the bridge network: %w", t.GetId(), err)
		}
	}
	h.mu.Lock()
	nets := make([]*api.Network, len(t.GetNetworks()))
	for i, a := range t.GetNetworks() {
		if nets[i] = h.networks[a.GetNetworkId()]; nets[i] == nil {
			h.mu.Unlock()
			return "", fmt.Errorf("%w: %s (task %s)", ErrUnknownNetwork, a.GetNetworkId(), t.GetId())
		}
	}
	h.mu.Unlock()
	routed := false
	for i, a := range t.GetNetworks() {
		n := nets[i]
		subnet, gw, err := subnetOf(n)
		if err != nil {
			return "", err
		}
		if n.GetIngress() {
			// The bridge holds this node's own ingress address.
			if gw, err = h.ingressGateway(n); err != nil {
				return "", err
			}
		}
		bridge, err := h.vx.EnsureNetwork(vxlan.Network{VNI: n.GetVni(), Subnet: subnet, Gateway: gw})
		if err != nil {
			return "", fmt.Errorf("overlay: network %s: %w", name(n), err)
		}
		addr, mac, err := addressOf(a)
		if err != nil {
			return "", fmt.Errorf("overlay: task %s on %s: %w", t.GetId(), name(n), err)
		}
		att := sandbox.Attachment{
			TaskNS: nsPath, Bridge: bridge, HostIf: sandbox.IfNameFor(t.GetId(), n.GetId()),
			IfName: ifName(t, i), Addr: addr, MAC: mac,
		}
		if mode == "" && !routed && !n.GetSpec().GetInternal() && !n.GetIngress() && gw.IsValid() {
			att.Gateway, routed = gw, true
		}
		if err := sandbox.Attach(att); err != nil {
			return "", fmt.Errorf("overlay: attach task %s to %s: %w", t.GetId(), name(n), err)
		}
	}
	resolv := filepath.Join(h.cfg.StateDir, "resolv", t.GetId())
	if err := dns.WriteResolvConf(resolv, h.cfg.HostResolvConf); err != nil {
		return "", fmt.Errorf("overlay: resolv.conf of task %s: %w", t.GetId(), err)
	}
	l := &local{task: t, nsPath: nsPath}
	h.mu.Lock()
	h.tasks[t.GetId()] = l
	h.mu.Unlock()
	// The container starts with its forwarding, VIPs and names in place.
	if err := h.program([]*local{l}); err != nil {
		return "", err
	}
	return resolv, nil
}

// Detach undoes Attach: the DNS server leaves the namespace, the veths
// go, and a network's devices go with the host's last task on it. It
// withdraws the task's endpoints first if they are still published.
// Idempotent.
func (h *Host) Detach(ctx context.Context, t *api.Task, nsPath string) error {
	h.Withdraw(t.GetId())
	var errs []error
	if t.GetSpec().NetworkMode() == api.NetworkBridge {
		if err := h.bridge.Detach(t.GetId()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.dns.Detach(t.GetId()); err != nil && !errors.Is(err, dns.ErrNotAttached) {
		errs = append(errs, err)
	}
	for _, a := range t.GetNetworks() {
		if err := sandbox.Detach("", sandbox.IfNameFor(t.GetId(), a.GetNetworkId())); err != nil {
			errs = append(errs, err)
		}
	}
	h.mu.Lock()
	delete(h.tasks, t.GetId())
	still := map[string]bool{}
	for _, l := range h.tasks {
		for _, a := range l.task.GetNetworks() {
			still[a.GetNetworkId()] = true
		}
	}
	var gone []*api.Network
	for _, a := range t.GetNetworks() {
		if n := h.networks[a.GetNetworkId()]; n != nil && !still[n.GetId()] {
			gone = append(gone, n)
		}
	}
	h.mu.Unlock()
	for _, n := range gone {
		if err := h.vx.RemoveNetwork(n.GetVni()); err != nil {
			errs = append(errs, err)
		}
	}
	if nsPath != "" {
		if err := vip.Remove(nsPath); err != nil && !errors.Is(err, vip.ErrNamespace) {
			errs = append(errs, err)
		}
	}
	h.kickProgram() // its host-mode ports go
	return errors.Join(errs...)
}

// ifName is the name, inside the task, of the interface of its i-th
// network attachment: eth0, eth1, … after the bridge's eth0 for a task in
// bridge mode (whose only attachments are the routing mesh's).
func ifName(t *api.Task, i int) string {
	if t.GetSpec().NetworkMode() == api.NetworkBridge {
		i++
	}
	return fmt.Sprintf("eth%d", i)
}

// subnetOf returns a network's subnet and gateway.
func subnetOf(n *api.Network) (netip.Prefix, netip.Addr, error) {
	if len(n.GetIpam()) == 0 {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("overlay: network %s has no subnet", name(n))
	}
	subnet, err := netip.ParsePrefix(n.GetIpam()[0].GetSubnet())
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("overlay: network %s: subnet: %w", name(n), err)
	}
	gw, _ := netip.ParseAddr(n.GetIpam()[0].GetGateway())
	return subnet, gw, nil
}

// addressOf returns an attachment's address (with prefix length) and MAC.
func addressOf(a *api.NetworkAttachment) (netip.Prefix, net.HardwareAddr, error) {
	if len(a.GetAddresses()) == 0 {
		return netip.Prefix{}, nil, errors.New("no address allocated")
	}
	addr, err := netip.ParsePrefix(a.GetAddresses()[0])
	if err != nil {
		return netip.Prefix{}, nil, fmt.Errorf("address %q: %w", a.GetAddresses()[0], err)
	}
	mac, err := net.ParseMAC(a.GetMac())
	if err != nil {
		mac = vxlan.MACFor(addr.Addr())
	}
	return addr, mac, nil
}

// name is a network's name, for messages and DNS.
func name(n *api.Network) string { return n.GetSpec().GetAnnotations().GetName() }

// serviceName is the name of a task's service: its name without the
// ".SLOT" or ".NODEID" the orchestrator appends (the last dot is always
// the one it added, as slots and node IDs hold none).
func serviceName(t *api.Task) string {
	n := t.GetAnnotations().GetName()
	if i := strings.LastIndexByte(n, '.'); i > 0 {
		return n[:i]
	}
	return n
}
