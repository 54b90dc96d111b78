package raft

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/shoalhq/shoal/manager/store"
)

// Config configures a Node.
type Config struct {
	// NodeID is the Raft server ID: the Shoal node ID.
	NodeID string
	// Addr is the address other managers reach this one at.
	Addr string
	// DataDir holds the bbolt log and stable store and the snapshots. Empty
	// keeps everything in memory (tests only: nothing survives a restart).
	DataDir string
	// Store is the state machine.
	Store *store.MemoryStore
	// StreamLayer carries Raft traffic over TCP (see Mux). Exactly one of
	// StreamLayer and Transport is set.
	StreamLayer hraft.StreamLayer
	// Transport is a ready transport (for example in-memory in tests).
	Transport hraft.Transport
	// Forwarder reaches the leader from a follower. Nil means a follower
	// refuses writes with ErrNotLeader.
	Forwarder Forwarder
	// Timing: heartbeat and election timeouts, and the leader lease; zero
	// means 400 ms, 400 ms and 200 ms, which elect a new leader on loopback
	// within about two seconds of a leader's death.
	HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot (0 =
	// 8192); SnapshotInterval how often that is checked (0 = 30 s);
	// TrailingLogs how many entries are kept behind a snapshot (0 = 4096).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// NoSync turns fsync off in the log store (benchmarks of the unsafe
	// mode only; never in production).
	NoSync bool
	// Logger receives the node's log lines; nil discards them.
	Logger *slog.Logger
}

// Node is one manager's Raft server plus its leadership tracking.
type Node struct {
	cfg       Config
	raft      *hraft.Raft
	trans     hraft.Transport
	logStore  *raftboltdb.BoltStore
	snaps     hraft.SnapshotStore
	log       *slog.Logger
	notifyCh  chan bool
	observeCh chan hraft.Observation
	observer  *hraft.Observer
	proposeCh chan *proposal

	mu          sync.Mutex
	leaderReady bool          // leader and barrier done for this term
	readyCh     chan struct{} // closed when leaderReady becomes true
	unreachable map[hraft.ServerID]time.Time
	subs        []chan bool
	stopped     bool
	done        chan struct{}
	wg          sync.WaitGroup
}

// HasState reports whether dir holds Raft state from an earlier run.
func HasState(dir string) (bool, error) {
	if dir == "" {
		return false, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err == nil {
		return true, nil
	} else if !os.IsNotExist(err) {
		return false, err
	}
	return false, nil
}

func (c *Config) raftConfig() *hraft.Config {
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = orDuration(c.HeartbeatTimeout, 400*time.Millisecond)
	rc.ElectionTimeout = orDuration(c.ElectionTimeout, 400*time.Millisecond)
	rc.LeaderLeaseTimeout = orDuration(c.LeaderLeaseTimeout, 200*time.Millisecond)
	rc.SnapshotThreshold = c.SnapshotThreshold
	if rc.SnapshotThreshold == 0 {
		rc.SnapshotThreshold = 8192
	}
	rc.SnapshotInterval = orDuration(c.SnapshotInterval, 30*time.Second)
	rc.TrailingLogs = c.TrailingLogs
	if rc.TrailingLogs == 0 {
		rc.TrailingLogs = 4096
	}
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: logWriter(c.Logger)})
	return rc
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// logWriter sends hashicorp/raft's own warnings to our logger.
func logWriter(l *slog.Logger) io.Writer {
	if l == nil {
		return io.Discard
	}
	return slogWriter{l}
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn(string(trimNewline(p)), "component", "raft")
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

// stores opens the log, stable and snapshot stores.
func (c *Config) stores() (hraft.LogStore, hraft.StableStore, *raftboltdb.BoltStore, hraft.SnapshotStore, error) {
	if c.DataDir == "" {
		inm := hraft.NewInmemStore()
		return inm, inm, nil, hraft.NewInmemSnapshotStore(), nil
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("create raft dir: %w", err)
	}
	bs, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(c.DataDir, "raft.db"), NoSync: c.NoSync})
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("open raft log %s: %w", filepath.Join(c.DataDir, "raft.db"), err)
	}
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(c.DataDir, 2, hclog.New(&hclog.LoggerOptions{Name: "snapshot", Level: hclog.Warn, Output: logWriter(c.Logger)}))
	if err != nil {
		bs.Close()
		return nil, nil, nil, nil, fmt.Errorf("open raft snapshots in %s: %w", c.DataDir, err)
	}
	return bs, bs, bs, snaps, nil
}

func (c *Config) transport() (hraft.Transport, error) {
	if c.Transport != nil {
		return c.Transport, nil
	}
	if c.StreamLayer == nil {
		return nil, fmt.Errorf("raft config: set StreamLayer or Transport")
	}
	return hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream:  c.StreamLayer,
		MaxPool: 8,
		Timeout: 5 * time.Second,
		Logger:  hclog.New(&hclog.LoggerOptions{Name: "raft-net", Level: hclog.Error, Output: logWriter(c.Logger)}),
	}), nil
}

// New starts a Raft server with the state found in cfg.DataDir. A node with
// no state waits to be bootstrapped (Bootstrap) or added by a leader.
func New(cfg Config) (*Node, error) {
	return start(cfg, nil)
}

// ForceNewCluster starts a Raft server from its existing state as the only
// member of a new configuration, keeping every committed entry. It is the
// recovery for a quorum that is lost for good; other managers must then
// join again.
func ForceNewCluster(cfg Config) (*Node, error) {
	recovery := &hraft.Configuration{Servers: []hraft.Server{{
		Suffrage: hraft.Voter, ID: hraft.ServerID(cfg.NodeID), Address: hraft.ServerAddress(cfg.Addr),
	}}}
	return start(cfg, recovery)
}

