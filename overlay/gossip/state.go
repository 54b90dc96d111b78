package gossip

import (
	"maps"
	"net/netip"
	"slices"
	"time"
)

// This file is the merge engine: a pure state machine with no network, no
// clock and no locks. The Table feeds it what memberlist delivers and what
// the local agent publishes; tests feed it directly.
//
// Every node owns its entries. Each change a node makes to them gets the
// next number of the node's version counter (1, 2, 3, ...), within the
// node's incarnation (a number that grows across restarts). The pair
// (incarnation, version) orders a node's changes; nothing else does.
//
//   - A delta is one change: endpoint ID set to an endpoint, or withdrawn,
//     at a version. Receivers keep, per (node, ID), the change with the
//     highest version (last writer wins, and there is only one writer).
//   - A snapshot is a node's whole state as some replica knows it: the
//     entries, plus "complete", the version up to which that replica knows
//     every change. An entry with a version at or below complete that the
//     snapshot lacks was withdrawn, so receivers drop it.
//   - Withdrawals leave a tombstone (so that an older publish arriving late
//     does not resurrect the entry) until the replica's complete version
//     passes it; from then on the complete version alone rejects the stale
//     publish.
//   - A higher incarnation replaces everything known about the node: a
//     restarted node starts from nothing and its old entries vanish.
//   - A departed node (memberlist declared it dead, or it announced its
//     leave) loses all its entries, and data of the departed incarnation or
//     older is refused until the node is seen alive again or shows a newer
//     incarnation.
//
// Whatever the order and duplication of deltas and snapshots, replicas
// that received the same information hold the same table (the property
// tests in state_test.go check this).

// entryRecord is the latest change one node made to one endpoint ID.
type entryRecord struct {
	ID       string
	Version  uint64
	Deleted  bool     // a tombstone: the ID was withdrawn at Version
	Endpoint Endpoint // the endpoint when !Deleted, with Node set
}

// delta is one change of one node, as broadcast. A delta with an empty ID
// and version 0 is an announcement: it announces the node's incarnation
// (receivers drop what they know of older ones) or, with Deleted set, that
// the node is leaving (receivers treat it as departed at once).
type delta struct {
	Node string
	// Addr is where the node gossips (its memberlist address), so that a
	// peer holding its entries without knowing it as a member can contact
	// it (see Table.sweep).
	Addr    netip.AddrPort
	Inc     uint64
	Version uint64
	ID      string
	Deleted bool
	// Endpoint is the new value when !Deleted.
	Endpoint Endpoint
}

// isAnnouncement reports whether d announces an incarnation or a leave
// rather than changing an entry.
func (d delta) isAnnouncement() bool { return d.ID == "" }

// isLeaving reports whether d announces that its node is leaving.
func (d delta) isLeaving() bool { return d.ID == "" && d.Deleted }

// nodeSnapshot is one node's state as a replica knows it, as sent in
// push-pull anti-entropy.
type nodeSnapshot struct {
	Node     string
	Addr     netip.AddrPort // where the node gossips
	Inc      uint64
	Complete uint64   // every change up to this version is reflected
	Seen     []uint64 // versions above Complete that are reflected, sorted
	Entries  []entryRecord
}

// nodeRecord is what a replica knows of one node.
type nodeRecord struct {
	addr     netip.AddrPort // where the node gossips; may be unknown
	inc      uint64
	complete uint64
	seen     map[uint64]struct{} // versions > complete already reflected
	entries  map[string]entryRecord
}

func newNodeRecord(inc uint64) *nodeRecord {
	return &nodeRecord{inc: inc, entries: map[string]entryRecord{}}
}

// live reports the number of entries that are not tombstones.
func (r *nodeRecord) live() int {
	n := 0
	for _, e := range r.entries {
		if !e.Deleted {
			n++
		}
	}
	return n
}

// known reports whether version v is already reflected in r.
func (r *nodeRecord) known(v uint64) bool {
	if v <= r.complete {
		return true
	}
	_, ok := r.seen[v]
	return ok
}

// markSeen records that version v is reflected and advances complete over
// every contiguous version seen.
func (r *nodeRecord) markSeen(v uint64) {
	if v <= r.complete {
		return
	}
	if r.seen == nil {
		r.seen = map[uint64]struct{}{}
	}
	r.seen[v] = struct{}{}
	r.advance()
}

