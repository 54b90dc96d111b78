// Package manager runs one manager: the replicated store (Raft), the
// user API, the membership service that admits joining nodes, the
// dispatcher that keeps agents' heartbeats, and the leader-only
// reconcilers. A daemon embeds one Manager while its node has the manager
// role and exposes its services through Gate, so a node can be promoted
// or demoted while its gRPC server keeps running.
package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/shoalhq/shoal/manager/allocator"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/manager/dispatcher"
	"github.com/shoalhq/shoal/manager/orchestrator"
	"github.com/shoalhq/shoal/manager/placement"
	"github.com/shoalhq/shoal/manager/raft"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// Config configures a Manager.
type Config struct {
	// NodeID is this node's ID (also its Raft server ID).
	NodeID string
	// Addr is the address other nodes reach this manager at.
	Addr string
	// DataDir is the node's data directory; Raft state lives in DataDir/raft.
	DataDir string
	// StreamLayer carries Raft over the shared port; Transport replaces it
	// in tests.
	StreamLayer hraft.StreamLayer
	Transport   hraft.Transport
	// Dial reaches other managers' APIs (over mutual TLS, accepting only
	// managers); DialNode reaches any node's (for task logs); nil means
	// Dial.
	Dial     DialFunc
	DialNode DialFunc
	// ClusterID and RootCA make the cluster when this manager bootstraps
	// one: this node's certificate was issued under them. CertExpiry, if
	// set, is the new cluster's certificate lifetime (nanoseconds).
	ClusterID  string
	RootCA     *ca.RootCA
	CertExpiry *int64
	// GossipKeyInterval is how often the leader rotates the gossip key;
	// zero means DefaultGossipKeyInterval.
	GossipKeyInterval time.Duration
	// CutNode closes every open connection of a node (its streams end);
	// called for each node removed from the cluster. Nil: none is cut.
	CutNode func(nodeID string) int
	// Description is this node's own description, used when it creates
	// the cluster.
	Description *api.NodeDescription
	// Availability is this node's availability when it creates the cluster.
	Availability api.NodeAvailability
	// HeartbeatPeriod overrides the cluster's (tests).
	HeartbeatPeriod time.Duration
	// DefaultAddressPool and SubnetSize, when set, are written to the
	// Cluster this manager creates (Bootstrap): the CIDRs overlay subnets
	// are carved from, and their prefix length.
	DefaultAddressPool []string
	SubnetSize         uint32
	// Raft tuning; zero values take the raft package's defaults.
	RaftHeartbeatTimeout, RaftElectionTimeout, RaftLeaderLease time.Duration
	SnapshotThreshold                                          uint64
	// ForceNewCluster restarts from existing state as a one-manager cluster.
	ForceNewCluster bool
	// ResolveImages makes service writes resolve image tags to digests in
	// their registries (so every replica runs the same image);
	// InsecureRegistries are asked over plain HTTP.
	ResolveImages      bool
	InsecureRegistries []string
	Logger             *slog.Logger
}

// Manager is one running manager.
type Manager struct {
	cfg        Config
	log        *slog.Logger
	store      *store.MemoryStore
	raft       *raft.Node
	peers      *peerConns // managers
	nodes      *peerConns // any node (task logs)
	control    *controlapi.Server
	dispatcher *dispatcher.Dispatcher

	stopOnce sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New opens the manager's state and starts its Raft server. A manager with
// no Raft state waits to be bootstrapped (Bootstrap) or added by the
// leader after a join.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.DialNode == nil {
		cfg.DialNode = cfg.Dial
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, store: store.New(nil), peers: newPeerConns(cfg.Dial), nodes: newPeerConns(cfg.DialNode)}
	rc := raft.Config{
		NodeID:             cfg.NodeID,
		Addr:               cfg.Addr,
		DataDir:            filepath.Join(cfg.DataDir, "raft"),
		Store:              m.store,
		StreamLayer:        cfg.StreamLayer,
		Transport:          cfg.Transport,
		Forwarder:          forwarder{m.peers},
		HeartbeatTimeout:   cfg.RaftHeartbeatTimeout,
		ElectionTimeout:    cfg.RaftElectionTimeout,
		LeaderLeaseTimeout: cfg.RaftLeaderLease,
		SnapshotThreshold:  cfg.SnapshotThreshold,
		Logger:             cfg.Logger,
	}
	if cfg.DataDir == "" {
		rc.DataDir = ""
	}
	var err error
	if cfg.ForceNewCluster {
		m.raft, err = raft.ForceNewCluster(rc)
	} else {
		m.raft, err = raft.New(rc)
	}
	if err != nil {
		m.peers.close()
		m.nodes.close()
		return nil, err
	}
	m.store.SetProposer(m.raft)
	m.control = controlapi.NewServer(m.store, m.raft)
	if cfg.ResolveImages {
		m.control.SetImageResolver(registryResolver{insecure: cfg.InsecureRegistries})
	}
	m.dispatcher = dispatcher.New(dispatcher.Config{
		Store:   m.store,
		Members: m.raft.Members,
		Period:  cfg.HeartbeatPeriod,
		Trust: func(c *api.Cluster) ([]byte, string) {
			return controlapi.TrustBundle(c), controlapi.SigningDigest(c)
		},
		Logger: cfg.Logger,
	})
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		m.runLeaderLoops(ctx)
	}()
	go func() {
		defer m.wg.Done()
		m.cutRemovedNodes(ctx)
	}()
	return m, nil
}

