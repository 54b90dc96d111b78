package allocator

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/ipam"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// IngressNetworkName is the name the allocator gives the routing mesh.
const IngressNetworkName = "ingress"

// Dynamic published ports, as Swarm hands them out.
const (
	MinDynamicPort = 30000
	MaxDynamicPort = 32767
)

// passResult says what a pass left to do.
type passResult struct {
	// waiting counts tasks that could not get their addresses.
	waiting int
	// more is set when the pass stopped at MaxCommitTasks.
	more bool
}

// pass allocates everything that lacks allocation, in one transaction.
func (a *Allocator) pass(ctx context.Context) (passResult, error) {
	var res passResult
	var st *state
	err := a.store.Update(ctx, func(tx store.Tx) error {
		res = passResult{}
		var err error
		if st, err = a.load(tx); err != nil {
			return err
		}
		if err := st.allocateServices(tx); err != nil {
			return err
		}
		if err := st.allocateNodes(tx); err != nil {
			return err
		}
		res, err = st.allocateTasks(tx, a.cfg.MaxCommitTasks, a.cfg.Now().UnixNano())
		return err
	})
	if err == nil && st != nil {
		for id, p := range st.pools {
			if last := p.Last(); last.IsValid() {
				a.last[id] = last
			}
		}
	}
	return res, err
}

// state is one pass's view: the pools of every network, rebuilt from
// what the store records.
type state struct {
	networks map[string]*api.Network
	pools    map[string]*ipam.Pool
	ingress  *api.Network
	services map[string]*api.Service
	// ports holds the published ingress ports in use, by "proto/port".
	ports map[string]string
	log   func(msg string, args ...any)
}

// load reads the networks, creating the ingress network if there is none,
// and claims every address recorded on services and live tasks.
func (a *Allocator) load(tx store.Tx) (*state, error) {
	st := &state{
		networks: map[string]*api.Network{},
		pools:    map[string]*ipam.Pool{},
		services: map[string]*api.Service{},
		ports:    map[string]string{},
		log:      a.cfg.Logger.Warn,
	}
	nets := tx.FindNetworks(store.All())
	for _, n := range nets {
		if n.GetIngress() {
			st.ingress = n
		}
	}
	// The ingress network is carved from the cluster's pool: wait for the
	// Cluster object (written right after the first leader is elected).
	if clusters := tx.FindClusters(store.All()); st.ingress == nil && len(clusters) > 0 {
		pools, bits := ipam.ClusterPool(clusters)
		spec := &api.NetworkSpec{Annotations: &api.Annotations{Name: IngressNetworkName}, Driver: "overlay"}
		n, err := ipam.NewNetwork(nets, pools, bits, store.NewID(), spec)
		if err != nil {
			return nil, fmt.Errorf("create the ingress network: %w", err)
		}
		n.Ingress = true
		if err := tx.CreateNetwork(n); err != nil {
			return nil, fmt.Errorf("create the ingress network: %w", err)
		}
		st.ingress = n
		nets = append(nets, n)
	}
	for _, n := range nets {
		st.networks[n.GetId()] = n
		subnet, gw, ok := ipam.Subnet(n)
		if !ok {
			continue
		}
		p, err := ipam.NewPool(subnet)
		if err != nil {
			continue
		}
		if gw.IsValid() {
			_ = p.Claim(gw)
		}
		p.ContinueAfter(a.last[n.GetId()])
		st.pools[n.GetId()] = p
	}
	for _, s := range tx.FindServices(store.All()) {
		st.services[s.GetId()] = s
		for _, v := range s.GetEndpoint().GetVirtualIps() {
			st.claim(v.GetNetworkId(), v.GetAddr(), "service "+s.GetId())
		}
		for _, p := range s.GetEndpoint().GetPorts() {
			if p.GetPublishMode() == api.PortConfig_PUBLISH_MODE_INGRESS && p.GetPublishedPort() != 0 {
				st.ports[portKey(p)] = s.GetId()
			}
		}
	}
	for _, n := range tx.FindNodes(store.All()) {
		for _, att := range n.GetAttachments() {
			for _, addr := range att.GetAddresses() {
				st.claim(att.GetNetworkId(), addr, "node "+n.GetId())
			}
		}
	}
	newest := map[string]*api.Task{} // per network, the newest task with an address there
	for _, t := range tx.FindTasks(store.All()) {
		for _, att := range t.GetNetworks() {
			if len(att.GetAddresses()) > 0 && newer(t, newest[att.GetNetworkId()]) {
				newest[att.GetNetworkId()] = t
			}
		}
		if dead(t) {
			continue
		}
		for _, att := range t.GetNetworks() {
			for _, addr := range att.GetAddresses() {
				st.claim(att.GetNetworkId(), addr, "task "+t.GetId())
			}
		}
	}
	// A term's first pass goes on after the newest task's address.
	for id, p := range st.pools {
		if _, known := a.last[id]; known || newest[id] == nil {
			continue
		}
		for _, att := range newest[id].GetNetworks() {
			if att.GetNetworkId() == id {
				if pfx, err := netip.ParsePrefix(att.GetAddresses()[0]); err == nil {
					p.ContinueAfter(pfx.Addr())
				}
			}
		}
	}
	return st, nil
}

