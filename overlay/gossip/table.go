package gossip

import (
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Table is this host's view of the endpoint table shared by all agents:
// the endpoints it publishes and those every other live host publishes.
// All methods are safe for concurrent use.
type Table struct {
	cfg   Config
	log   *slog.Logger
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue
	// members counts the alive members, this node included, for the
	// queue's retransmit limit. It is kept from memberlist's events so
	// that the queue never calls into memberlist (whose locks are held
	// while it calls our event delegate, which takes mu).
	members atomic.Int32

	// keyring is memberlist's, shared with its send and receive paths;
	// keysMu serialises our changes to it (see SetKeys).
	keyring *memberlist.Keyring
	keysMu  sync.Mutex

	// life serialises Leave and Shutdown.
	life sync.Mutex

	mu      sync.RWMutex
	st      *state
	alive   map[string]string     // peer name → "ip:port", from memberlist's events
	failed  map[string]failedPeer // peers that failed (not left), to reconnect
	leaving map[string]time.Time  // peers that announced they are leaving
	orphans map[string]orphan     // nodes with a record but not alive
	subs    map[int]chan struct{}
	nextSub int
	left    bool
	closed  bool

	joinCh chan string // peers to push-pull with (reconnects, re-fetches)
	stop   chan struct{}
	wg     sync.WaitGroup
}

// failedPeer is a peer memberlist declared dead.
type failedPeer struct {
	addr  string
	since time.Time
}

// Start listens on cfg.BindAddr and returns a table holding no endpoint
// but this node's (none yet) and no peer: call Join with the addresses of
// a few other agents. Everything it sends is encrypted with cfg.Keys[0];
// it accepts only what decrypts under one of cfg.Keys. It errs with
// ErrConfig for a config it cannot use, ErrInvalidKeys for unusable
// cfg.Keys, and ErrBind when memberlist cannot listen.
func Start(cfg Config) (*Table, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	kr, err := newKeyring(cfg.Keys)
	if err != nil {
		return nil, err
	}
	nkeys, primary := len(cfg.Keys), keyID(cfg.Keys[0])
	cfg.Keys = nil // the keyring is the one current copy (SetKeys)
	t := &Table{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "gossip", "node", cfg.NodeName),
		keyring: kr,
		st:      newState(cfg.NodeName, cfg.Incarnation, cfg.BindAddr),
		alive:   map[string]string{},
		failed:  map[string]failedPeer{},
		leaving: map[string]time.Time{},
		orphans: map[string]orphan{},
		subs:    map[int]chan struct{}{},
		joinCh:  make(chan string, 64),
		stop:    make(chan struct{}),
	}
	t.members.Store(1)
	t.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(t.members.Load()) },
		RetransmitMult: cfg.RetransmitMult,
	}
	mc := cfg.memberlistConfig(delegate{t}, events{t}, kr)
	if cfg.wrapTransport != nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: mc.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("%w %s: %v: check that the address is assigned to this host and the port is free", ErrBind, cfg.BindAddr, err)
		}
		mc.Transport = cfg.wrapTransport(nt)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v: check that the address is assigned to this host and the port is free", ErrBind, cfg.BindAddr, err)
	}
	t.ml = ml
	// Tell peers which incarnation this run is, so that entries of a
	// previous run vanish even before this one publishes anything.
	t.mu.Lock()
	t.broadcastLocked(t.st.announcement())
	t.mu.Unlock()
	t.wg.Add(2)
	go t.maintain()
	go t.joiner()
	t.log.Info("gossip started", "bind", cfg.BindAddr, "incarnation", cfg.Incarnation, "keys", nkeys, "primary", primary)
	return t, nil
}

// Join contacts the given peers ("ip" or "ip:port", the port defaulting
// to this table's own) and exchanges full tables with each. It returns the
// number of peers contacted; it errs with ErrInvalidPeer for an address
// that is not an IP literal (nothing is contacted then), with ErrJoin when
// no peer answered, and with ErrClosed after Leave or Shutdown. Joining
// peers already in the cluster is harmless.
func (t *Table) Join(peers []string) (int, error) {
	addrs := make([]string, 0, len(peers))
	for _, p := range peers {
		ap, err := t.parsePeer(p)
		if err != nil {
			return 0, err
		}
		addrs = append(addrs, ap.String())
	}
	if len(addrs) == 0 {
		return 0, fmt.Errorf("%w: no peer given", ErrJoin)
	}
	if t.isClosed() {
		return 0, ErrClosed
	}
	n, err := t.ml.Join(addrs)
	if n == 0 {
		return 0, fmt.Errorf("%w (tried %v): %v", ErrJoin, addrs, err)
	}
	return n, nil
}