func start(cfg Config, recovery *hraft.Configuration) (*Node, error) {
	if cfg.Store == nil || cfg.NodeID == "" || cfg.Addr == "" {
		return nil, fmt.Errorf("raft config: Store, NodeID and Addr are required")
	}
	logs, stable, bs, snaps, err := cfg.stores()
	if err != nil {
		return nil, err
	}
	trans, err := cfg.transport()
	if err != nil {
		if bs != nil {
			bs.Close()
		}
		return nil, err
	}
	rc := cfg.raftConfig()
	n := &Node{
		cfg:         cfg,
		trans:       trans,
		logStore:    bs,
		snaps:       snaps,
		log:         cfg.Logger,
		notifyCh:    make(chan bool, 16),
		observeCh:   make(chan hraft.Observation, 64),
		readyCh:     make(chan struct{}),
		unreachable: map[hraft.ServerID]time.Time{},
		done:        make(chan struct{}),
		proposeCh:   make(chan *proposal, maxBatchCommands),
	}
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	rc.NotifyCh = n.notifyCh
	f := &fsm{store: cfg.Store}
	if recovery != nil {
		if err := hraft.RecoverCluster(rc, f, logs, stable, snaps, trans, *recovery); err != nil {
			n.closeStores()
			return nil, fmt.Errorf("force new cluster: %w", err)
		}
		// RecoverCluster wrote a snapshot of everything committed; NewRaft
		// restores the store from it below.
	}
	r, err := hraft.NewRaft(rc, f, logs, stable, snaps, trans)
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	n.observer = hraft.NewObserver(n.observeCh, false, func(o *hraft.Observation) bool {
		switch o.Data.(type) {
		case hraft.FailedHeartbeatObservation, hraft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(n.observer)
	n.wg.Add(3)
	go n.watchLeadership()
	go n.watchHeartbeats()
	go n.runBatcher()
	return n, nil
}

func (n *Node) closeStores() {
	if n.logStore != nil {
		n.logStore.Close()
	}
	if c, ok := n.trans.(io.Closer); ok {
		c.Close()
	}
}

// Bootstrap makes this node the single voter of a new cluster. It fails if
// the node already has state.
func (n *Node) Bootstrap() error {
	f := n.raft.BootstrapCluster(hraft.Configuration{Servers: []hraft.Server{{
		Suffrage: hraft.Voter, ID: hraft.ServerID(n.cfg.NodeID), Address: n.trans.LocalAddr(),
	}}})
	if err := f.Error(); err != nil {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

// NodeID returns this node's Raft ID.
func (n *Node) NodeID() string { return n.cfg.NodeID }

// Addr returns the address other managers reach this node at.
func (n *Node) Addr() string { return string(n.trans.LocalAddr()) }

// Store returns the state machine.
func (n *Node) Store() *store.MemoryStore { return n.cfg.Store }

// Raw returns the hashicorp/raft server, for tests and stats.
func (n *Node) Raw() *hraft.Raft { return n.raft }

// Leader returns the leader's ID and address, empty when none is known.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// IsLeader reports whether this node is the leader and has caught its
// state machine up for its term (so its reads are current).
func (n *Node) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leaderReady
}

// SubscribeLeadership returns a channel that receives true when this node
// becomes a ready leader and false when it stops being leader. The channel
// is buffered; a slow reader misses intermediate flips but always gets the
// latest one eventually. cancel ends the subscription.
func (n *Node) SubscribeLeadership() (<-chan bool, func()) {
	ch := make(chan bool, 8)
	n.mu.Lock()
	n.subs = append(n.subs, ch)
	if n.leaderReady {
		ch <- true
	}
	n.mu.Unlock()
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		for i, c := range n.subs {
			if c == ch {
				n.subs = append(n.subs[:i], n.subs[i+1:]...)
				break
			}
		}
	}
}

func (n *Node) publish(leader bool) {
	for _, ch := range n.subs {
		select {
		case ch <- leader:
		default:
			// Drop the oldest so the latest value is delivered.
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- leader:
			default:
			}
		}
	}
}

// watchLeadership tracks leadership: a new leader first applies a
// barrier so its store holds every committed entry, then declares itself
// ready.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case isLeader := <-n.notifyCh:
			if !isLeader {
				n.setReady(false)
				continue
			}
			for {
				err := n.raft.Barrier(5 * time.Second).Error()
				if err == nil {
					break
				}
				if n.raft.State() != hraft.Leader {
					break
				}
				select {
				case <-n.done:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
			if n.raft.State() == hraft.Leader {
				n.setReady(true)
				n.log.Info("became raft leader", "node", n.cfg.NodeID)
			}
		}
	}
}

func (n *Node) setReady(ready bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.leaderReady == ready {
		return
	}
	n.leaderReady = ready
	if ready {
		close(n.readyCh)
	} else {
		n.readyCh = make(chan struct{})
	}
	n.publish(ready)
}

// watchHeartbeats records which followers the leader cannot reach.
func (n *Node) watchHeartbeats() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case o := <-n.observeCh:
			n.mu.Lock()
			switch d := o.Data.(type) {
			case hraft.FailedHeartbeatObservation:
				n.unreachable[d.PeerID] = d.LastContact
			case hraft.ResumedHeartbeatObservation:
				delete(n.unreachable, d.PeerID)
			}
			n.mu.Unlock()
		}
	}
}

// Shutdown stops the node and closes its stores. Safe to call twice.
func (n *Node) Shutdown() error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	n.mu.Unlock()
	err := n.raft.Shutdown().Error()
	n.raft.DeregisterObserver(n.observer)
	close(n.done)
	n.wg.Wait()
	n.setReady(false)
	n.closeStores()
	return err
}
