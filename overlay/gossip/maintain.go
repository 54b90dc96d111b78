package gossip

import (
	"math/rand/v2"
	"time"
)

// maintain runs the table's level-triggered housekeeping until Shutdown:
// memberlist's events are the fast path, this loop repairs what they miss.
//
//   - Orphans: a node whose entries the table holds but that memberlist
//     does not list as alive (its alive message lost or late, or its
//     entries relayed by a peer that missed its death) is contacted at its
//     gossip address after orphanGrace; if memberlist still does not list
//     it orphanGrace later, its entries are dropped. So a gossip miss of
//     memberlist's heals within seconds instead of a push-pull interval,
//     and never costs a live host its entries.
//   - Departures older than departureTTL are forgotten.
//   - Every ReconnectInterval, one random failed peer is joined again, so
//     that a healed partition or a host back on its old address rejoins
//     without anyone calling Join. (memberlist itself stops talking to a
//     dead peer after GossipToTheDeadTime.)
func (t *Table) maintain() {
	defer t.wg.Done()
	tick := time.NewTicker(min(maintainInterval, t.cfg.ReconnectInterval))
	defer tick.Stop()
	nextReconnect := time.Now().Add(t.cfg.ReconnectInterval)
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			t.sweep(now)
			if now.Before(nextReconnect) {
				continue
			}
			nextReconnect = now.Add(t.cfg.ReconnectInterval)
			if addr := t.pickReconnect(); addr != "" {
				t.requestJoin(addr)
			}
		}
	}
}

// orphan is a node the table holds a record of but memberlist does not
// list as alive.
type orphan struct {
	since     time.Time // when first seen orphaned, or contacted
	contacted bool      // a join to its address was requested
}

// sweep handles orphaned nodes and forgets old departures and failures.
func (t *Table) sweep(now time.Time) {
	var contact []string
	t.mu.Lock()
	defer func() {
		t.mu.Unlock()
		for _, addr := range contact {
			t.requestJoin(addr)
		}
	}()
	if t.closed {
		return
	}
	changed := false
	present := map[string]bool{}
	for _, name := range t.st.nodeNames() {
		present[name] = true
		if name == t.cfg.NodeName {
			continue
		}
		if _, ok := t.alive[name]; ok {
			delete(t.orphans, name)
			continue
		}
		o, ok := t.orphans[name]
		if !ok {
			t.orphans[name] = orphan{since: now}
			continue
		}
		if now.Sub(o.since) < orphanGrace {
			continue
		}
		if addr, ok := t.st.addrOf(name); ok && !o.contacted && !t.left {
			t.orphans[name] = orphan{since: now, contacted: true}
			contact = append(contact, addr.String())
			t.log.Info("contacting a node whose entries are held but that is not a member", "peer", name, "addr", addr)
			continue
		}
		removed := t.st.liveCount(name)
		if t.st.nodeLeft(name, 0, now) {
			changed = true
		}
		delete(t.orphans, name)
		t.log.Info("dropping entries of a node that is not a live member", "peer", name, "endpoints_removed", removed)
	}
	for name := range t.orphans {
		if !present[name] {
			delete(t.orphans, name)
		}
	}
	t.st.reapDepartures(now.Add(-departureTTL))
	for name, f := range t.failed {
		if now.Sub(f.since) > t.cfg.ReconnectTimeout {
			delete(t.failed, name)
		}
	}
	for name, at := range t.leaving {
		if now.Sub(at) > departureTTL {
			delete(t.leaving, name)
		}
	}
	if changed {
		t.notifyLocked()
	}
}

// pickReconnect returns the address of a random failed peer, or "".
func (t *Table) pickReconnect() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed || t.left || len(t.failed) == 0 {
		return ""
	}
	i := rand.IntN(len(t.failed))
	for _, f := range t.failed {
		if i == 0 {
			return f.addr
		}
		i--
	}
	return ""
}

// requestJoin asks the joiner to push-pull with addr; dropped when the
// joiner is behind (the next reconnect or push-pull repairs).
func (t *Table) requestJoin(addr string) {
	select {
	case t.joinCh <- addr:
	default:
		t.log.Debug("join queue full, dropping", "addr", addr)
	}
}

// joiner performs requested joins one at a time until Shutdown: a join to
// an unreachable peer blocks for up to TCPTimeout, which must not stall
// memberlist's callbacks or the sweep.
func (t *Table) joiner() {
	defer t.wg.Done()
	for {
		select {
		case <-t.stop:
			return
		case addr := <-t.joinCh:
			if t.isClosed() {
				continue
			}
			if _, err := t.ml.Join([]string{addr}); err != nil {
				t.log.Debug("rejoin failed", "addr", addr, "err", err)
			} else {
				t.log.Debug("rejoined", "addr", addr)
			}
		}
	}
}