// newer reports whether task a was created after b (nil b: yes); the
// higher ID wins a tie, so every manager picks the same task.
func newer(a, b *api.Task) bool {
	if b == nil {
		return true
	}
	if x, y := a.GetMeta().GetCreatedAt(), b.GetMeta().GetCreatedAt(); x != y {
		return x > y
	}
	return a.GetId() > b.GetId()
}

// claim marks an address recorded in the store as used. A clash can only
// come from a bug or a hand-edited store: it is logged, not fatal.
func (st *state) claim(networkID, cidr, holder string) {
	p := st.pools[networkID]
	if p == nil {
		return
	}
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		a, err2 := netip.ParseAddr(cidr)
		if err2 != nil {
			return
		}
		pfx = netip.PrefixFrom(a, p.Subnet().Bits())
	}
	if err := p.Claim(pfx.Addr()); err != nil {
		st.log("allocator: recorded address clashes", "network", networkID, "addr", cidr, "holder", holder, "err", err)
	}
}

func portKey(p *api.PortConfig) string {
	return fmt.Sprintf("%s/%d", strings.ToLower(strings.TrimPrefix(p.GetProtocol().String(), "PROTOCOL_")), p.GetPublishedPort())
}

// allocateServices gives every service a VIP on each network its tasks
// attach to (endpoint mode vip), on the ingress network when it publishes
// through the mesh, and its published ports; VIPs of networks it left are
// released. The service's Endpoint is written when it changed.
func (st *state) allocateServices(tx store.Tx) error {
	ids := make([]string, 0, len(st.services))
	for id := range st.services {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		s := st.services[id]
		want, err := st.endpoint(s)
		if err != nil {
			st.log("allocator: service not allocated", "service", s.GetSpec().GetAnnotations().GetName(), "err", err)
			continue
		}
		if proto.Equal(want, s.GetEndpoint()) {
			continue
		}
		s = proto.Clone(s).(*api.Service)
		s.Endpoint = want
		if err := tx.UpdateService(s); err != nil {
			return err
		}
		st.services[id] = s
	}
	return nil
}

