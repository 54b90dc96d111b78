package gossip

import (
	"bytes"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate is the table's memberlist.Delegate: deltas go out through the
// broadcast queue and come in through NotifyMsg; full tables are exchanged
// in push-pull through LocalState and MergeRemoteState. memberlist calls
// it from its own goroutines.
type delegate struct{ t *Table }

var _ memberlist.Delegate = delegate{}

// NodeMeta returns no metadata: everything travels as deltas.
func (delegate) NodeMeta(int) []byte { return nil }

// NotifyMsg merges a delta from a peer and relays it when it was news.
func (d delegate) NotifyMsg(b []byte) {
	t := d.t
	kind, err := messageKind(b)
	if err == nil && kind != kindDelta {
		t.log.Warn("dropping gossip message of unknown kind", "kind", kind)
		return
	}
	msg, err := decodeDelta(b)
	if err != nil {
		t.log.Warn("dropping gossip message", "err", err)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	now := time.Now()
	res := t.st.applyDelta(msg, now)
	if msg.isLeaving() && res.News {
		// It is leaving, not failing: no reconnects to it.
		t.leaving[msg.Node] = now
		delete(t.failed, msg.Node)
		t.log.Info("peer leaving", "peer", msg.Node)
	}
	if res.SelfConflict {
		t.reincarnateLocked(msg.Inc)
	}
	if res.News {
		// memberlist may reuse b after we return.
		t.queue.QueueBroadcast(newBroadcast(msg.Node, msg.ID, bytes.Clone(b)))
	}
	if res.Changed {
		t.notifyLocked()
	}
}

// GetBroadcasts hands memberlist the deltas to piggyback on its gossip.
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.t.queue.GetBroadcasts(overhead, limit)
}

// LocalState returns the whole table for a push-pull exchange.
func (d delegate) LocalState(bool) []byte {
	d.t.mu.RLock()
	defer d.t.mu.RUnlock()
	return encodeState(d.t.st.snapshot())
}

// MergeRemoteState merges a peer's whole table from a push-pull exchange.
func (d delegate) MergeRemoteState(b []byte, join bool) {
	t := d.t
	nodes, err := decodeState(b)
	if err != nil {
		t.log.Warn("dropping a peer's table from push-pull", "err", err, "join", join)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	changed, conflict := false, uint64(0)
	for _, sn := range nodes {
		res := t.st.mergeSnapshot(sn)
		changed = changed || res.Changed
		if res.SelfConflict {
			conflict = max(conflict, sn.Inc)
		}
	}
	if conflict != 0 {
		t.reincarnateLocked(conflict)
	}
	if changed {
		t.notifyLocked()
	}
}

// events is the table's memberlist.EventDelegate. memberlist calls it
// with its node lock held: it must not call back into memberlist.
type events struct{ t *Table }

var _ memberlist.EventDelegate = events{}

// NotifyJoin records a peer as alive. A peer that had departed (a false
// suspicion, a healed partition) is asked for its table, since every
// replica dropped its entries.
func (e events) NotifyJoin(n *memberlist.Node) {
	t := e.t
	if n.Name == t.cfg.NodeName {
		return
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	addr := n.Address()
	t.alive[n.Name] = addr
	delete(t.failed, n.Name)
	delete(t.orphans, n.Name)
	delete(t.leaving, n.Name)
	t.members.Store(int32(len(t.alive) + 1))
	refetch := t.st.nodeAlive(n.Name)
	t.mu.Unlock()
	t.log.Info("peer alive", "peer", n.Name, "addr", addr, "refetch", refetch)
	if refetch {
		t.requestJoin(addr)
	}
}

// NotifyLeave drops every entry of a peer that failed or left; a failed
// peer is retried (see maintain). A peer that announced its leave has
// usually been dropped already.
func (e events) NotifyLeave(n *memberlist.Node) {
	t := e.t
	if n.Name == t.cfg.NodeName {
		return
	}
	now := time.Now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	delete(t.alive, n.Name)
	delete(t.orphans, n.Name)
	t.members.Store(int32(len(t.alive) + 1))
	removed := t.st.liveCount(n.Name)
	if t.st.nodeLeft(n.Name, 0, now) {
		t.notifyLocked()
	}
	// memberlist does not say whether the peer failed or left (the Node
	// it passes carries no state); the peer's leave announcement does.
	how := "failed"
	if _, ok := t.leaving[n.Name]; ok {
		how = "left"
		delete(t.leaving, n.Name)
	} else {
		t.failed[n.Name] = failedPeer{addr: n.Address(), since: now}
	}
	t.mu.Unlock()
	t.log.Info("peer "+how, "peer", n.Name, "addr", n.Address(), "endpoints_removed", removed)
}

// NotifyUpdate records a peer's new address.
func (e events) NotifyUpdate(n *memberlist.Node) {
	t := e.t
	if n.Name == t.cfg.NodeName {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.alive[n.Name]; ok {
		t.alive[n.Name] = n.Address()
	}
}

// broadcast is one encoded delta in memberlist's transmit queue. A newer
// delta of the same node and endpoint ID replaces it (the queue only ever
// receives a delta that is the newest known for its ID).
type broadcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func newBroadcast(node, id string, msg []byte) *broadcast {
	return &broadcast{name: node + "\x00" + id, msg: msg}
}

// Name identifies the (node, endpoint ID) the delta is about.
func (b *broadcast) Name() string { return b.name }

// Invalidates reports whether b replaces other: the same node and ID.
func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(memberlist.NamedBroadcast)
	return ok && o.Name() == b.name
}

// Message returns the encoded delta.
func (b *broadcast) Message() []byte { return b.msg }

// Finished is a no-op: nothing waits for a delta to be sent.
func (b *broadcast) Finished() {}
