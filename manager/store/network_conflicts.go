package store

import (
	"fmt"
	"net/netip"

	"github.com/shoalhq/shoal/proto/api"
)

// networkConflicts refuses a network whose VNI another network holds, or
// one of whose subnets overlaps one of other's. Subnets that do not parse
// are left to validation (they conflict with nothing here).
func networkConflicts(other, n *api.Network) error {
	if n.GetVni() != 0 && n.GetVni() == other.GetVni() {
		return fmt.Errorf("%w: network %s: VNI %d is held by network %s (%s)", ErrResourceConflict,
			n.GetSpec().GetAnnotations().GetName(), n.GetVni(), other.GetSpec().GetAnnotations().GetName(), other.GetId())
	}
	for _, a := range n.GetIpam() {
		pa, err := netip.ParsePrefix(a.GetSubnet())
		if err != nil {
			continue
		}
		for _, b := range other.GetIpam() {
			pb, err := netip.ParsePrefix(b.GetSubnet())
			if err == nil && pa.Overlaps(pb) {
				return fmt.Errorf("%w: network %s: subnet %s overlaps %s of network %s (%s)", ErrResourceConflict,
					n.GetSpec().GetAnnotations().GetName(), pa, pb, other.GetSpec().GetAnnotations().GetName(), other.GetId())
			}
		}
	}
	return nil
}
