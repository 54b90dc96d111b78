package controlapi

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/shoalhq/shoal/manager/ipam"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// Network drivers. Overlay networks are cluster objects; bridge and host
// are predefined on every node and cannot be created.
const (
	DriverOverlay = "overlay"
	DriverBridge  = "bridge"
	DriverHost    = "host"
)

// IngressNetworkName is the name of the cluster's routing-mesh network,
// which the allocator creates and which carries published ports.
const IngressNetworkName = "ingress"

var networkNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// reservedNetworkNames cannot be given to networks users create.
var reservedNetworkNames = map[string]string{
	DriverBridge:       "the node-local bridge network, predefined on every node",
	DriverHost:         "the host's own network, predefined on every node",
	"none":             "no network at all",
	IngressNetworkName: "the cluster's routing mesh, made by the cluster",
}

// ValidateNetworkSpec checks a spec a user wants created: a valid free
// name, the overlay driver (or none), at most one IPAM entry with an IPv4
// subnet given as its network address and a gateway inside it. Errors
// are *FieldError naming the field and what to write instead.
func ValidateNetworkSpec(spec *api.NetworkSpec) error {
	if spec == nil {
		return fieldErr("spec", "required: send the network's spec")
	}
	name := spec.GetAnnotations().GetName()
	if !networkNameRE.MatchString(name) {
		return fieldErr("annotations.name", "%q: use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	if why, ok := reservedNetworkNames[name]; ok {
		return fieldErr("annotations.name", "%q is reserved (%s): choose another name", name, why)
	}
	if err := validateLabels("annotations.labels", spec.GetAnnotations().GetLabels()); err != nil {
		return err
	}
	switch spec.GetDriver() {
	case "", DriverOverlay:
	case DriverBridge, DriverHost:
		return fieldErr("driver", "%q networks are predefined on every node: attach services to them by name (%s); create overlay networks",
			spec.GetDriver(), spec.GetDriver())
	default:
		return fieldErr("driver", "unknown driver %q: use %s", spec.GetDriver(), DriverOverlay)
	}
	if len(spec.GetIpam()) > 1 {
		return fieldErr("ipam", "%d subnets given: an overlay network has one subnet", len(spec.GetIpam()))
	}
	for i, c := range spec.GetIpam() {
		f := fmt.Sprintf("ipam[%d]", i)
		if c.GetRange() != "" {
			return fieldErr(f+".range", "not supported: give a smaller subnet instead")
		}
		if c.GetSubnet() == "" {
			if c.GetGateway() != "" {
				return fieldErr(f+".gateway", "needs a subnet: give the subnet too, or neither")
			}
			continue
		}
		subnet, err := netip.ParsePrefix(c.GetSubnet())
		if err != nil {
			return fieldErr(f+".subnet", "%q is not a CIDR such as 10.10.0.0/24", c.GetSubnet())
		}
		if err := ipam.CheckSubnet(subnet); err != nil {
			return fieldErr(f+".subnet", "%v", err)
		}
		if c.GetGateway() != "" {
			gw, err := netip.ParseAddr(c.GetGateway())
			if err != nil {
				return fieldErr(f+".gateway", "%q is not an IPv4 address", c.GetGateway())
			}
			if p, _ := ipam.NewPool(subnet); p.Claim(gw) != nil {
				return fieldErr(f+".gateway", "%s is not a host address of subnet %s", gw, subnet)
			}
		}
	}
	return nil
}

// CreateNetwork validates the spec, then in one write picks the network's
// VNI (the lowest free one) and subnet (the spec's, or the lowest free one
// of the cluster's default address pool) and gateway (the spec's, or the
// subnet's first address). A name in use or a subnet overlapping another
// network's fails with AlreadyExists and creates nothing; an exhausted
// pool fails with ResourceExhausted.
func (s *Server) CreateNetwork(ctx context.Context, req *api.CreateNetworkRequest) (*api.CreateNetworkResponse, error) {
	spec := clone(req.GetSpec())
	if err := ValidateNetworkSpec(spec); err != nil {
		return nil, ToStatus(err)
	}
	if spec.Driver == "" {
		spec.Driver = DriverOverlay
	}
	name := spec.GetAnnotations().GetName()
	id := store.NewID()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		n, err := allocateNetwork(tx, id, spec)
		if err != nil {
			return err
		}
		return tx.CreateNetwork(n)
	})
	if err != nil {
		return nil, networkWriteErr("create network "+name, err)
	}
	var n *api.Network
	s.store.View(func(tx store.ReadTx) { n = tx.GetNetwork(id) })
	if n == nil {
		return nil, notFoundf("network %s (%s) not found: it was removed right after being created", name, id)
	}
	return &api.CreateNetworkResponse{Network: n}, nil
}

