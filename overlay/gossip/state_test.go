package gossip

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// ep returns a valid endpoint of network net with ID id; tag varies the
// task address so that two versions of one ID differ.
func ep(id, net string, tag byte) Endpoint {
	e, err := normalize(Endpoint{
		ID: id, NetworkID: net, ServiceID: "svc-" + net, ServiceName: "web",
		Aliases: []string{"www"},
		Addr:    netip.AddrFrom4([4]byte{10, 0, 0, tag}),
		MAC:     fmt.Sprintf("02:42:0a:00:00:%02x", tag),
		VTEP:    netip.MustParseAddr("192.0.2.1"),
		VIP:     netip.MustParseAddr("10.0.0.250"),
	})
	if err != nil {
		panic(err)
	}
	return e
}

// epoch is the time the merge tests pass as now.
var epoch = time.Unix(0, 0)

// pub and del build deltas of node at incarnation inc.
func pub(node string, inc, v uint64, e Endpoint) delta {
	return delta{Node: node, Inc: inc, Version: v, ID: e.ID, Endpoint: e}
}

func del(node string, inc, v uint64, id string) delta {
	return delta{Node: node, Inc: inc, Version: v, ID: id, Deleted: true}
}

// ids returns "node/id@addr" for each endpoint, to compare tables briefly.
func ids(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, fmt.Sprintf("%s/%s@%s", e.Node, e.ID, e.Addr))
	}
	return out
}