// parsePeer parses "ip" or "ip:port" (IPv6 as "[ip]:port").
func (t *Table) parsePeer(p string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(p); err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, fmt.Errorf("%w %q: port 0", ErrInvalidPeer, p)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := netip.ParseAddr(p)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w %q: give an IP address, optionally with a port; host names are not resolved", ErrInvalidPeer, p)
	}
	return netip.AddrPortFrom(a.Unmap(), t.cfg.BindAddr.Port()), nil
}

// Publish adds this node's endpoint ep, or replaces the one with the same
// ID, and gossips the change. Publishing an endpoint unchanged is a no-op.
// ep.Node is set to this node's name. It errs with ErrInvalidEndpoint or
// ErrEndpointTooLarge (nothing changes then) and ErrClosed.
func (t *Table) Publish(ep Endpoint) error {
	norm, err := t.prepare(ep)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.left {
		return ErrClosed
	}
	if d, ok := t.st.publish(norm); ok {
		t.broadcastLocked(d)
		t.notifyLocked()
	}
	return nil
}

// Withdraw removes this node's endpoint id and gossips the removal. The
// removal also goes straight to every member (one UDP packet each),
// since a task is about to stop: peers must stop sending it connections
// within milliseconds, not at the next gossip round. Withdrawing an ID
// that is not published is a no-op. It errs with ErrClosed only.
func (t *Table) Withdraw(id string) error {
	t.mu.Lock()
	if t.closed || t.left {
		t.mu.Unlock()
		return ErrClosed
	}
	d, ok := t.st.withdraw(id)
	if ok {
		t.broadcastLocked(d)
		t.notifyLocked()
	}
	t.mu.Unlock()
	if ok {
		// Not under mu: memberlist takes its node lock and calls the
		// delegate. The queued broadcast still covers lost packets.
		msg := encodeDelta(d)
		for _, n := range t.ml.Members() {
			if n.Name != t.cfg.NodeName {
				if err := t.ml.SendBestEffort(n, msg); err != nil {
					t.log.Debug("withdrawal not sent directly", "peer", n.Name, "err", err)
				}
			}
		}
	}
	return nil
}

// Replace makes this node's published endpoints exactly eps: it withdraws
// the others and publishes those that are new or changed, so an agent can
// call it with what it runs after every change or restart. It errs with
// ErrInvalidEndpoint (also for two endpoints with the same ID) or
// ErrEndpointTooLarge before changing anything, and with ErrClosed.
func (t *Table) Replace(eps []Endpoint) error {
	want := make(map[string]Endpoint, len(eps))
	for _, ep := range eps {
		norm, err := t.prepare(ep)
		if err != nil {
			return err
		}
		if _, dup := want[norm.ID]; dup {
			return fmt.Errorf("%w %q: listed twice", ErrInvalidEndpoint, norm.ID)
		}
		want[norm.ID] = norm
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.left {
		return ErrClosed
	}
	changed := false
	for _, ep := range t.st.ownEndpoints() {
		if _, keep := want[ep.ID]; keep {
			continue
		}
		if d, ok := t.st.withdraw(ep.ID); ok {
			t.broadcastLocked(d)
			changed = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if d, ok := t.st.publish(want[id]); ok {
			t.broadcastLocked(d)
			changed = true
		}
	}
	if changed {
		t.notifyLocked()
	}
	return nil
}

// prepare normalises ep as this node's and checks that its delta fits in
// a gossip packet.
func (t *Table) prepare(ep Endpoint) (Endpoint, error) {
	norm, err := normalize(ep)
	if err != nil {
		return Endpoint{}, err
	}
	norm.Node = t.cfg.NodeName
	worst := delta{Node: norm.Node, Addr: t.cfg.BindAddr, Inc: math.MaxUint64, Version: math.MaxUint64, ID: norm.ID, Endpoint: norm}
	if n := len(encodeDelta(worst)); n > maxDeltaBytes {
		return Endpoint{}, fmt.Errorf("%w: endpoint %q encodes to %d bytes, the limit is %d: shorten or drop aliases and names",
			ErrEndpointTooLarge, norm.ID, n, maxDeltaBytes)
	}
	return norm, nil
}

// Endpoints returns the endpoints of network networkID that the table
// holds, this node's included, sorted by ID then node; a snapshot the
// caller owns. Nil when there are none.
func (t *Table) Endpoints(networkID string) []Endpoint {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.st.endpoints(networkID)
}

// All returns every endpoint of every network the table holds, sorted by
// ID then node; a snapshot the caller owns.
func (t *Table) All() []Endpoint {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.st.all()
}

// Members returns the names of the nodes this table considers alive,
// itself included, sorted.
func (t *Table) Members() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := append(slices.Collect(maps.Keys(t.alive)), t.cfg.NodeName)
	slices.Sort(out)
	return out
}

// Subscribe returns a channel that receives a signal after every change
// of the table's contents (an endpoint added, changed or removed, here or
// by a peer), and a function that cancels the subscription and closes the
// channel. Signals coalesce: a subscriber that is busy gets one signal for
// many changes, so it should re-read Endpoints after each. Shutdown closes
// every channel; after Shutdown the channel returned is already closed.
func (t *Table) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		close(ch)
		return ch, func() {}
	}
	id := t.nextSub
	t.nextSub++
	t.subs[id] = ch
	return ch, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if c, ok := t.subs[id]; ok {
			delete(t.subs, id)
			close(c)
		}
	}
}