// advance moves complete over contiguous seen versions and forgets what
// complete now covers: seen versions and tombstones at or below it.
func (r *nodeRecord) advance() {
	for {
		if _, ok := r.seen[r.complete+1]; !ok {
			break
		}
		delete(r.seen, r.complete+1)
		r.complete++
	}
	for v := range r.seen {
		if v <= r.complete {
			delete(r.seen, v)
		}
	}
	for id, e := range r.entries {
		if e.Deleted && e.Version <= r.complete {
			delete(r.entries, id)
		}
	}
}

// put applies one entry change if it is newer than what r holds for the
// ID. accepted reports that it was (the change is the newest known for
// its ID), changed that the visible table changed.
func (r *nodeRecord) put(e entryRecord) (accepted, changed bool) {
	cur, ok := r.entries[e.ID]
	if ok && cur.Version >= e.Version {
		return false, false
	}
	if e.Deleted {
		r.entries[e.ID] = entryRecord{ID: e.ID, Version: e.Version, Deleted: true}
		return true, ok && !cur.Deleted
	}
	r.entries[e.ID] = e
	return true, !ok || cur.Deleted || !cur.Endpoint.equal(e.Endpoint)
}

// departure records a node that memberlist declared dead or that left.
type departure struct {
	inc uint64    // the newest incarnation known when it departed
	at  time.Time // when, for reaping the record
}

// mergeResult says what a merge did.
type mergeResult struct {
	// Changed: the visible table changed (tell subscribers).
	Changed bool
	// News: a delta carried a new incarnation or the newest change of
	// its entry that this replica knows of; relay it, so that it spreads
	// epidemically. (A change already superseded here is not relayed:
	// the newer one is spreading too.)
	News bool
	// SelfConflict: the message claims a newer state of this very node
	// than it has (gossip of a previous run with a later incarnation, or
	// a second process using the same node name). The node must move to
	// a higher incarnation and re-announce (see state.reincarnate).
	SelfConflict bool
}

// state is the endpoint table as one node sees it: its own entries and
// what it learnt of every other node. Not safe for concurrent use.
type state struct {
	self     string
	nodes    map[string]*nodeRecord
	departed map[string]departure
}

// newState returns the table of node self, gossiping at addr, at
// incarnation inc, with no entries.
func newState(self string, inc uint64, addr netip.AddrPort) *state {
	own := newNodeRecord(inc)
	own.addr = addr
	return &state{
		self:     self,
		nodes:    map[string]*nodeRecord{self: own},
		departed: map[string]departure{},
	}
}

// own returns this node's record.
func (s *state) own() *nodeRecord { return s.nodes[s.self] }

// admit returns the record that data of node at incarnation inc, sent
// with the node's address addr (if valid), applies to, creating or
// resetting it, or nil when the data must be refused (an older
// incarnation, or the node departed at that incarnation). reset reports
// that a newer incarnation replaced the record; changed that entries
// vanished with it.
func (s *state) admit(node string, inc uint64, addr netip.AddrPort) (r *nodeRecord, reset, changed bool) {
	r, reset, changed = s.admitInc(node, inc)
	if r != nil && addr.IsValid() {
		r.addr = addr
	}
	return r, reset, changed
}

// admitInc is admit without the address.
func (s *state) admitInc(node string, inc uint64) (r *nodeRecord, reset, changed bool) {
	if dep, ok := s.departed[node]; ok {
		if inc <= dep.inc {
			return nil, false, false
		}
		delete(s.departed, node)
	}
	r = s.nodes[node]
	switch {
	case r == nil:
		r = newNodeRecord(inc)
		s.nodes[node] = r
		return r, true, false
	case inc < r.inc:
		return nil, false, false
	case inc > r.inc:
		changed = r.live() > 0
		r = newNodeRecord(inc)
		s.nodes[node] = r
		return r, true, changed
	}
	return r, false, false
}

// selfConflict reports whether data about this node at (inc, version)
// is newer than the node's own state.
func (s *state) selfConflict(inc, version uint64) bool {
	own := s.own()
	return inc > own.inc || (inc == own.inc && version > own.complete)
}