// TestMergeScripts runs short scripts of deltas, snapshots and departures
// against one replica and checks the resulting table.
func TestMergeScripts(t *testing.T) {
	a1, a2, b1 := ep("a", "n1", 1), ep("a", "n1", 2), ep("b", "n1", 3)
	snap := func(inc, complete uint64, seen []uint64, es ...entryRecord) func(*state) mergeResult {
		return func(s *state) mergeResult {
			return s.mergeSnapshot(nodeSnapshot{Node: "x", Inc: inc, Complete: complete, Seen: seen, Entries: es})
		}
	}
	live := func(v uint64, e Endpoint) entryRecord { return entryRecord{ID: e.ID, Version: v, Endpoint: e} }
	tomb := func(v uint64, id string) entryRecord { return entryRecord{ID: id, Version: v, Deleted: true} }
	d := func(dl delta) func(*state) mergeResult {
		return func(s *state) mergeResult { return s.applyDelta(dl, epoch) }
	}
	left := func(s *state) mergeResult { return mergeResult{Changed: s.nodeLeft("x", 0, epoch)} }
	alive := func(s *state) mergeResult { s.nodeAlive("x"); return mergeResult{} }

	tests := []struct {
		name  string
		steps []func(*state) mergeResult
		want  []string
	}{
		{"newer delta wins over older arriving later",
			[]func(*state) mergeResult{d(pub("x", 1, 2, a2)), d(pub("x", 1, 1, a1))},
			[]string{"x/a@10.0.0.2"}},
		{"withdrawal is not undone by a stale publish",
			[]func(*state) mergeResult{d(pub("x", 1, 1, a1)), d(del("x", 1, 2, "a")), d(pub("x", 1, 1, a1))},
			nil},
		{"withdrawal arriving before its publish",
			[]func(*state) mergeResult{d(del("x", 1, 2, "a")), d(pub("x", 1, 1, a1))},
			nil},
		{"stale publish after the tombstone was collected",
			[]func(*state) mergeResult{d(pub("x", 1, 1, a1)), d(del("x", 1, 2, "a")), d(pub("x", 1, 3, b1)), d(pub("x", 1, 1, a1))},
			[]string{"x/b@10.0.0.3"}},
		{"snapshot drops what it covers and does not list",
			[]func(*state) mergeResult{d(pub("x", 1, 1, a1)), d(pub("x", 1, 2, b1)), snap(1, 3, nil, live(2, b1))},
			[]string{"x/b@10.0.0.3"}},
		{"snapshot keeps entries newer than it covers",
			[]func(*state) mergeResult{d(pub("x", 1, 5, a2)), snap(1, 3, nil, live(2, b1))},
			[]string{"x/a@10.0.0.2", "x/b@10.0.0.3"}},
		{"snapshot tombstone above complete removes",
			[]func(*state) mergeResult{d(pub("x", 1, 4, a1)), snap(1, 2, []uint64{5}, tomb(5, "a"))},
			nil},
		{"newer incarnation replaces everything",
			[]func(*state) mergeResult{d(pub("x", 1, 1, a1)), d(pub("x", 1, 2, b1)), d(pub("x", 2, 1, a2))},
			[]string{"x/a@10.0.0.2"}},
		{"announcement of a newer incarnation empties the node",
			[]func(*state) mergeResult{d(pub("x", 1, 1, a1)), d(delta{Node: "x", Inc: 2})},
			nil},
		{"older incarnation refused",
			[]func(*state) mergeResult{d(pub("x", 2, 1, a2)), d(pub("x", 1, 7, b1)), snap(1, 9, nil, live(9, b1))},
			[]string{"x/a@10.0.0.2"}},
		{"departed node's stale delta does not resurrect it",
			[]func(*state) mergeResult{d(pub("x", 1, 1, a1)), left, d(pub("x", 1, 2, b1)), snap(1, 2, nil, live(1, a1), live(2, b1))},
			nil},
		{"departed node's newer incarnation is accepted",
			[]func(*state) mergeResult{d(pub("x", 1, 1, a1)), left, d(pub("x", 2, 1, b1))},
			[]string{"x/b@10.0.0.3"}},
		{"leave announcement departs the node",
			[]func(*state) mergeResult{d(pub("x", 1, 1, a1)), d(delta{Node: "x", Inc: 1, Deleted: true}), d(pub("x", 1, 2, b1))},
			nil},
		{"leave announcement of a previous run is ignored",
			[]func(*state) mergeResult{d(pub("x", 2, 1, a1)), d(delta{Node: "x", Inc: 1, Deleted: true})},
			[]string{"x/a@10.0.0.1"}},
		{"node seen alive again is accepted at the same incarnation",
			[]func(*state) mergeResult{d(pub("x", 1, 1, a1)), left, alive, snap(1, 1, nil, live(1, a1))},
			[]string{"x/a@10.0.0.1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newState("self", 1, netip.AddrPort{})
			for _, step := range tc.steps {
				step(s)
			}
			if got := ids(s.all()); !slices.Equal(got, tc.want) {
				t.Errorf("table = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMergeResultFlags(t *testing.T) {
	s := newState("self", 1, netip.AddrPort{})
	a1, a2 := ep("a", "n1", 1), ep("a", "n1", 2)
	if r := s.applyDelta(pub("x", 1, 2, a2), epoch); !r.Changed || !r.News {
		t.Errorf("first delta: %+v, want changed and news", r)
	}
	if r := s.applyDelta(pub("x", 1, 2, a2), epoch); r.Changed || r.News {
		t.Errorf("duplicate delta: %+v, want nothing", r)
	}
	if r := s.applyDelta(pub("x", 1, 1, a1), epoch); r.Changed || r.News {
		t.Errorf("superseded delta: %+v, want nothing (not relayed)", r)
	}
	if r := s.applyDelta(delta{Node: "x", Inc: 1}, epoch); r.News {
		t.Errorf("announcement of the known incarnation: %+v, want no news", r)
	}
	if r := s.applyDelta(delta{Node: "x", Inc: 3}, epoch); !r.News || !r.Changed {
		t.Errorf("announcement of a newer incarnation: %+v, want news and change", r)
	}
}

func TestOwnChanges(t *testing.T) {
	s := newState("self", 7, netip.AddrPort{})
	a1, a2 := ep("a", "n1", 1), ep("a", "n1", 2)
	d1, ok := s.publish(a1)
	if !ok || d1.Version != 1 || d1.Inc != 7 || d1.Endpoint.Node != "self" {
		t.Fatalf("publish: %+v %v, want version 1 at incarnation 7 by self", d1, ok)
	}
	if _, ok := s.publish(a1); ok {
		t.Errorf("publishing the same endpoint again made a delta")
	}
	if d, ok := s.publish(a2); !ok || d.Version != 2 {
		t.Errorf("replacing: %+v %v, want version 2", d, ok)
	}
	if d, ok := s.withdraw("a"); !ok || d.Version != 3 || !d.Deleted {
		t.Errorf("withdraw: %+v %v, want a deletion at version 3", d, ok)
	}
	if _, ok := s.withdraw("a"); ok {
		t.Errorf("withdrawing twice made a delta")
	}
	if got := s.all(); len(got) != 0 {
		t.Errorf("table after withdraw = %v", ids(got))
	}
}

func TestSelfConflict(t *testing.T) {
	s := newState("self", 5, netip.AddrPort{})
	s.publish(ep("a", "n1", 1))
	s.publish(ep("b", "n1", 2))
	tests := []struct {
		name string
		res  mergeResult
		want bool
	}{
		{"echo of own delta", s.applyDelta(pub("self", 5, 1, ep("a", "n1", 1)), epoch), false},
		{"older incarnation", s.applyDelta(pub("self", 4, 9, ep("a", "n1", 1)), epoch), false},
		{"newer incarnation", s.applyDelta(pub("self", 6, 1, ep("a", "n1", 9)), epoch), true},
		{"same incarnation, later version", s.applyDelta(pub("self", 5, 3, ep("a", "n1", 9)), epoch), true},
		{"snapshot of a newer incarnation", s.mergeSnapshot(nodeSnapshot{Node: "self", Inc: 9}), true},
	}
	for _, tc := range tests {
		if tc.res.SelfConflict != tc.want || tc.res.Changed {
			t.Errorf("%s: %+v, want SelfConflict=%v and no change", tc.name, tc.res, tc.want)
		}
	}
	ds := s.reincarnate(10)
	if len(ds) != 3 || !ds[0].isAnnouncement() || ds[0].Inc != 10 || ds[1].Version != 1 || ds[2].Version != 2 {
		t.Fatalf("reincarnate deltas = %+v, want announcement then versions 1, 2 at incarnation 10", ds)
	}
	if got := ids(s.ownEndpoints()); !slices.Equal(got, []string{"self/a@10.0.0.1", "self/b@10.0.0.2"}) {
		t.Errorf("own endpoints after reincarnate = %v", got)
	}
	// A replica that saw the old incarnation ends with the new one.
	r := newState("r", 1, netip.AddrPort{})
	r.mergeSnapshot(nodeSnapshot{Node: "self", Inc: 5, Complete: 2, Entries: []entryRecord{{ID: "z", Version: 1, Endpoint: ep("z", "n1", 7)}}})
	for _, d := range ds {
		r.applyDelta(d, epoch)
	}
	if got := ids(r.all()); !slices.Equal(got, []string{"self/a@10.0.0.1", "self/b@10.0.0.2"}) {
		t.Errorf("replica after reincarnation = %v", got)
	}
}

func TestReapDepartures(t *testing.T) {
	s := newState("self", 1, netip.AddrPort{})
	t0 := time.Unix(1000, 0)
	s.applyDelta(pub("x", 1, 1, ep("a", "n1", 1)), epoch)
	s.nodeLeft("x", 0, t0)
	s.nodeLeft("y", 0, t0.Add(time.Minute))
	s.reapDepartures(t0.Add(time.Second))
	if _, ok := s.departed["x"]; ok {
		t.Errorf("departure of x survived reaping")
	}
	if _, ok := s.departed["y"]; !ok {
		t.Errorf("departure of y was reaped early")
	}
	if s.nodeLeft("self", 0, t0) || len(s.nodes["self"].entries) != 0 || s.departed["self"] != (departure{}) {
		t.Errorf("a node departed from its own table")
	}
}

// history is what the owners did: every message they sent, in order, and
// their final endpoints.
type history struct {
	msgs  []message
	final []Endpoint
	// finalInc is each owner's last incarnation.
	finalInc map[string]uint64
}

// message is a delta or a snapshot of some nodes.
type message struct {
	delta *delta
	snap  []nodeSnapshot
}

func (m message) apply(s *state) mergeResult {
	if m.delta != nil {
		return s.applyDelta(*m.delta, epoch)
	}
	var res mergeResult
	for _, sn := range m.snap {
		r := s.mergeSnapshot(sn)
		res.Changed = res.Changed || r.Changed
	}
	return res
}

// genHistory makes owners publish, replace, withdraw and restart at
// random, recording every delta and, now and then, a snapshot of an owner
// or of a relay replica that hears part of the gossip out of order.
func genHistory(t *rapid.T, owners []string, snapshots bool) history {
	h := history{finalInc: map[string]uint64{}}
	own := map[string]*state{}
	for i, o := range owners {
		own[o] = newState(o, uint64(10*i+1), netip.AddrPort{})
		a := own[o].announcement()
		h.msgs = append(h.msgs, message{delta: &a})
	}
	relay := newState("relay", 1, netip.AddrPort{})
	steps := rapid.IntRange(1, 40).Draw(t, "steps")
	for range steps {
		o := rapid.SampledFrom(owners).Draw(t, "owner")
		s := own[o]
		switch rapid.IntRange(0, 9).Draw(t, "op") {
		case 0, 1, 2, 3, 4:
			id := rapid.SampledFrom([]string{"a", "b", "c", "d"}).Draw(t, "id")
			net := rapid.SampledFrom([]string{"n1", "n2"}).Draw(t, "net")
			e := ep(id, net, rapid.ByteRange(1, 4).Draw(t, "tag"))
			if d, ok := s.publish(e); ok {
				h.msgs = append(h.msgs, message{delta: &d})
			}
		case 5, 6:
			id := rapid.SampledFrom([]string{"a", "b", "c", "d"}).Draw(t, "id")
			if d, ok := s.withdraw(id); ok {
				h.msgs = append(h.msgs, message{delta: &d})
			}
		case 7:
			// A restart: a new run with a higher incarnation and nothing
			// published yet.
			own[o] = newState(o, s.own().inc+uint64(rapid.IntRange(1, 3).Draw(t, "incStep")), netip.AddrPort{})
			a := own[o].announcement()
			h.msgs = append(h.msgs, message{delta: &a})
		case 8:
			if snapshots {
				h.msgs = append(h.msgs, message{snap: s.snapshot()})
			}
		case 9:
			// The relay hears some of the messages so far, in any order,
			// and its view becomes a message too.
			if snapshots && len(h.msgs) > 0 {
				for range rapid.IntRange(0, len(h.msgs)).Draw(t, "heard") {
					h.msgs[rapid.IntRange(0, len(h.msgs)-1).Draw(t, "which")].apply(relay)
				}
				h.msgs = append(h.msgs, message{snap: relay.snapshot()})
			}
		}
	}
	for _, o := range owners {
		h.final = append(h.final, own[o].ownEndpoints()...)
		h.finalInc[o] = own[o].own().inc
		if snapshots {
			h.msgs = append(h.msgs, message{snap: own[o].snapshot()})
		}
	}
	slices.SortFunc(h.final, compareEndpoints)
	return h
}

// deliver returns msgs shuffled, with random duplicates.
func deliver(t *rapid.T, msgs []message, label string) []message {
	out := rapid.Permutation(msgs).Draw(t, label)
	for range rapid.IntRange(0, len(msgs)).Draw(t, label+"-dups") {
		i := rapid.IntRange(0, len(out)-1).Draw(t, label+"-dup")
		j := rapid.IntRange(0, len(out)).Draw(t, label+"-at")
		out = slices.Insert(out, j, out[i])
	}
	return out
}

// versionWatch checks that a replica never moves a node's data back: the
// incarnation never decreases and, within one, an ID's version neither.
type versionWatch struct {
	inc map[string]uint64
	ver map[string]uint64 // "node\x00inc\x00id" → highest version seen
}

func (w *versionWatch) check(t *rapid.T, s *state) {
	if w.inc == nil {
		w.inc, w.ver = map[string]uint64{}, map[string]uint64{}
	}
	for name, r := range s.nodes {
		if r.inc < w.inc[name] {
			t.Fatalf("node %s went back from incarnation %d to %d", name, w.inc[name], r.inc)
		}
		w.inc[name] = r.inc
		for id, e := range r.entries {
			k := fmt.Sprintf("%s\x00%d\x00%s", name, r.inc, id)
			if e.Version < w.ver[k] {
				t.Fatalf("node %s entry %s went back from version %d to %d", name, id, w.ver[k], e.Version)
			}
			w.ver[k] = e.Version
		}
	}
}

// TestConvergenceProperty: replicas that receive every message, in any
// order and with duplicates, end with the owners' final endpoints, and
// never move a node's data back on the way.
func TestConvergenceProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		owners := []string{"o1", "o2", "o3"}[:rapid.IntRange(1, 3).Draw(t, "owners")]
		h := genHistory(t, owners, rapid.Bool().Draw(t, "snapshots"))
		for _, name := range []string{"A", "B"} {
			s := newState(name, 1, netip.AddrPort{})
			var w versionWatch
			for _, m := range deliver(t, h.msgs, name) {
				m.apply(s)
				w.check(t, s)
			}
			if got, want := s.all(), h.final; !slices.EqualFunc(got, want, Endpoint.equal) {
				t.Fatalf("replica %s: table %v, owners hold %v", name, ids(got), ids(want))
			}
		}
	})
}

// TestSnapshotOnlyConvergence: the owners' final snapshots alone, mixed
// with any stale snapshots of owners and relays, yield the final table.
func TestSnapshotOnlyConvergence(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		owners := []string{"o1", "o2"}[:rapid.IntRange(1, 2).Draw(t, "owners")]
		h := genHistory(t, owners, true)
		var snaps []message
		for _, m := range h.msgs {
			if m.snap != nil {
				snaps = append(snaps, m)
			}
		}
		s := newState("A", 1, netip.AddrPort{})
		var w versionWatch
		for _, m := range deliver(t, snaps, "snaps") {
			m.apply(s)
			w.check(t, s)
		}
		if got := s.all(); !slices.EqualFunc(got, h.final, Endpoint.equal) {
			t.Fatalf("table %v, owners hold %v", ids(got), ids(h.final))
		}
	})
}