// allocateNetwork returns the network object for spec with ID id (see
// ipam.NewNetwork) against the networks and address pool in tx. It writes
// nothing; the store refuses the object if a concurrent write took its VNI
// or an overlapping subnet.
func allocateNetwork(tx store.ReadTx, id string, spec *api.NetworkSpec) (*api.Network, error) {
	name := spec.GetAnnotations().GetName()
	if taken := tx.FindNetworks(store.ByName(name)); len(taken) > 0 {
		return nil, fmt.Errorf("network name %q is already in use by network %s: choose another name: %w", name, taken[0].GetId(), store.ErrNameConflict)
	}
	pools, bits := ipam.ClusterPool(tx.FindClusters(store.All()))
	return ipam.NewNetwork(tx.FindNetworks(store.All()), pools, bits, id, spec)
}

// networkWriteErr maps the errors of network writes to statuses.
func networkWriteErr(op string, err error) error {
	switch {
	case errors.Is(err, ipam.ErrExhausted):
		return resourceExhaustedf("%s: %v", op, err)
	case errors.Is(err, store.ErrResourceConflict):
		return alreadyExistsf("%s: %v: choose another subnet (or none, to get a free one)", op, err)
	}
	return writeErr(op, err)
}

// GetNetwork returns the network network_id designates: an exact ID,
// else an exact name, else a unique ID prefix.
func (s *Server) GetNetwork(ctx context.Context, req *api.GetNetworkRequest) (*api.GetNetworkResponse, error) {
	var n *api.Network
	var err error
	s.store.View(func(tx store.ReadTx) { n, err = networkFinder(tx).resolve(req.GetNetworkId()) })
	if err != nil {
		return nil, ToStatus(err)
	}
	return &api.GetNetworkResponse{Network: n}, nil
}

// ListNetworks returns the networks, sorted by name, whose name is one of
// names (all when empty) and whose labels match every filter.
func (s *Server) ListNetworks(ctx context.Context, req *api.ListNetworksRequest) (*api.ListNetworksResponse, error) {
	filters, err := parseLabelFilters(req.GetLabels())
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, n := range req.GetNames() {
		names[n] = true
	}
	var out []*api.Network
	s.store.View(func(tx store.ReadTx) {
		for _, n := range tx.FindNetworks(store.All()) {
			if (len(names) == 0 || names[n.GetSpec().GetAnnotations().GetName()]) && matchLabels(n.GetSpec().GetAnnotations().GetLabels(), filters) {
				out = append(out, n)
			}
		}
	})
	sort.Slice(out, func(i, j int) bool {
		return out[i].GetSpec().GetAnnotations().GetName() < out[j].GetSpec().GetAnnotations().GetName()
	})
	return &api.ListNetworksResponse{Networks: out}, nil
}

