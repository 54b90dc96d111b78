package dns

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// addrStrings lists a set's addresses (v4 then v6) as sorted strings.
func addrStrings(set *addrSet) []string {
	if set == nil {
		return nil
	}
	var out []string
	for _, a := range append(slices.Clone(set.v4), set.v6...) {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

func TestLookupTable(t *testing.T) {
	mustCompile := func(v View) *index {
		ix, err := compile(v)
		if err != nil {
			t.Fatalf("compile: %v", err)
		}
		return ix
	}
	a := netip.MustParseAddr
	shared := View{
		Networks: []string{"front", "back"},
		Services: []Service{
			// web on both networks: unscoped web answers from front, the first.
			{Name: "web", Network: "back", VIP: a("10.2.0.2"), Tasks: []Task{{Addr: a("10.2.0.10")}}},
			{Name: "web", Network: "front", VIP: a("10.1.0.2"), Tasks: []Task{{Addr: a("10.1.0.10")}}},
			// two services sharing the alias db on one network: both VIPs.
			{Name: "pg1", Network: "back", VIP: a("10.2.0.3"), Aliases: []string{"db"}},
			{Name: "pg2", Network: "back", VIP: a("10.2.0.4"), Aliases: []string{"DB"}},
			// IPv6 and a v4-mapped address.
			{Name: "six", Network: "back", VIP: a("fd00::2"), Tasks: []Task{{Addr: a("fd00::10")}, {Addr: a("::ffff:10.2.0.30")}}},
			// dnsrr with no tasks: known, no addresses.
			{Name: "empty", Network: "back"},
			// A service whose name looks like a scoped name: the scoped
			// web.back wins.
			{Name: "web.back", Network: "front", VIP: a("10.1.0.99")},
		},
	}
	ix := mustCompile(shared)
	tests := []struct {
		name   string
		result lookupResult
		want   []string
	}{
		{"web", localName, []string{"10.1.0.2"}},
		{"tasks.web", localName, []string{"10.1.0.10"}},
		{"web.front", localName, []string{"10.1.0.2"}},
		{"web.back.", localName, []string{"10.2.0.2"}},
		{"tasks.web.back", localName, []string{"10.2.0.10"}},
		{"db", localName, []string{"10.2.0.3", "10.2.0.4"}},
		{"Db.Back", localName, []string{"10.2.0.3", "10.2.0.4"}},
		{"six", localName, []string{"fd00::2"}},
		{"tasks.six", localName, []string{"10.2.0.30", "fd00::10"}},
		{"empty", localName, nil},
		{"tasks.empty", localName, nil},
		{"nosuch", unknownClusterName, nil},
		{"tasks.nosuch.example.com", unknownClusterName, nil},
		{"nosuch.back", unknownClusterName, nil},
		{"tasks.nosuch.front", unknownClusterName, nil},
		{"a.b.front", forwardName, nil},
		{"example.org", forwardName, nil},
		{"web.other", forwardName, nil},
		{".", forwardName, nil},
	}
	for _, tt := range tests {
		set, result := ix.lookup(tt.name)
		if result != tt.result || !slices.Equal(addrStrings(set), tt.want) {
			t.Errorf("lookup(%q) = %v %v, want %v %v", tt.name, result, addrStrings(set), tt.result, tt.want)
		}
	}
	v4 := ix.names["tasks.six."].v4
	if len(v4) != 1 || !v4[0].Is4() {
		t.Errorf("a v4-mapped task address is not answered as IPv4: %v", v4)
	}
}

func TestCompileRejectsInvalidViews(t *testing.T) {
	ok := Service{Name: "web", Network: "app", VIP: netip.MustParseAddr("10.0.0.2")}
	tests := []struct {
		name string
		view View
	}{
		{"empty network name", View{Networks: []string{""}}},
		{"empty service name", View{Services: []Service{{Name: "", Network: "app"}}}},
		{"space in name", View{Services: []Service{{Name: "we b", Network: "app"}}}},
		{"empty label", View{Services: []Service{{Name: "we..b", Network: "app"}}}},
		{"no network", View{Services: []Service{{Name: "web"}}}},
		{"bad alias", View{Services: []Service{ok, {Name: "x", Network: "app", Aliases: []string{"a b"}}}}},
		{"task without address", View{Services: []Service{{Name: "web", Network: "app", Tasks: []Task{{Name: "web.1"}}}}}},
		{"bad task name", View{Services: []Service{{Name: "web", Network: "app", Tasks: []Task{{Name: "a..b", Addr: netip.MustParseAddr("10.0.0.3")}}}}}},
	}
	for _, tt := range tests {
		if _, err := compile(tt.view); !errors.Is(err, ErrInvalidView) {
			t.Errorf("%s: compile = %v, want ErrInvalidView", tt.name, err)
		}
	}
}

// TestLookupProperties checks, over random views, the answers against a
// plain model of the rules in the package doc. Addresses encode their
// network (10.NET.x.x), so a leak across networks shows.
func TestLookupProperties(t *testing.T) {
	networks := []string{"n0", "n1", "n2"}
	labels := []string{"s0", "s1", "s2", "a0", "a1"}
	rapid.Check(t, func(t *rapid.T) {
		attached := rapid.SliceOfNDistinct(rapid.SampledFrom(networks), 0, 3, func(s string) string { return s }).Draw(t, "attached")
		services := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Service {
			net := rapid.IntRange(0, len(networks)-1).Draw(t, "net")
			svc := Service{
				Name:    rapid.SampledFrom(labels[:3]).Draw(t, "name"),
				Network: networks[net],
				Aliases: rapid.SliceOfNDistinct(rapid.SampledFrom(labels), 0, 2, func(s string) string { return s }).Draw(t, "aliases"),
			}
			if rapid.Bool().Draw(t, "vip") {
				svc.VIP = netip.AddrFrom4([4]byte{10, byte(net), 0, rapid.ByteRange(1, 250).Draw(t, "vip")})
			}
			for _, b := range rapid.SliceOfN(rapid.ByteRange(1, 250), 0, 4).Draw(t, "tasks") {
				svc.Tasks = append(svc.Tasks, Task{Addr: netip.AddrFrom4([4]byte{10, byte(net), 1, b})})
			}
			return svc
		}), 0, 8).Draw(t, "services")

		ix, err := compile(View{Networks: attached, Services: services})
		if err != nil {
			t.Fatalf("compile: %v", err)
		}

		// The model: per network, label → addresses of NAME and of tasks.NAME.
		type answers struct{ name, tasks map[string][]string }
		model := make(map[string]answers)
		for _, n := range networks {
			model[n] = answers{map[string][]string{}, map[string][]string{}}
		}
		for _, svc := range services {
			m := model[svc.Network]
			var tasks []string
			for _, task := range svc.Tasks {
				tasks = append(tasks, task.Addr.String())
			}
			for _, label := range append([]string{svc.Name}, svc.Aliases...) {
				if svc.VIP.IsValid() {
					m.name[label] = append(m.name[label], svc.VIP.String())
				} else {
					m.name[label] = append(m.name[label], tasks...)
				}
				m.tasks[label] = append(m.tasks[label], tasks...)
			}
		}
		uniq := func(s []string) []string { s = sorted(s); return slices.Compact(s) }
		check := func(name string, wantResult lookupResult, want []string) {
			set, result := ix.lookup(name)
			if result != wantResult || !slices.Equal(addrStrings(set), uniq(want)) {
				t.Fatalf("lookup(%q) = %v %v, want %v %v", name, result, addrStrings(set), wantResult, uniq(want))
			}
		}

		for _, label := range append(slices.Clone(labels), "zz") {
			// Unscoped: the first attached network that has the label.
			found := false
			for _, n := range attached {
				if addrs, ok := model[n].name[label]; ok {
					check(label, localName, addrs)
					check("tasks."+label, localName, model[n].tasks[label])
					found = true
					break
				}
			}
			if !found {
				check(label, unknownClusterName, nil)
				check("tasks."+label, unknownClusterName, nil)
			}
			// Scoped: exactly that network, and only if attached.
			for _, n := range networks {
				scoped := label + "." + n
				switch addrs, ok := model[n].name[label]; {
				case !slices.Contains(attached, n):
					check(scoped, forwardName, nil)
					check("tasks."+scoped, unknownClusterName, nil)
				case ok:
					check(scoped, localName, addrs)
					check("tasks."+scoped, localName, model[n].tasks[label])
				default:
					check(scoped, unknownClusterName, nil)
					check("tasks."+scoped, unknownClusterName, nil)
				}
			}
		}
	})
}