// applyDelta merges one delta received from the network at time now.
func (s *state) applyDelta(d delta, now time.Time) mergeResult {
	if d.Node == s.self {
		return mergeResult{SelfConflict: s.selfConflict(d.Inc, d.Version)}
	}
	if d.isLeaving() {
		if dep, ok := s.departed[d.Node]; ok && d.Inc <= dep.inc {
			return mergeResult{}
		}
		if r, ok := s.nodes[d.Node]; ok && d.Inc < r.inc {
			return mergeResult{} // a previous run leaving, long ago
		}
		return mergeResult{Changed: s.nodeLeft(d.Node, d.Inc, now), News: true}
	}
	r, reset, changed := s.admit(d.Node, d.Inc, d.Addr)
	if r == nil {
		return mergeResult{}
	}
	res := mergeResult{Changed: changed, News: reset}
	if d.isAnnouncement() || r.known(d.Version) {
		return res
	}
	e := entryRecord{ID: d.ID, Version: d.Version, Deleted: d.Deleted}
	if !d.Deleted {
		e.Endpoint = d.Endpoint.clone()
		e.Endpoint.Node = d.Node
	}
	accepted, changed := r.put(e)
	res.News = res.News || accepted
	res.Changed = res.Changed || changed
	r.markSeen(d.Version)
	return res
}

// mergeSnapshot merges what another replica knows of one node. Only
// Changed and SelfConflict are set: snapshots are not relayed.
func (s *state) mergeSnapshot(sn nodeSnapshot) mergeResult {
	if sn.Node == s.self {
		return mergeResult{SelfConflict: s.selfConflict(sn.Inc, maxVersion(sn))}
	}
	r, _, changed := s.admit(sn.Node, sn.Inc, sn.Addr)
	if r == nil {
		return mergeResult{}
	}
	res := mergeResult{Changed: changed}
	inSnapshot := make(map[string]struct{}, len(sn.Entries))
	for _, e := range sn.Entries {
		inSnapshot[e.ID] = struct{}{}
		if r.known(e.Version) {
			continue
		}
		if !e.Deleted {
			e.Endpoint = e.Endpoint.clone()
			e.Endpoint.Node = sn.Node
		}
		if _, changed := r.put(e); changed {
			res.Changed = true
		}
	}
	// The sender knows every change up to sn.Complete: an entry of ours
	// from that range that it does not list was withdrawn since.
	for id, e := range r.entries {
		if _, ok := inSnapshot[id]; ok || e.Version > sn.Complete {
			continue
		}
		if !e.Deleted {
			res.Changed = true
		}
		delete(r.entries, id)
	}
	r.complete = max(r.complete, sn.Complete)
	for _, v := range sn.Seen {
		if !r.known(v) {
			if r.seen == nil {
				r.seen = map[uint64]struct{}{}
			}
			r.seen[v] = struct{}{}
		}
	}
	r.advance()
	return res
}

// maxVersion is the highest version a snapshot reflects.
func maxVersion(sn nodeSnapshot) uint64 {
	v := sn.Complete
	if len(sn.Seen) > 0 {
		v = max(v, slices.Max(sn.Seen))
	}
	for _, e := range sn.Entries {
		v = max(v, e.Version)
	}
	return v
}

// nodeLeft drops every entry of a node memberlist declared dead or that
// left, and refuses its data of incarnation inc (0 when unknown), of the
// incarnation known here, or older, from now on. It reports whether the
// visible table changed. This node never departs from its own table.
func (s *state) nodeLeft(node string, inc uint64, now time.Time) (changed bool) {
	if node == s.self {
		return false
	}
	dep := s.departed[node]
	dep.inc = max(dep.inc, inc)
	if r, ok := s.nodes[node]; ok {
		changed = r.live() > 0
		dep.inc = max(dep.inc, r.inc)
		delete(s.nodes, node)
	}
	dep.at = now
	s.departed[node] = dep
	return changed
}

// nodeAlive lifts the departure of a node memberlist sees alive again
// (a false suspicion, a healed partition), so that its data of the same
// incarnation is accepted. It reports whether the node had departed: the
// caller then fetches the node's state, which every replica dropped.
func (s *state) nodeAlive(node string) (wasDeparted bool) {
	_, wasDeparted = s.departed[node]
	delete(s.departed, node)
	return wasDeparted
}

// reapDepartures forgets departures recorded before cutoff.
func (s *state) reapDepartures(cutoff time.Time) {
	maps.DeleteFunc(s.departed, func(_ string, d departure) bool { return d.at.Before(cutoff) })
}

// nodeNames returns the names of the nodes the table holds a record of,
// this node included, sorted.
func (s *state) nodeNames() []string {
	return slices.Sorted(maps.Keys(s.nodes))
}

