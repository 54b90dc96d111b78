package overlay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/shoalhq/shoal/overlay/dns"
	"github.com/shoalhq/shoal/overlay/gossip"
	"github.com/shoalhq/shoal/overlay/vip"
	"github.com/shoalhq/shoal/overlay/vxlan"
	"github.com/shoalhq/shoal/proto/api"
)

// settle is how long changes of the endpoint table gather before the
// host reprograms (many tasks of one update arrive together).
const settle = 5 * time.Millisecond

// follow reprograms the host whenever the endpoint table changes.
func (h *Host) follow() {
	defer h.wg.Done()
	changes, cancel := h.table.Subscribe()
	defer cancel()
	for {
		select {
		case <-h.done:
			return
		case <-changes:
		case <-h.kick:
		case <-time.After(lingerFor / 2):
			// Lingering endpoints expire.
		}
		select {
		case <-h.done:
			return
		case <-time.After(settle):
		}
		h.mu.Lock()
		locals := make([]*local, 0, len(h.tasks))
		for _, l := range h.tasks {
			locals = append(locals, l)
		}
		h.mu.Unlock()
		if err := h.program(locals); err != nil {
			h.cfg.Logger.Warn("overlay: reprogram", "err", err)
		}
	}
}

// program brings the forwarding entries of the networks of locals, and
// the VIP rules and DNS answers of each of locals, in line with the
// endpoint table.
func (h *Host) program(locals []*local) error {
	h.mu.Lock()
	nets := map[string]*api.Network{}
	for _, l := range locals {
		for _, a := range l.task.GetNetworks() {
			if n := h.networks[a.GetNetworkId()]; n != nil {
				nets[n.GetId()] = n
			}
		}
	}
	mesh := h.ingress
	if mesh != nil {
		nets[mesh.GetId()] = mesh // every node carries the mesh
	}
	h.mu.Unlock()
	// Host-wide state (forwarding entries, published ports) is logged
	// when it fails, and tried again at the next change; the errors
	// returned are those of locals, which Attach must not ignore.
	eps := map[string][]gossip.Endpoint{}
	var errs []error
	for id, n := range nets {
		eps[id] = h.dedupe(h.table.Endpoints(id))
		// Endpoints that left stay reachable a while (lingering): their
		// tasks finish the connections they hold, and VIP rules still
		// being rewritten below must not point at an address with no
		// forwarding entry.
		if err := h.programForwarding(n, h.withLingering(id, eps[id])); err != nil {
			h.cfg.Logger.Warn("overlay: forwarding entries", "network", name(n), "err", err)
		}
	}
	// The return paths of local tasks first: a task must know a node
	// before that node sends it connections.
	for _, l := range locals {
		if mesh != nil {
			if err := h.programTaskMesh(l, mesh, eps[mesh.GetId()]); err != nil {
				errs = append(errs, err)
			}
		}
		if err := h.programTask(l, nets, eps); err != nil {
			errs = append(errs, err)
		}
	}
	var meshEps []gossip.Endpoint
	if mesh != nil {
		meshEps = eps[mesh.GetId()]
	}
	h.mu.Lock()
	all := make([]*local, 0, len(h.tasks))
	for _, l := range h.tasks {
		all = append(all, l)
	}
	h.mu.Unlock()
	if err := h.programMesh(meshEps, all); err != nil {
		h.cfg.Logger.Warn("overlay: published ports", "err", err)
	}
	return errors.Join(errs...)
}

// dedupe keeps one endpoint per address. Two hosts publish the same
// address only for a moment: a task of a dead host whose address went to
// its replacement before the gossip declared the host dead. The local
// endpoint wins (it is alive); otherwise the first by node, logged.
func (h *Host) dedupe(eps []gossip.Endpoint) []gossip.Endpoint {
	byAddr := map[netip.Addr]int{}
	out := eps[:0:0]
	for _, ep := range eps {
		i, dup := byAddr[ep.Addr]
		switch {
		case !dup:
			byAddr[ep.Addr] = len(out)
			out = append(out, ep)
		case ep.VTEP == h.cfg.VTEP:
			h.cfg.Logger.Debug("overlay: address published by two hosts; keeping the local one", "addr", ep.Addr, "other", out[i].Node)
			out[i] = ep
		default:
			h.cfg.Logger.Debug("overlay: address published by two hosts", "addr", ep.Addr, "kept", out[i].Node, "dropped", ep.Node)
		}
	}
	return out
}

