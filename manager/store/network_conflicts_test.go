package store

import (
	"errors"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

func TestNetworkConflicts(t *testing.T) {
	net := func(vni uint32, subnets ...string) *api.Network {
		n := &api.Network{Id: "n", Vni: vni, Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: "n"}}}
		for _, s := range subnets {
			n.Ipam = append(n.Ipam, &api.IPAMConfig{Subnet: s})
		}
		return n
	}
	for _, tc := range []struct {
		name     string
		other, n *api.Network
		conflict bool
	}{
		{"disjoint", net(4096, "10.0.0.0/24"), net(4097, "10.0.1.0/24"), false},
		{"same VNI", net(4096, "10.0.0.0/24"), net(4096, "10.0.1.0/24"), true},
		{"no VNI yet on both", net(0, "10.0.0.0/24"), net(0, "10.0.1.0/24"), false},
		{"same subnet", net(1, "10.0.0.0/24"), net(2, "10.0.0.0/24"), true},
		{"inside", net(1, "10.0.0.0/16"), net(2, "10.0.9.0/24"), true},
		{"containing", net(1, "10.0.9.0/24"), net(2, "10.0.0.0/8"), true},
		{"second subnet overlaps", net(1, "10.0.0.0/24", "10.5.0.0/24"), net(2, "10.5.0.128/25"), true},
		{"unparsable is left to validation", net(1, "bad"), net(2, "10.0.0.0/8"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := networkConflicts(tc.other, tc.n)
			if got := errors.Is(err, ErrResourceConflict); got != tc.conflict {
				t.Fatalf("conflict = %v (%v), want %v", got, err, tc.conflict)
			}
		})
	}
}
