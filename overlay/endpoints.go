package overlay

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/shoalhq/shoal/overlay/gossip"
	"github.com/shoalhq/shoal/proto/api"
)

// Publish puts the task's endpoints (one per network it attaches to) in
// the shared table: every host then forwards to it, load-balances its
// service's VIP to it and answers its name with it. Call it once the
// task runs and is healthy. Idempotent.
func (h *Host) Publish(t *api.Task) error {
	var ids []string
	var errs []error
	for _, a := range t.GetNetworks() {
		addr, _, err := addressOf(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ep := gossip.Endpoint{
			ID:          t.GetId() + "." + a.GetNetworkId(),
			NetworkID:   a.GetNetworkId(),
			ServiceID:   t.GetServiceId(),
			ServiceName: serviceName(t),
			Aliases:     a.GetAliases(),
			Addr:        addr.Addr(),
			MAC:         a.GetMac(),
			VTEP:        h.cfg.VTEP,
			VIP:         vipOf(t, a.GetNetworkId()),
		}
		if h.isIngress(a.GetNetworkId()) {
			ep.Ports = meshPorts(t)
		}
		if err := h.table.Publish(ep); err != nil {
			errs = append(errs, fmt.Errorf("overlay: publish %s: %w", ep.ID, err))
			continue
		}
		ids = append(ids, ep.ID)
	}
	h.mu.Lock()
	h.endpoint[t.GetId()] = ids
	h.mu.Unlock()
	return errors.Join(errs...)
}

// Withdraw takes the task's endpoints out of the shared table: call it
// before the task is stopped, so that no new connection reaches it.
// Idempotent.
func (h *Host) Withdraw(taskID string) error {
	h.mu.Lock()
	ids := h.endpoint[taskID]
	delete(h.endpoint, taskID)
	h.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := h.table.Withdraw(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// isIngress reports whether id is the routing-mesh network.
func (h *Host) isIngress(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ingress != nil && h.ingress.GetId() == id
}

// vipOf is the task's service VIP on a network (zero when none).
func vipOf(t *api.Task, networkID string) netip.Addr {
	for _, v := range t.GetEndpoint().GetVirtualIps() {
		if v.GetNetworkId() == networkID {
			if p, err := netip.ParsePrefix(v.GetAddr()); err == nil {
				return p.Addr()
			}
		}
	}
	return netip.Addr{}
}
