package ipam

import (
	"fmt"
	"net/netip"

	"github.com/shoalhq/shoal/proto/api"
)

// NewNetwork returns the overlay network object for spec with ID id,
// given the networks that exist: the lowest free VNI, the spec's subnet
// (or the lowest subnet of pools, bits long, that overlaps none of
// theirs) and the spec's gateway (or the subnet's first address). It
// fails with ErrExhausted when no VNI or subnet is left. It does not
// check that an explicit subnet is free: the store refuses overlaps.
func NewNetwork(existing []*api.Network, pools []netip.Prefix, bits int, id string, spec *api.NetworkSpec) (*api.Network, error) {
	var usedVNIs []uint32
	var usedSubnets []netip.Prefix
	for _, n := range existing {
		usedVNIs = append(usedVNIs, n.GetVni())
		for _, c := range n.GetIpam() {
			if p, err := netip.ParsePrefix(c.GetSubnet()); err == nil {
				usedSubnets = append(usedSubnets, p)
			}
		}
	}
	vni, err := NextVNI(usedVNIs)
	if err != nil {
		return nil, err
	}
	name := spec.GetAnnotations().GetName()
	var subnet netip.Prefix
	var gateway netip.Addr
	if c := spec.GetIpam(); len(c) > 0 && c[0].GetSubnet() != "" {
		if subnet, err = netip.ParsePrefix(c[0].GetSubnet()); err != nil {
			return nil, fmt.Errorf("%w: network %s: subnet %q", ErrBadSubnet, name, c[0].GetSubnet())
		}
		if g := c[0].GetGateway(); g != "" {
			if gateway, err = netip.ParseAddr(g); err != nil {
				return nil, fmt.Errorf("%w: network %s: gateway %q", ErrBadSubnet, name, g)
			}
		}
	} else if subnet, err = NextSubnet(pools, bits, usedSubnets); err != nil {
		return nil, fmt.Errorf("network %s: %w: remove unused networks, or give a subnet outside the pool with --subnet", name, err)
	}
	if !gateway.IsValid() {
		gateway = Gateway(subnet)
	}
	return &api.Network{
		Id:   id,
		Meta: &api.Meta{},
		Spec: spec,
		Vni:  vni,
		Ipam: []*api.IPAMConfig{{Subnet: subnet.String(), Gateway: gateway.String()}},
	}, nil
}

// ClusterPool returns the default address pool and subnet size of the
// cluster (the first of clusters), or DefaultPool and DefaultSubnetSize.
func ClusterPool(clusters []*api.Cluster) ([]netip.Prefix, int) {
	pools, bits := DefaultPool, DefaultSubnetSize
	for _, c := range clusters {
		if size := c.GetSubnetSize(); size != 0 {
			bits = int(size)
		}
		var ps []netip.Prefix
		for _, s := range c.GetDefaultAddressPool() {
			if p, err := netip.ParsePrefix(s); err == nil {
				ps = append(ps, p)
			}
		}
		if len(ps) > 0 {
			pools = ps
		}
		break
	}
	return pools, bits
}

// Subnet returns the network's allocated subnet and gateway; ok is false
// when it has none (or they do not parse).
func Subnet(n *api.Network) (subnet netip.Prefix, gateway netip.Addr, ok bool) {
	if len(n.GetIpam()) == 0 {
		return subnet, gateway, false
	}
	var err error
	if subnet, err = netip.ParsePrefix(n.GetIpam()[0].GetSubnet()); err != nil {
		return subnet, gateway, false
	}
	gateway, _ = netip.ParseAddr(n.GetIpam()[0].GetGateway())
	return subnet, gateway, true
}
