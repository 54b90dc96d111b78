package overlay

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/shoalhq/shoal/overlay/dns"
	"github.com/shoalhq/shoal/overlay/gossip"
)

func TestNetworkServices(t *testing.T) {
	a := netip.MustParseAddr
	ep := func(svc, name, addr, vipAddr string) gossip.Endpoint {
		e := gossip.Endpoint{ID: addr, ServiceID: svc, ServiceName: name, Addr: a(addr)}
		if vipAddr != "" {
			e.VIP = a(vipAddr)
		}
		return e
	}
	web := dns.Service{Name: "web", Network: "app", VIP: a("10.0.0.2")}
	gone := dns.Service{Name: "gone", Network: "app", VIP: a("10.0.0.9")}
	for _, tc := range []struct {
		name      string
		eps       []gossip.Endpoint
		known     map[string]dns.Service
		want      []networkService
		wantKnown []string
	}{{
		name:      "services with endpoints, sorted by ID, become known",
		eps:       []gossip.Endpoint{ep("s2", "web", "10.0.0.4", "10.0.0.2"), ep("s1", "db", "10.0.0.5", ""), ep("s2", "web", "10.0.0.3", "10.0.0.2")},
		known:     map[string]dns.Service{},
		wantKnown: []string{"s1", "s2"},
		want: []networkService{
			{DNS: dns.Service{Name: "db", Network: "app", Tasks: []dns.Task{{Addr: a("10.0.0.5")}}}, Backends: []netip.Addr{a("10.0.0.5")}},
			{DNS: dns.Service{Name: "web", Network: "app", VIP: a("10.0.0.2"), Tasks: []dns.Task{{Addr: a("10.0.0.4")}, {Addr: a("10.0.0.3")}}},
				Backends: []netip.Addr{a("10.0.0.4"), a("10.0.0.3")}},
		},
	}, {
		name:      "a known service whose tasks all left keeps its VIP, with no backend",
		eps:       []gossip.Endpoint{ep("s2", "web", "10.0.0.3", "10.0.0.2")},
		known:     map[string]dns.Service{"s2": web, "s9": gone},
		wantKnown: []string{"s2", "s9"},
		want: []networkService{
			{DNS: dns.Service{Name: "web", Network: "app", VIP: a("10.0.0.2"), Tasks: []dns.Task{{Addr: a("10.0.0.3")}}}, Backends: []netip.Addr{a("10.0.0.3")}},
			{DNS: gone},
		},
	}, {
		name:      "a gone service whose VIP a task now holds is forgotten",
		eps:       []gossip.Endpoint{ep("s2", "web", "10.0.0.9", "10.0.0.2")},
		known:     map[string]dns.Service{"s2": web, "s9": gone},
		wantKnown: []string{"s2"},
		want: []networkService{
			{DNS: dns.Service{Name: "web", Network: "app", VIP: a("10.0.0.2"), Tasks: []dns.Task{{Addr: a("10.0.0.9")}}}, Backends: []netip.Addr{a("10.0.0.9")}},
		},
	}, {
		name:      "a gone service whose VIP another service now holds is forgotten",
		eps:       []gossip.Endpoint{ep("s3", "api", "10.0.0.7", "10.0.0.9")},
		known:     map[string]dns.Service{"s9": gone},
		wantKnown: []string{"s3"},
		want: []networkService{
			{DNS: dns.Service{Name: "api", Network: "app", VIP: a("10.0.0.9"), Tasks: []dns.Task{{Addr: a("10.0.0.7")}}}, Backends: []netip.Addr{a("10.0.0.7")}},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := networkServices("app", tc.eps, tc.known)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("services\n got %+v\nwant %+v", got, tc.want)
			}
			var ids []string
			for id := range tc.known {
				ids = append(ids, id)
			}
			if len(ids) != len(tc.wantKnown) {
				t.Fatalf("known %v, want %v", ids, tc.wantKnown)
			}
			for _, id := range tc.wantKnown {
				if _, ok := tc.known[id]; !ok {
					t.Fatalf("known %v, want %v", ids, tc.wantKnown)
				}
			}
		})
	}
}