// endpoint returns the endpoint a service should have, allocating what it
// lacks from the pools and releasing what it no longer needs.
func (st *state) endpoint(s *api.Service) (*api.Endpoint, error) {
	spec := s.GetSpec()
	cur := s.GetEndpoint()
	want := &api.Endpoint{}
	if e := spec.GetEndpoint(); e != nil {
		want.Spec = proto.Clone(e).(*api.EndpointSpec)
	}
	var nets []string
	if spec.GetEndpoint().GetMode() == api.EndpointSpec_MODE_VIP && spec.GetTask().NetworkMode() == "" {
		for _, n := range spec.GetTask().GetNetworks() {
			nets = append(nets, n.GetTarget())
		}
	}
	if spec.PublishesIngress() && st.ingress != nil {
		nets = append(nets, st.ingress.GetId())
	}
	have := map[string]string{}
	for _, v := range cur.GetVirtualIps() {
		have[v.GetNetworkId()] = v.GetAddr()
	}
	for _, nid := range nets {
		if addr, ok := have[nid]; ok {
			want.VirtualIps = append(want.VirtualIps, &api.VirtualIP{NetworkId: nid, Addr: addr})
			delete(have, nid)
			continue
		}
		p := st.pools[nid]
		if p == nil {
			return nil, fmt.Errorf("network %s has no subnet", nid)
		}
		a, err := p.Allocate()
		if err != nil {
			return nil, fmt.Errorf("virtual IP on network %s: %w", st.name(nid), err)
		}
		want.VirtualIps = append(want.VirtualIps, &api.VirtualIP{NetworkId: nid, Addr: netip.PrefixFrom(a, p.Subnet().Bits()).String()})
	}
	for nid, addr := range have { // networks the service left
		if p := st.pools[nid]; p != nil {
			if pfx, err := netip.ParsePrefix(addr); err == nil {
				p.Release(pfx.Addr())
			}
		}
	}
	// Published ports: the spec's, with a dynamic port for those left 0
	// (kept from the last allocation when the same target is published).
	prev := map[string]uint32{}
	for _, p := range cur.GetPorts() {
		prev[fmt.Sprintf("%s/%d/%s", p.GetProtocol(), p.GetTargetPort(), p.GetPublishMode())] = p.GetPublishedPort()
	}
	for _, p := range spec.GetEndpoint().GetPorts() {
		p = proto.Clone(p).(*api.PortConfig)
		if p.GetPublishedPort() == 0 && p.GetPublishMode() == api.PortConfig_PUBLISH_MODE_INGRESS {
			if old := prev[fmt.Sprintf("%s/%d/%s", p.GetProtocol(), p.GetTargetPort(), p.GetPublishMode())]; old != 0 {
				p.PublishedPort = old
			} else {
				port, err := st.dynamicPort(p)
				if err != nil {
					return nil, err
				}
				p.PublishedPort = port
			}
			st.ports[portKey(p)] = s.GetId()
		}
		want.Ports = append(want.Ports, p)
	}
	if len(want.VirtualIps) == 0 && len(want.Ports) == 0 && want.Spec == nil {
		return cur, nil // nothing to allocate: leave the service as it is
	}
	return want, nil
}

// dynamicPort picks a free published port for p from the dynamic range.
func (st *state) dynamicPort(p *api.PortConfig) (uint32, error) {
	for port := uint32(MinDynamicPort); port <= MaxDynamicPort; port++ {
		q := &api.PortConfig{Protocol: p.GetProtocol(), PublishedPort: port}
		if _, used := st.ports[portKey(q)]; !used {
			return port, nil
		}
	}
	return 0, fmt.Errorf("published port for target %d: %w: every port of %d-%d is published", p.GetTargetPort(), ipam.ErrExhausted, MinDynamicPort, MaxDynamicPort)
}

func (st *state) name(networkID string) string {
	if n := st.networks[networkID]; n != nil {
		return n.GetSpec().GetAnnotations().GetName()
	}
	return networkID
}

// allocateNodes gives every node an address on the ingress network: the
// gateway through which the routing mesh of that node reaches tasks and
// their replies come back. A node that lacks one gets one; a node's
// address on a network that no longer exists is dropped.
func (st *state) allocateNodes(tx store.Tx) error {
	if st.ingress == nil {
		return nil
	}
	p := st.pools[st.ingress.GetId()]
	if p == nil {
		return nil
	}
	for _, n := range tx.FindNodes(store.All()) {
		var keep []*api.NetworkAttachment
		has := false
		for _, a := range n.GetAttachments() {
			if st.networks[a.GetNetworkId()] != nil {
				keep = append(keep, a)
				has = has || a.GetNetworkId() == st.ingress.GetId()
			}
		}
		if has && len(keep) == len(n.GetAttachments()) {
			continue
		}
		if !has {
			a, err := p.Allocate()
			if err != nil {
				st.log("allocator: node has no ingress address", "node", n.GetId(), "err", err)
				continue
			}
			keep = append(keep, &api.NetworkAttachment{
				NetworkId: st.ingress.GetId(),
				Addresses: []string{netip.PrefixFrom(a, p.Subnet().Bits()).String()},
				Mac:       MACFor(a).String(),
			})
		}
		n = proto.Clone(n).(*api.Node)
		n.Attachments = keep
		if err := tx.UpdateNode(n); err != nil {
			return err
		}
	}
	return nil
}