// TestDepartureProperty: once a node departs, nothing of the departed
// incarnation or older comes back, whatever arrives later; a newer
// incarnation is accepted and converges.
func TestDepartureProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := genHistory(t, []string{"x"}, rapid.Bool().Draw(t, "snapshots"))
		msgs := deliver(t, h.msgs, "order")
		cut := rapid.IntRange(0, len(msgs)).Draw(t, "departAt")
		s := newState("A", 1, netip.AddrPort{})
		for _, m := range msgs[:cut] {
			m.apply(s)
		}
		var depInc uint64
		if r, ok := s.nodes["x"]; ok {
			depInc = r.inc
		}
		s.nodeLeft("x", 0, epoch)
		if got := s.all(); len(got) != 0 {
			t.Fatalf("entries of departed x remain: %v", ids(got))
		}
		for _, m := range msgs[cut:] {
			m.apply(s)
			if r, ok := s.nodes["x"]; ok && r.live() > 0 && r.inc <= depInc {
				t.Fatalf("x resurrected at incarnation %d, departed at %d", r.inc, depInc)
			}
		}
		if h.finalInc["x"] > depInc {
			if got := s.all(); !slices.EqualFunc(got, h.final, Endpoint.equal) {
				t.Fatalf("newer incarnation %d (departed at %d): table %v, owner holds %v",
					h.finalInc["x"], depInc, ids(got), ids(h.final))
			}
		} else if got := s.all(); len(got) != 0 {
			t.Fatalf("departed incarnation came back: %v", ids(got))
		}
	})
}

