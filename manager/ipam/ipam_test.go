package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestNextSubnet(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pools []netip.Prefix
		bits  int
		used  []netip.Prefix
		want  string
		err   error
	}{
		{"empty pool use", DefaultPool, 24, nil, "10.0.0.0/24", nil},
		{"skips used", DefaultPool, 24, prefixes("10.0.0.0/24", "10.0.1.0/24"), "10.0.2.0/24", nil},
		{"fills a hole", DefaultPool, 24, prefixes("10.0.0.0/24", "10.0.2.0/24"), "10.0.1.0/24", nil},
		{"skips a large used block at once", DefaultPool, 24, prefixes("10.0.0.0/9"), "10.128.0.0/24", nil},
		{"smaller used subnet blocks its /24", DefaultPool, 24, prefixes("10.0.0.64/26"), "10.0.1.0/24", nil},
		{"second pool", prefixes("10.0.0.0/24", "192.168.0.0/16"), 24, prefixes("10.0.0.0/24"), "192.168.0.0/24", nil},
		{"exhausted", prefixes("10.0.0.0/23"), 24, prefixes("10.0.0.0/24", "10.0.1.0/24"), "", ErrExhausted},
		{"size larger than pool", prefixes("10.0.0.0/24"), 16, nil, "", ErrExhausted},
		{"bad size", DefaultPool, 31, nil, "", ErrBadSubnet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NextSubnet(tc.pools, tc.bits, tc.used)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || got.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestNextVNI(t *testing.T) {
	for _, tc := range []struct {
		used []uint32
		want uint32
	}{
		{nil, 4096},
		{[]uint32{4096, 4097}, 4098},
		{[]uint32{4097, 4096, 1, 9000}, 4098},
		{[]uint32{4098}, 4096},
	} {
		if got, err := NextVNI(tc.used); err != nil || got != tc.want {
			t.Errorf("NextVNI(%v) = %d, %v; want %d", tc.used, got, err, tc.want)
		}
	}
}

func TestCheckSubnet(t *testing.T) {
	for s, ok := range map[string]bool{
		"10.0.0.0/24": true, "10.0.0.0/30": true, "10.0.0.0/31": false,
		"10.0.0.1/24": false, "fd00::/64": false,
	} {
		if err := CheckSubnet(netip.MustParsePrefix(s)); (err == nil) != ok {
			t.Errorf("CheckSubnet(%s) = %v, want ok=%v", s, err, ok)
		}
	}
}

func TestPoolHandsOutEveryHostAddressOnce(t *testing.T) {
	p, err := NewPool(netip.MustParsePrefix("10.1.0.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Claim(Gateway(p.Subnet())); err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	for {
		a, err := p.Allocate()
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil || seen[a] {
			t.Fatalf("allocate: %v %v (seen %v)", a, err, seen[a])
		}
		seen[a] = true
	}
	if len(seen) != 5 { // 8 - network - broadcast - gateway
		t.Fatalf("handed out %d addresses, want 5: %v", len(seen), seen)
	}
	if err := p.Claim(netip.MustParseAddr("10.1.0.7")); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("claim of the broadcast address: %v", err)
	}
}

func TestPoolReleasedAddressComesBackLast(t *testing.T) {
	p, _ := NewPool(netip.MustParsePrefix("10.1.0.0/28"))
	first, _ := p.Allocate()
	p.Release(first)
	next, _ := p.Allocate()
	if next == first {
		t.Fatalf("released %s handed out again at once", first)
	}
}

// TestPoolProperty: whatever the sequence of allocations, claims and
// releases, no address is ever held twice, every held address is a host
// address of the subnet, and the counts agree.
func TestPoolProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		bits := rapid.IntRange(24, 30).Draw(t, "bits")
		p, err := NewPool(netip.PrefixFrom(netip.MustParseAddr("10.9.0.0"), bits))
		if err != nil {
			t.Fatal(err)
		}
		held := map[netip.Addr]bool{}
		for i := rapid.IntRange(1, 300).Draw(t, "ops"); i > 0; i-- {
			switch rapid.IntRange(0, 2).Draw(t, "op") {
			case 0:
				a, err := p.Allocate()
				if errors.Is(err, ErrExhausted) {
					if len(held) != HostCount(p.Subnet()) {
						t.Fatalf("exhausted with %d of %d held", len(held), HostCount(p.Subnet()))
					}
					continue
				}
				if err != nil || held[a] {
					t.Fatalf("allocate gave %s (err %v), held already: %v", a, err, held[a])
				}
				held[a] = true
			case 1:
				off := rapid.IntRange(0, 1<<(32-bits)-1).Draw(t, "claim")
				a := addr(u32(p.Subnet().Addr()) + uint32(off))
				err := p.Claim(a)
				switch {
				case off == 0 || off == 1<<(32-bits)-1:
					if !errors.Is(err, ErrOutOfRange) {
						t.Fatalf("claim %s: %v, want out of range", a, err)
					}
				case held[a]:
					if !errors.Is(err, ErrInUse) {
						t.Fatalf("claim of held %s: %v, want in use", a, err)
					}
				default:
					if err != nil {
						t.Fatalf("claim %s: %v", a, err)
					}
					held[a] = true
				}
			case 2:
				if len(held) == 0 {
					continue
				}
				keys := make([]netip.Addr, 0, len(held))
				for a := range held {
					keys = append(keys, a)
				}
				slices.SortFunc(keys, netip.Addr.Compare)
				a := keys[rapid.IntRange(0, len(keys)-1).Draw(t, "release")]
				p.Release(a)
				delete(held, a)
			}
			if p.InUse() != len(held) || p.usedCount() != len(held) || p.Free() != HostCount(p.Subnet())-len(held) {
				t.Fatalf("counts: inUse %d, bits %d, free %d; held %d", p.InUse(), p.usedCount(), p.Free(), len(held))
			}
			for a := range held {
				if !p.Contains(a) || !p.Subnet().Contains(a) {
					t.Fatalf("%s held but not in pool", a)
				}
			}
		}
	})
}

func TestPoolContinueAfter(t *testing.T) {
	p, _ := NewPool(netip.MustParsePrefix("10.1.0.0/28"))
	if p.Last().IsValid() {
		t.Fatalf("fresh pool has a last address %s", p.Last())
	}
	a, _ := p.Allocate()
	if p.Last() != a {
		t.Fatalf("Last = %s, want %s", p.Last(), a)
	}
	// A pool rebuilt with the same holdings continues after the last
	// address instead of handing the lowest free one out again.
	q, _ := NewPool(netip.MustParsePrefix("10.1.0.0/28"))
	q.ContinueAfter(netip.MustParseAddr("10.1.0.9"))
	if got, _ := q.Allocate(); got != netip.MustParseAddr("10.1.0.10") {
		t.Fatalf("after 10.1.0.9 got %s", got)
	}
	q.ContinueAfter(netip.MustParseAddr("10.1.0.14"))
	if got, _ := q.Allocate(); got != netip.MustParseAddr("10.1.0.1") {
		t.Fatalf("after the last host address got %s, want a wrap to 10.1.0.1", got)
	}
}