// allocateTasks gives NEW tasks their addresses and moves them to PENDING,
// at most max of them; a task that cannot get all of its addresses stays
// NEW with the reason in its status.
func (st *state) allocateTasks(tx store.Tx, max int, now int64) (passResult, error) {
	var res passResult
	written := 0
	for _, t := range tx.FindTasks(store.All()) {
		if t.GetStatus().GetState() != api.TaskState_TASK_STATE_NEW || t.GetDesiredState() > api.TaskState_TASK_STATE_RUNNING {
			continue
		}
		if written == max {
			res.more = true
			break
		}
		t = proto.Clone(t).(*api.Task)
		atts, err := st.attachments(t)
		if err != nil {
			res.waiting++
			msg := "allocation failed: " + err.Error()
			if t.GetStatus().GetErr() == msg {
				continue
			}
			t.Status = &api.TaskStatus{State: api.TaskState_TASK_STATE_NEW, Message: "waiting for addresses", Err: msg, Timestamp: now}
		} else {
			t.Networks = atts
			if svc := st.services[t.GetServiceId()]; svc != nil && svc.GetEndpoint() != nil {
				t.Endpoint = proto.Clone(svc.GetEndpoint()).(*api.Endpoint)
			}
			t.Status = &api.TaskStatus{State: api.TaskState_TASK_STATE_PENDING, Message: "pending", Timestamp: now}
		}
		if err := tx.UpdateTask(t); err != nil {
			return res, err
		}
		written++
	}
	return res, nil
}

// attachments allocates a task's address and MAC on each of its
// networks, and on the ingress network when its service publishes
// through the mesh. On failure what it took is released.
func (st *state) attachments(t *api.Task) ([]*api.NetworkAttachment, error) {
	type want struct {
		id      string
		aliases []string
	}
	var wants []want
	if t.GetSpec().NetworkMode() == "" {
		for _, n := range t.GetSpec().GetNetworks() {
			wants = append(wants, want{n.GetTarget(), n.GetAliases()})
		}
	}
	if svc := st.services[t.GetServiceId()]; svc != nil && svc.GetSpec().PublishesIngress() && st.ingress != nil {
		wants = append(wants, want{id: st.ingress.GetId()})
	}
	var out []*api.NetworkAttachment
	release := func() {
		for _, a := range out {
			if p := st.pools[a.GetNetworkId()]; p != nil {
				p.Release(netip.MustParsePrefix(a.GetAddresses()[0]).Addr())
			}
		}
	}
	for _, w := range wants {
		p := st.pools[w.id]
		if p == nil {
			release()
			return nil, fmt.Errorf("network %s does not exist or has no subnet", st.name(w.id))
		}
		a, err := p.Allocate()
		if err != nil {
			release()
			return nil, fmt.Errorf("network %s: %w", st.name(w.id), err)
		}
		out = append(out, &api.NetworkAttachment{
			NetworkId: w.id,
			Addresses: []string{netip.PrefixFrom(a, p.Subnet().Bits()).String()},
			Aliases:   w.aliases,
			Mac:       MACFor(a).String(),
		})
	}
	return out, nil
}

// MACFor returns the MAC address of an overlay address: 02:42 and the
// four bytes of the IPv4 address, as Docker derives them, so that a MAC
// never needs allocating and never clashes while addresses do not.
func MACFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}