// lingerFor is how long a departed endpoint keeps its forwarding entries:
// longer than a task's stop grace period, as its connections drain.
const lingerFor = 60 * time.Second

// lingering is an endpoint that left the table, and when it was noticed.
type lingering struct {
	ep   gossip.Endpoint
	gone time.Time
}

// withLingering returns a network's current endpoints plus those that
// left it less than lingerFor ago (and whose address nobody took since),
// recording new departures.
func (h *Host) withLingering(networkID string, cur []gossip.Endpoint) []gossip.Endpoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	present := map[netip.Addr]bool{}
	for _, ep := range cur {
		present[ep.Addr] = true
	}
	lin := h.linger[networkID]
	if lin == nil {
		lin = map[netip.Addr]lingering{}
		h.linger[networkID] = lin
	}
	for _, ep := range h.lastEps[networkID] {
		if _, ok := lin[ep.Addr]; !ok && !present[ep.Addr] {
			lin[ep.Addr] = lingering{ep: ep, gone: now}
		}
	}
	h.lastEps[networkID] = slices.Clone(cur)
	out := slices.Clone(cur)
	for a, l := range lin {
		if present[a] || now.Sub(l.gone) > lingerFor {
			delete(lin, a)
			continue
		}
		out = append(out, l.ep)
	}
	return out
}

// programForwarding sets a network's flood entries (one per other host
// with endpoints on it) and its FDB and neighbour entries.
func (h *Host) programForwarding(n *api.Network, eps []gossip.Endpoint) error {
	var peers []netip.Addr
	var remotes []vxlan.Remote
	for _, ep := range eps {
		if ep.VTEP == h.cfg.VTEP {
			continue
		}
		mac, err := net.ParseMAC(ep.MAC)
		if err != nil {
			continue
		}
		remotes = append(remotes, vxlan.Remote{Addr: ep.Addr, MAC: mac, VTEP: ep.VTEP})
		if !slices.Contains(peers, ep.VTEP) {
			peers = append(peers, ep.VTEP)
		}
	}
	if err := h.vx.SetPeers(n.GetVni(), peers); err != nil && !errors.Is(err, vxlan.ErrNetworkNotFound) {
		return err
	}
	if err := h.vx.SetRemotes(n.GetVni(), remotes); err != nil && !errors.Is(err, vxlan.ErrNetworkNotFound) {
		return err
	}
	return nil
}

// programTask sets one container's VIP rules and DNS view: the services
// with endpoints on the networks it is attached to.
func (h *Host) programTask(l *local, nets map[string]*api.Network, eps map[string][]gossip.Endpoint) error {
	var services []vip.Service
	view := dns.View{}
	for _, a := range l.task.GetNetworks() {
		n := nets[a.GetNetworkId()]
		if n == nil || n.GetIngress() {
			continue
		}
		view.Networks = append(view.Networks, name(n))
		h.mu.Lock()
		known := h.services[n.GetId()]
		if known == nil {
			known = map[string]dns.Service{}
			h.services[n.GetId()] = known
		}
		seen := networkServices(name(n), eps[n.GetId()], known)
		h.mu.Unlock()
		for _, sv := range seen {
			view.Services = append(view.Services, sv.DNS)
			if sv.DNS.VIP.IsValid() {
				services = append(services, vip.Service{VIP: sv.DNS.VIP, Backends: sv.Backends})
			}
		}
	}
	var errs []error
	if err := vip.Apply(l.nsPath, services); err != nil {
		errs = append(errs, err)
	} else {
		now := fmt.Sprint(services)
		h.mu.Lock()
		changed := now != l.programmed
		l.programmed = now
		h.mu.Unlock()
		if changed {
			h.cfg.Logger.Debug("overlay: VIP rules", "task", l.task.GetId(), "services", now)
		}
	}
	if err := h.dns.Attach(l.task.GetId(), l.nsPath, view); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
