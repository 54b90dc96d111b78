package ipv4

import (
	"net/netip"
	"testing"

	"pgregory.net/rapid"
)

func TestIsUnicast(t *testing.T) {
	cases := []struct {
		addr netip.Addr
		want bool
	}{
		{netip.MustParseAddr("10.0.0.1"), true},
		{netip.MustParseAddr("192.168.1.255"), true}, // a subnet's broadcast is the caller's business
		{netip.Addr{}, false},
		{netip.MustParseAddr("0.0.0.0"), false},
		{netip.MustParseAddr("127.0.0.5"), false},
		{netip.MustParseAddr("224.0.0.1"), false},
		{netip.MustParseAddr("255.255.255.255"), false},
		{netip.MustParseAddr("fd00::1"), false},
		{netip.MustParseAddr("::ffff:10.0.0.1"), false},
	}
	for _, c := range cases {
		if got := IsUnicast(c.addr); got != c.want {
			t.Errorf("IsUnicast(%s) = %v, want %v", Describe(c.addr), got, c.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	if got := Describe(netip.Addr{}); got != "(unset)" {
		t.Errorf("Describe(zero) = %q, want (unset)", got)
	}
	if got := Describe(netip.MustParseAddr("10.0.0.1")); got != "10.0.0.1" {
		t.Errorf("Describe(10.0.0.1) = %q", got)
	}
}

func TestCheckList(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	cases := []struct {
		name string
		list []netip.Addr
		want *ListFault
	}{
		{"empty", nil, nil},
		{"fine", []netip.Addr{a("10.0.0.2"), a("10.0.0.1")}, nil},
		{"invalid", []netip.Addr{a("10.0.0.1"), {}}, &ListFault{Index: 1, Repeats: -1}},
		{"repeated", []netip.Addr{a("10.0.0.1"), a("10.0.0.2"), a("10.0.0.1")}, &ListFault{Index: 2, Addr: a("10.0.0.1"), Repeats: 0}},
		{"first fault wins", []netip.Addr{a("10.0.0.1"), a("10.0.0.1"), a("fd00::1")}, &ListFault{Index: 1, Addr: a("10.0.0.1"), Repeats: 0}},
		{"repeated invalid is invalid", []netip.Addr{a("224.0.0.1"), a("224.0.0.1")}, &ListFault{Index: 0, Addr: a("224.0.0.1"), Repeats: -1}},
	}
	for _, c := range cases {
		got := CheckList(c.list)
		if (got == nil) != (c.want == nil) || got != nil && *got != *c.want {
			t.Errorf("%s: CheckList = %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestCheckListProperty: CheckList reports nil exactly when every address
// is unicast and distinct, and otherwise points at an address that is
// faulty in the way it says, with no fault before it.
func TestCheckListProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Few distinct values, some not unicast, so that faults are common.
		pool := []netip.Addr{{}, netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("10.0.0.1"),
			netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("224.0.0.9")}
		list := rapid.SliceOfN(rapid.SampledFrom(pool), 0, 8).Draw(t, "list")
		f := CheckList(list)
		seen := map[netip.Addr]int{}
		for k, a := range list {
			_, dup := seen[a]
			if !IsUnicast(a) || dup {
				if f == nil || f.Index != k || f.Addr != a {
					t.Fatalf("CheckList(%v) = %+v, want the fault at %d", list, f, k)
				}
				if want := -1; !IsUnicast(a) && f.Repeats != want || IsUnicast(a) && f.Repeats != seen[a] {
					t.Fatalf("CheckList(%v) = %+v: wrong Repeats", list, f)
				}
				return
			}
			seen[a] = k
		}
		if f != nil {
			t.Fatalf("CheckList(%v) = %+v for a list without faults", list, f)
		}
	})
}