// Leave tells the peers that this node is leaving, so that they drop its
// entries at once instead of after failure detection (and do not try to
// reconnect to it), and waits up to timeout for memberlist's leave message
// to go out. The table stops accepting changes; call Shutdown next. Leave
// twice is a no-op. It errs with ErrLeaveTimeout when the message was not
// sent in time (peers then notice by failure detection) and with
// ErrClosed after Shutdown.
func (t *Table) Leave(timeout time.Duration) error {
	t.life.Lock()
	defer t.life.Unlock()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	if t.left {
		t.mu.Unlock()
		return nil
	}
	t.left = true
	bye := t.st.leaving()
	t.broadcastLocked(bye)
	t.mu.Unlock()
	// Not under mu: memberlist takes its node lock and calls the event
	// delegate. The announcement also goes straight to every member, one
	// UDP packet each, since the queue may not send it before Shutdown.
	msg := encodeDelta(bye)
	for _, n := range t.ml.Members() {
		if n.Name != t.cfg.NodeName {
			if err := t.ml.SendBestEffort(n, msg); err != nil {
				t.log.Debug("leave announcement not sent", "peer", n.Name, "err", err)
			}
		}
	}
	if err := t.ml.Leave(timeout); err != nil {
		return fmt.Errorf("%w (waited %v): %v", ErrLeaveTimeout, timeout, err)
	}
	t.log.Info("gossip left")
	return nil
}

// Shutdown stops gossiping and closes the sockets and every subscriber
// channel, without telling the peers (they notice by failure detection;
// call Leave first for a graceful exit). The table keeps its last
// contents for reading. Shutdown twice is a no-op.
func (t *Table) Shutdown() error {
	t.life.Lock()
	defer t.life.Unlock()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	for id, ch := range t.subs {
		delete(t.subs, id)
		close(ch)
	}
	t.mu.Unlock()
	close(t.stop)
	err := t.ml.Shutdown()
	t.wg.Wait()
	if err != nil {
		return fmt.Errorf("gossip: shut down memberlist on %s: %w", t.cfg.BindAddr, err)
	}
	t.log.Info("gossip shut down")
	return nil
}

// isClosed reports whether the table left or was shut down.
func (t *Table) isClosed() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.closed || t.left
}

// notifyLocked signals every subscriber without blocking; mu is held.
func (t *Table) notifyLocked() {
	for _, ch := range t.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// broadcastLocked queues a delta for gossip; mu is held.
func (t *Table) broadcastLocked(d delta) {
	t.queue.QueueBroadcast(newBroadcast(d.Node, d.ID, encodeDelta(d)))
}

// reincarnateLocked moves this node above incarnation seen, which gossip
// claimed for it, and re-announces its entries; mu is held.
func (t *Table) reincarnateLocked(seen uint64) {
	inc := max(uint64(time.Now().UnixNano()), seen+1, t.st.own().inc+1)
	t.log.Warn("gossip carries a newer state of this node than it has (a previous run with a later incarnation, or another process using this node name); moving to a higher incarnation",
		"seen", seen, "incarnation", inc)
	for _, d := range t.st.reincarnate(inc) {
		t.broadcastLocked(d)
	}
}
