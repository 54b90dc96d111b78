package overlay

import (
	"net/netip"
	"slices"

	"github.com/shoalhq/shoal/overlay/dns"
	"github.com/shoalhq/shoal/overlay/gossip"
)

// networkService is a service as the containers on one network see it:
// its DNS answers and the backends of its VIP.
type networkService struct {
	DNS      dns.Service
	Backends []netip.Addr
}

// networkServices returns, in service ID order, the services of the
// network named netName as its containers see them, from the network's
// endpoints eps: every service with endpoints, and every service in
// known (services seen on the network before, by ID) whose tasks all
// left, with no backend, so that its VIP refuses connections at once
// instead of letting clients hang. known gains the services with
// endpoints and loses those whose VIP a live task or another service
// now holds: such a service is gone (the managers handed its VIP out
// again), and keeping it would make its VIP shadow that address.
func networkServices(netName string, eps []gossip.Endpoint, known map[string]dns.Service) []networkService {
	taken := map[netip.Addr]bool{}
	byID := map[string]*networkService{}
	for _, ep := range eps {
		taken[ep.Addr] = true
		if ep.VIP.IsValid() {
			taken[ep.VIP] = true
		}
		if ep.ServiceID == "" {
			continue
		}
		s := byID[ep.ServiceID]
		if s == nil {
			s = &networkService{DNS: dns.Service{Name: ep.ServiceName, Network: netName, VIP: ep.VIP, Aliases: ep.Aliases}}
			byID[ep.ServiceID] = s
		}
		s.DNS.Tasks = append(s.DNS.Tasks, dns.Task{Addr: ep.Addr})
		s.Backends = append(s.Backends, ep.Addr)
	}
	for id, s := range byID {
		known[id] = dns.Service{Name: s.DNS.Name, Network: s.DNS.Network, VIP: s.DNS.VIP, Aliases: s.DNS.Aliases}
	}
	for id, svc := range known {
		switch {
		case byID[id] != nil:
		case svc.VIP.IsValid() && taken[svc.VIP]:
			delete(known, id)
		default:
			byID[id] = &networkService{DNS: svc}
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]networkService, 0, len(ids))
	for _, id := range ids {
		out = append(out, *byID[id])
	}
	return out
}