// HasState reports whether a node data directory holds manager state.
func HasState(dataDir string) (bool, error) {
	return raft.HasState(filepath.Join(dataDir, "raft"))
}

// Store returns the manager's store.
func (m *Manager) Store() *store.MemoryStore { return m.store }

// Raft returns the manager's Raft node.
func (m *Manager) Raft() *raft.Node { return m.raft }

// Control returns the user API implementation (controlapi's, with
// ServiceLogs; see logs.go).
func (m *Manager) Control() api.ControlServer { return &controlServer{Server: m.control, m: m} }

// Membership returns the join service implementation.
func (m *Manager) Membership() api.MembershipServer { return &membershipServer{m: m} }

// RaftService returns the manager-to-manager service implementation.
func (m *Manager) RaftService() api.RaftServer { return &raftServer{m: m} }

// Dispatcher returns the agents' service implementation.
func (m *Manager) Dispatcher() api.DispatcherServer { return &dispatcherServer{m: m} }

// Bootstrap creates a new cluster with this manager as its only member:
// it bootstraps Raft, waits for leadership, and writes the Cluster object
// (with fresh join tokens) and this node's Node object.
func (m *Manager) Bootstrap(ctx context.Context) (*api.Cluster, error) {
	if err := m.raft.Bootstrap(); err != nil {
		return nil, err
	}
	if err := m.WaitForLeader(ctx); err != nil {
		return nil, err
	}
	return m.ensureCluster(ctx)
}

// WaitForLeader waits until this manager is the ready leader.
func (m *Manager) WaitForLeader(ctx context.Context) error {
	ch, cancel := m.raft.SubscribeLeadership()
	defer cancel()
	for {
		if m.raft.IsLeader() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting to become raft leader: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Stop stops the leader loops and the Raft server. Safe to call twice.
func (m *Manager) Stop() error {
	var err error
	m.stopOnce.Do(func() {
		m.cancel()
		err = m.raft.Shutdown()
		m.wg.Wait()
		m.peers.close()
		m.nodes.close()
	})
	return err
}

// runLeaderLoops runs the leader-only work while this manager leads: the
// dispatcher's sessions and DOWN detection, the role reconciler, the
// gossip key and root CA rotations, the orchestrator, the placer and the allocator. Each starts with a full pass at the start
// of every term, then is level-triggered.
func (m *Manager) runLeaderLoops(ctx context.Context) {
	ch, cancel := m.raft.SubscribeLeadership()
	defer cancel()
	var stop context.CancelFunc = func() {}
	var loops sync.WaitGroup
	defer func() { stop(); loops.Wait() }()
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-ch:
			stop()
			loops.Wait()
			if !leader || !m.raft.IsLeader() {
				stop = func() {}
				continue
			}
			lctx, lcancel := context.WithCancel(ctx)
			stop = lcancel
			orch := orchestrator.New(m.store, orchestrator.Config{Logger: m.log})
			placer := placement.New(m.store, placement.Config{Logger: m.log})
			alloc := allocator.New(m.store, allocator.Config{Logger: m.log})
			loops.Add(6)
			go func() { defer loops.Done(); m.rotateKeys(lctx) }()
			go func() { defer loops.Done(); m.dispatcher.Run(lctx) }()
			go func() { defer loops.Done(); m.reconcileRoles(lctx) }()
			go func() { defer loops.Done(); orch.Run(lctx) }()
			go func() { defer loops.Done(); placer.Run(lctx) }()
			go func() { defer loops.Done(); alloc.Run(lctx) }()
		}
	}
}

// leaderConn returns a connection to the current leader, for calls that
// only the leader can serve, or an error saying there is none.
func (m *Manager) leaderConn() (*grpc.ClientConn, error) {
	_, addr := m.raft.Leader()
	if addr == "" {
		return nil, raft.ErrNoLeader
	}
	return m.peers.get(addr)
}

// retryConflicts runs an Update, retrying when another write got in first.
func (m *Manager) retryConflicts(ctx context.Context, fn func(store.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := m.store.Update(ctx, fn)
		if errors.Is(err, store.ErrSequenceConflict) && attempt < 10 {
			continue
		}
		return err
	}
}