// snapshot returns what this replica knows of every node, itself
// included, sorted by node and entry ID.
func (s *state) snapshot() []nodeSnapshot {
	out := make([]nodeSnapshot, 0, len(s.nodes))
	for _, name := range s.nodeNames() {
		r := s.nodes[name]
		sn := nodeSnapshot{Node: name, Addr: r.addr, Inc: r.inc, Complete: r.complete}
		sn.Seen = slices.Sorted(maps.Keys(r.seen))
		for _, id := range slices.Sorted(maps.Keys(r.entries)) {
			e := r.entries[id]
			e.Endpoint = e.Endpoint.clone()
			sn.Entries = append(sn.Entries, e)
		}
		out = append(out, sn)
	}
	return out
}

// publish sets this node's endpoint ep.ID to ep (already normalised) and
// returns the delta to broadcast; ok is false when ep is already
// published unchanged.
func (s *state) publish(ep Endpoint) (d delta, ok bool) {
	own := s.own()
	ep.Node = s.self
	if cur, found := own.entries[ep.ID]; found && !cur.Deleted && cur.Endpoint.equal(ep) {
		return delta{}, false
	}
	own.complete++
	own.entries[ep.ID] = entryRecord{ID: ep.ID, Version: own.complete, Endpoint: ep.clone()}
	own.advance()
	return delta{Node: s.self, Addr: own.addr, Inc: own.inc, Version: own.complete, ID: ep.ID, Endpoint: ep.clone()}, true
}

// withdraw removes this node's endpoint id and returns the delta to
// broadcast; ok is false when id is not published.
func (s *state) withdraw(id string) (d delta, ok bool) {
	own := s.own()
	if cur, found := own.entries[id]; !found || cur.Deleted {
		return delta{}, false
	}
	own.complete++
	// The own record is always complete, so the tombstone is dropped at
	// once: receivers get the withdrawal from the delta, and from any
	// snapshot by the absence of the ID.
	delete(own.entries, id)
	return delta{Node: s.self, Addr: own.addr, Inc: own.inc, Version: own.complete, ID: id, Deleted: true}, true
}

// ownEndpoints returns this node's published endpoints, sorted by ID.
func (s *state) ownEndpoints() []Endpoint {
	return s.collect(func(e Endpoint) bool { return e.Node == s.self })
}

// reincarnate moves this node to incarnation inc (which the caller makes
// higher than any it was contradicted with), numbers its live entries
// afresh and returns the deltas that announce them: the incarnation
// announcement first, then one per entry.
func (s *state) reincarnate(inc uint64) []delta {
	old := s.own()
	own := newNodeRecord(inc)
	own.addr = old.addr
	s.nodes[s.self] = own
	out := []delta{s.announcement()}
	for _, id := range slices.Sorted(maps.Keys(old.entries)) {
		e := old.entries[id]
		if e.Deleted {
			continue
		}
		own.complete++
		e.Version = own.complete
		own.entries[id] = e
		out = append(out, delta{Node: s.self, Addr: own.addr, Inc: inc, Version: e.Version, ID: id, Endpoint: e.Endpoint.clone()})
	}
	return out
}

// announcement returns the delta that announces this node's incarnation.
func (s *state) announcement() delta {
	return delta{Node: s.self, Addr: s.own().addr, Inc: s.own().inc}
}

// leaving returns the delta that announces this node is leaving.
func (s *state) leaving() delta {
	return delta{Node: s.self, Addr: s.own().addr, Inc: s.own().inc, Deleted: true}
}

// addrOf returns where node gossips, if known.
func (s *state) addrOf(node string) (netip.AddrPort, bool) {
	if r, ok := s.nodes[node]; ok && r.addr.IsValid() {
		return r.addr, true
	}
	return netip.AddrPort{}, false
}

// endpoints returns the endpoints of network networkID, sorted.
func (s *state) endpoints(networkID string) []Endpoint {
	return s.collect(func(e Endpoint) bool { return e.NetworkID == networkID })
}

// all returns every endpoint of every network, sorted.
func (s *state) all() []Endpoint {
	return s.collect(func(Endpoint) bool { return true })
}

// collect returns copies of the live endpoints keep accepts, sorted.
func (s *state) collect(keep func(Endpoint) bool) []Endpoint {
	var out []Endpoint
	for _, r := range s.nodes {
		for _, e := range r.entries {
			if !e.Deleted && keep(e.Endpoint) {
				out = append(out, e.Endpoint.clone())
			}
		}
	}
	slices.SortFunc(out, compareEndpoints)
	return out
}

// liveCount returns the number of live endpoints of node.
func (s *state) liveCount(node string) int {
	if r, ok := s.nodes[node]; ok {
		return r.live()
	}
	return 0
}