func TestNodeAddress(t *testing.T) {
	self := netip.MustParseAddrPort("192.0.2.1:7946")
	s := newState("self", 1, self)
	if d, _ := s.publish(ep("a", "n1", 1)); d.Addr != self {
		t.Errorf("own delta carries address %v, want %v", d.Addr, self)
	}
	if sn := s.snapshot(); sn[0].Addr != self {
		t.Errorf("own snapshot carries address %v, want %v", sn[0].Addr, self)
	}
	x1, x2 := netip.MustParseAddrPort("192.0.2.2:7946"), netip.MustParseAddrPort("192.0.2.3:7000")
	s.applyDelta(delta{Node: "x", Addr: x1, Inc: 1}, epoch)
	if got, ok := s.addrOf("x"); !ok || got != x1 {
		t.Errorf("address of x = %v %v, want %v from its announcement", got, ok, x1)
	}
	s.mergeSnapshot(nodeSnapshot{Node: "x", Addr: x2, Inc: 1})
	s.applyDelta(pub("x", 1, 1, ep("b", "n1", 2)), epoch) // carries no address
	if got, _ := s.addrOf("x"); got != x2 {
		t.Errorf("address of x = %v, want %v from the snapshot, kept when a delta has none", got, x2)
	}
	s.mergeSnapshot(nodeSnapshot{Node: "x", Addr: x1, Inc: 0})
	if got, _ := s.addrOf("x"); got != x2 {
		t.Errorf("an older incarnation changed the address of x to %v", got)
	}
	if _, ok := s.addrOf("nobody"); ok {
		t.Errorf("address of an unknown node reported known")
	}
}