// RemoveNetwork deletes a network. It fails with FailedPrecondition,
// naming them, while services attach to it (or, for the ingress network,
// publish ports through it) or tasks that are not yet dead are attached.
func (s *Server) RemoveNetwork(ctx context.Context, req *api.RemoveNetworkRequest) (*api.RemoveNetworkResponse, error) {
	ref := req.GetNetworkId()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		n, err := networkFinder(tx).resolve(ref)
		if err != nil {
			return err
		}
		if users := networkUsers(tx, n); len(users) > 0 {
			return preconditionf("network %s is in use by %s: remove them or detach them from the network first",
				n.GetSpec().GetAnnotations().GetName(), strings.Join(users, ", "))
		}
		return tx.DeleteNetwork(n.GetId())
	})
	if err != nil {
		return nil, writeErr("remove network "+ref, err)
	}
	return &api.RemoveNetworkResponse{}, nil
}

// networkUsers names the services and live tasks that keep n in use (at
// most maxCandidates of each).
func networkUsers(tx store.ReadTx, n *api.Network) []string {
	var users []string
	for _, svc := range tx.FindServices(store.All()) {
		uses := n.GetIngress() && svc.GetSpec().PublishesIngress()
		for _, a := range svc.GetSpec().GetTask().GetNetworks() {
			uses = uses || a.GetTarget() == n.GetId()
		}
		if uses && len(users) < maxCandidates {
			users = append(users, "service "+svc.GetSpec().GetAnnotations().GetName())
		}
	}
	tasks := 0
	for _, t := range tx.FindTasks(store.All()) {
		if t.GetStatus().GetState() > api.TaskState_TASK_STATE_RUNNING {
			continue
		}
		for _, a := range t.GetNetworks() {
			if a.GetNetworkId() == n.GetId() {
				tasks++
			}
		}
	}
	if tasks > 0 {
		users = append(users, fmt.Sprintf("%d task(s) still running or starting", tasks))
	}
	return users
}

// networkFinder finds networks in tx.
func networkFinder(tx store.ReadTx) finder[*api.Network] {
	return finder[*api.Network]{
		kind:     "network",
		get:      tx.GetNetwork,
		find:     tx.FindNetworks,
		id:       (*api.Network).GetId,
		name:     func(n *api.Network) string { return n.GetSpec().GetAnnotations().GetName() },
		nameHint: "use the network ID",
	}
}

// resolveServiceNetworks rewrites the network targets of spec (names, IDs
// or ID prefixes) to network IDs, in place. Unknown networks fail with
// NotFound; the ingress network and duplicate networks with
// InvalidArgument.
func resolveServiceNetworks(tx store.ReadTx, spec *api.ServiceSpec) error {
	seen := map[string]int{}
	nets := spec.GetTask().GetNetworks()
	for i, a := range nets {
		if api.IsNodeLocalNetwork(a.GetTarget()) {
			if len(nets) > 1 {
				return ToStatus(fieldErr(fmt.Sprintf("task.networks[%d].target", i),
					"%q is a node-local network mode and must be the only network: remove it, or the other networks", a.GetTarget()))
			}
			if a.GetTarget() == api.NetworkHost && spec.PublishesIngress() {
				return ToStatus(fieldErr(fmt.Sprintf("task.networks[%d].target", i),
					"tasks on the host network cannot publish through the routing mesh: publish with mode=host"))
			}
			continue
		}
		n, err := networkFinder(tx).resolve(a.GetTarget())
		if err != nil {
			return fmt.Errorf("task.networks[%d]: %w", i, err)
		}
		if n.GetIngress() {
			return ToStatus(fieldErr(fmt.Sprintf("task.networks[%d].target", i),
				"%q is the routing mesh, which published ports use by themselves: attach the service to an overlay network you created", a.GetTarget()))
		}
		if j, dup := seen[n.GetId()]; dup {
			return ToStatus(fieldErr(fmt.Sprintf("task.networks[%d].target", i), "%q is the same network as networks[%d]: attach a network once", a.GetTarget(), j))
		}
		seen[n.GetId()] = i
		a.Target = n.GetId()
	}
	return nil
}
