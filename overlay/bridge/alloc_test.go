package bridge

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"pgregory.net/rapid"
)

// TestAllocatorNeverHandsOutAnAddressTwice drives an allocator with random
// attach, detach and restart (save, then load into a fresh allocator)
// sequences and checks it against a model: no address is ever held by two
// tasks, a task keeps its address until detached, only task addresses
// (not network, gateway or broadcast) are handed out, a new address is
// the first free one after the last handed out (so a freed address is
// reused last), and ErrExhausted comes exactly when all are taken.
func TestAllocatorNeverHandsOutAnAddressTwice(t *testing.T) {
	dir := t.TempDir()
	rapid.Check(t, func(rt *rapid.T) {
		bits := rapid.IntRange(27, MaxPrefixBits).Draw(rt, "bits")
		subnet := netip.PrefixFrom(netip.MustParseAddr("10.1.2.0"), bits)
		path := filepath.Join(dir, "state.json")
		_ = os.Remove(path)
		a := newAllocator(subnet)
		var all []netip.Addr // task addresses in order
		for ad := subnet.Addr().Next().Next(); subnet.Contains(ad.Next()); ad = ad.Next() {
			all = append(all, ad)
		}
		held := map[string]netip.Addr{}
		var last netip.Addr
		tasks := rapid.SampledFrom([]string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"})

		for range rapid.IntRange(1, 60).Draw(rt, "steps") {
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0, 1, 2: // attach
				task := tasks.Draw(rt, "task")
				got, fresh, err := a.allocate(task)
				if have, ok := held[task]; ok {
					if err != nil || fresh || got != have {
						rt.Fatalf("re-allocate %s = %v fresh=%v err=%v, want its %v", task, got, fresh, err, have)
					}
					continue
				}
				want, ok := nextFree(all, held, last)
				if !ok {
					if !errors.Is(err, ErrExhausted) {
						rt.Fatalf("allocate %s on a full subnet: %v %v, want ErrExhausted", task, got, err)
					}
					continue
				}
				if err != nil || !fresh || got != want {
					rt.Fatalf("allocate %s = %v fresh=%v err=%v, want %v", task, got, fresh, err, want)
				}
				held[task], last = got, got
			case 3, 4: // detach
				task := tasks.Draw(rt, "task")
				addr, ok := a.release(task)
				if have, had := held[task]; ok != had || addr != have {
					rt.Fatalf("release %s = %v %v, model %v %v", task, addr, ok, have, had)
				}
				delete(held, task)
			case 5: // restart
				if err := saveState(path, a); err != nil {
					rt.Fatal(err)
				}
				var dropped map[string]netip.Addr
				var err error
				if a, dropped, err = loadState(path, subnet); err != nil || dropped != nil {
					rt.Fatalf("load after save: %v (dropped %v)", err, dropped)
				}
			}
			owners := map[netip.Addr]string{}
			for task, addr := range a.tasks() {
				if other, dup := owners[addr]; dup {
					rt.Fatalf("%v handed to both %s and %s", addr, other, task)
				}
				owners[addr] = task
				if _, ok := a.offset(addr); !ok {
					rt.Fatalf("%s holds %v, not a task address of %v", task, addr, subnet)
				}
				if held[task] != addr {
					rt.Fatalf("%s holds %v, model %v", task, addr, held[task])
				}
			}
			if len(owners) != len(held) {
				rt.Fatalf("allocator has %d tasks, model %d", len(owners), len(held))
			}
		}
	})
}

// nextFree is the model: the first address of all not held, starting
// after last (or at the start), cyclically.
func nextFree(all []netip.Addr, held map[string]netip.Addr, last netip.Addr) (netip.Addr, bool) {
	taken := map[netip.Addr]bool{}
	for _, a := range held {
		taken[a] = true
	}
	start := 0
	for i, a := range all {
		if a == last {
			start = i + 1
		}
	}
	for i := range all {
		if a := all[(start+i)%len(all)]; !taken[a] {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func TestAllocatorBounds(t *testing.T) {
	for _, tc := range []struct {
		subnet      string
		first, last string
		count       int
	}{
		{"172.18.0.0/16", "172.18.0.2", "172.18.255.254", 65533},
		{"10.0.0.0/30", "10.0.0.2", "10.0.0.2", 1},
		{"10.0.0.8/29", "10.0.0.10", "10.0.0.14", 5},
		{"10.0.0.0/8", "10.0.0.2", "10.255.255.254", 1<<24 - 3},
	} {
		a := newAllocator(netip.MustParsePrefix(tc.subnet))
		if int(a.count) != tc.count {
			t.Errorf("%s: %d task addresses, want %d", tc.subnet, a.count, tc.count)
		}
		if got := a.addr(a.first).String(); got != tc.first {
			t.Errorf("%s: first task address %s, want %s", tc.subnet, got, tc.first)
		}
		if got := a.addr(a.first + a.count - 1).String(); got != tc.last {
			t.Errorf("%s: last task address %s, want %s", tc.subnet, got, tc.last)
		}
		p := netip.MustParsePrefix(tc.subnet)
		for _, bad := range []netip.Addr{p.Addr(), gateway(p), a.addr(a.first + a.count), netip.MustParseAddr("192.0.2.1")} {
			if _, ok := a.offset(bad); ok {
				t.Errorf("%s: %v counted as a task address", tc.subnet, bad)
			}
		}
	}
}

func TestLoadStateRefusesCorruptFiles(t *testing.T) {
	subnet := netip.MustParsePrefix("10.5.0.0/24")
	dir := t.TempDir()
	for i, tc := range []struct {
		content string
		wantErr bool
		dropped int
	}{
		{`{"version":1,"subnet":"10.5.0.0/24","tasks":{"a":"10.5.0.2","b":"10.5.0.2"}}`, true, 0},  // duplicate
		{`{"version":1,"subnet":"10.5.0.0/24","tasks":{"a":"10.5.0.1"}}`, true, 0},                 // the gateway
		{`{"version":1,"subnet":"10.5.0.0/24","tasks":{"a":"10.6.0.9"}}`, true, 0},                 // outside, same subnet
		{`{"version":2,"subnet":"10.5.0.0/24","tasks":{}}`, true, 0},                               // unknown version
		{`{"version":1,"subnet":"10.6.0.0/24","tasks":{"a":"10.6.0.9","b":"10.5.0.7"}}`, false, 1}, // subnet changed
		{`{"version":1,"subnet":"10.5.0.0/24","last":"10.5.0.9","tasks":{"a":"10.5.0.9"}}`, false, 0},
	} {
		path := filepath.Join(dir, fmt.Sprintf("s%d.json", i))
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		a, dropped, err := loadState(path, subnet)
		if tc.wantErr {
			if !errors.Is(err, ErrState) {
				t.Errorf("%s: %v, want ErrState", tc.content, err)
			}
			continue
		}
		if err != nil || len(dropped) != tc.dropped {
			t.Errorf("%s: dropped %v, err %v; want %d dropped", tc.content, dropped, err, tc.dropped)
			continue
		}
		if next, _, _ := a.allocate("new"); next == netip.MustParseAddr("10.5.0.2") && tc.dropped == 0 {
			t.Errorf("%s: the cursor was not restored: allocated %v", tc.content, next)
		}
	}
}
