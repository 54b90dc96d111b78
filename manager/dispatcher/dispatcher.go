// Package dispatcher keeps the agents' sessions on the leader: it takes
// heartbeats, marks a node READY when it reports and DOWN when it misses
// its heartbeats for the grace period, tells each node the role the
// operator wants for it and where the managers are, streams each node its
// task assignments, and writes the task status the agents report.
//
// Heartbeats are kept in memory; only changes of a node's state are
// written through Raft, so a quiet cluster writes nothing. Status reports
// of all nodes are gathered for a few tens of milliseconds and written
// together in few transactions (status.go). Assignment streams follow the
// store through one shared watch, fanned out by node (hub.go,
// assignments.go).
//
// Run must be called only while this manager is the leader: at start it
// gives every node a full grace period, since heartbeats sent to the
// previous leader were not seen here. Assignments and UpdateTaskStatus
// are served only while Run runs (ErrNotRunning otherwise), and open
// streams end when Run's context ends, that is when leadership is lost.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// DefaultHeartbeatPeriod is how often agents report when the cluster spec
// does not say.
const DefaultHeartbeatPeriod = 5 * time.Second

// GraceMultiplier is how many periods a node may miss before it is DOWN
// when the cluster spec does not say (heartbeat_grace_periods).
const GraceMultiplier = 3

// Sentinel errors; the manager's gRPC edge maps them to codes.
var (
	// ErrNodeRemoved means a call came from a node that is no longer in
	// the cluster; the node must join again.
	ErrNodeRemoved = errors.New("this node was removed from the cluster: join it again with a join token")
	// ErrNotRunning means the dispatcher's Run is not running: this manager
	// is not the leader, or has just stopped or started being it. Ask the
	// leader (again).
	ErrNotRunning = errors.New("the dispatcher is not running on this manager: it is not the leader")
)

// Defaults of the Config knobs.
const (
	DefaultStatusBatchInterval  = 50 * time.Millisecond
	DefaultStatusBatchSize      = 1000
	DefaultAssignmentBatchDelay = 10 * time.Millisecond
)

// Config configures a Dispatcher.
type Config struct {
	Store *store.MemoryStore
	// Members returns the Raft configuration, handed to agents as the list
	// of managers to talk to.
	Members func() []*api.RaftMember
	// Period overrides the cluster's heartbeat period (tests).
	Period time.Duration
	// StatusBatchInterval is the longest a status report waits to be
	// written together with others (DefaultStatusBatchInterval).
	StatusBatchInterval time.Duration
	// StatusBatchSize is the most task updates written in one store
	// transaction (DefaultStatusBatchSize); once that many wait, they are
	// written without waiting for the interval.
	StatusBatchSize int
	// AssignmentBatchDelay is how long an assignments stream gathers
	// changes into one message (DefaultAssignmentBatchDelay).
	AssignmentBatchDelay time.Duration
	// Trust, if set, gives the roots bundle nodes must trust and the
	// digest of the root that signs now, handed out with heartbeats.
	Trust  func(*api.Cluster) (bundle []byte, signing string)
	Logger *slog.Logger
}

// Dispatcher is the leader's view of the agents.
type Dispatcher struct {
	cfg      Config
	mu       sync.Mutex
	lastSeen map[string]time.Time
	reported map[string]Report // what each node said in its last heartbeat

	// runMu guards run, set while Run runs.
	runMu sync.Mutex
	run   *runState

	stats stats
}

// runState is what lives for one Run: its context (the leader's term),
// the task watch shared by the assignment streams, and the status queue.
type runState struct {
	ctx      context.Context
	hub      *hub
	statusCh chan *statusRequest
}

// New returns a dispatcher.
func New(cfg Config) *Dispatcher {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StatusBatchInterval <= 0 {
		cfg.StatusBatchInterval = DefaultStatusBatchInterval
	}
	if cfg.StatusBatchSize <= 0 {
		cfg.StatusBatchSize = DefaultStatusBatchSize
	}
	if cfg.AssignmentBatchDelay <= 0 {
		cfg.AssignmentBatchDelay = DefaultAssignmentBatchDelay
	}
	return &Dispatcher{cfg: cfg, lastSeen: map[string]time.Time{}, reported: map[string]Report{}}
}

// current returns the state of the running Run, nil when none runs.
func (d *Dispatcher) current() *runState {
	d.runMu.Lock()
	defer d.runMu.Unlock()
	if d.run == nil || d.run.ctx.Err() != nil {
		return nil
	}
	return d.run
}

// StreamingNodes is how many nodes have an assignment stream open on this
// dispatcher (0 when it is not running).
func (d *Dispatcher) StreamingNodes() int {
	rs := d.current()
	if rs == nil {
		return 0
	}
	return rs.hub.nodes()
}

// Period is the heartbeat period in force.
func (d *Dispatcher) Period() time.Duration {
	p, _ := d.timing()
	return p
}

// timing returns the heartbeat period and how many periods a node may
// miss, from the config override or the cluster spec, else the defaults.
func (d *Dispatcher) timing() (time.Duration, int) {
	var p time.Duration
	grace := GraceMultiplier
	d.cfg.Store.View(func(tx store.ReadTx) {
		cs := tx.FindClusters(store.All())
		if len(cs) == 0 {
			return
		}
		if hp := cs[0].GetSpec().HeartbeatPeriod; hp != nil {
			p = time.Duration(*hp)
		}
		if g := cs[0].GetSpec().HeartbeatGracePeriods; g != nil && *g > 0 {
			grace = int(*g)
		}
	})
	if d.cfg.Period > 0 {
		p = d.cfg.Period
	}
	if p <= 0 {
		p = DefaultHeartbeatPeriod
	}
	return p, grace
}

// ReportedRole returns the role a node said it runs as in its last
// heartbeat (a promoted node reports MANAGER once its Raft server is up).
func (d *Dispatcher) ReportedRole(nodeID string) (api.NodeRole, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.reported[nodeID]
	return r.Role, ok
}

// Report is what a node said of itself in its last heartbeat.
type Report struct {
	// Role is the role it runs as.
	Role api.NodeRole
	// GossipKeyring is the digest of its gossip keys.
	GossipKeyring []byte
	// TrustedRoots is the digest of the roots bundle it trusts;
	// CertIssuer the digest of the root that issued its certificate.
	TrustedRoots []byte
	CertIssuer   string
}

// Reported returns what the node said in its last heartbeat to this
// dispatcher (false if it sent none here).
func (d *Dispatcher) Reported(nodeID string) (Report, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.reported[nodeID]
	return r, ok
}

// Heartbeat records a node's heartbeat (leader only) and answers with the
// node's desired role, the period, the managers, the node's own network
// attachments, the ingress network, the gossip keys, the roots to trust
// and the removed nodes. It writes the node
// only when its state, address or description changed. Fails with
// ErrNodeRemoved for an unknown node.
func (d *Dispatcher) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	var node *api.Node
	var ingress *api.Network
	var cluster *api.Cluster
	d.cfg.Store.View(func(tx store.ReadTx) {
		node = tx.GetNode(req.NodeId)
		if cs := tx.FindClusters(store.All()); len(cs) > 0 {
			cluster = cs[0]
		}
		for _, n := range tx.FindNetworks(store.All()) {
			if n.GetIngress() {
				ingress = n
			}
		}
	})
	if node == nil {
		return nil, fmt.Errorf("node %s: %w", req.NodeId, ErrNodeRemoved)
	}
	d.mu.Lock()
	d.lastSeen[req.NodeId] = time.Now()
	d.reported[req.NodeId] = Report{Role: req.Role, GossipKeyring: req.GossipKeyring, TrustedRoots: req.TrustedRoots, CertIssuer: req.CertIssuer}
	d.mu.Unlock()
	if needsWrite(node, req) {
		err := d.updateNode(ctx, req.NodeId, func(n *api.Node) {
			if n.Status == nil {
				n.Status = &api.NodeStatus{}
			}
			n.Status.State = api.NodeState_NODE_STATE_READY
			n.Status.Message = ""
			if req.Addr != "" {
				n.Status.Addr = req.Addr
			}
			if req.Description != nil {
				n.Description = req.Description
			}
		})
		if err != nil {
			return nil, err
		}
	}
	resp := &api.HeartbeatResponse{Period: int64(d.Period()), Attachments: node.GetAttachments(), Ingress: ingress, GossipKeys: cluster.GetGossipKeys()}
	if d.cfg.Trust != nil && cluster != nil {
		resp.RootCa, resp.SigningCa = d.cfg.Trust(cluster)
	}
	for _, r := range cluster.GetRemovedNodes() {
		resp.RemovedNodes = append(resp.RemovedNodes, r.GetNodeId())
	}
	if node.Spec != nil {
		resp.DesiredRole = node.Spec.DesiredRole
	}
	for _, m := range d.cfg.Members() {
		resp.Managers = append(resp.Managers, &api.Peer{NodeId: m.NodeId, Addr: m.Addr})
	}
	return resp, nil
}

func needsWrite(n *api.Node, req *api.HeartbeatRequest) bool {
	if n.Status == nil || n.Status.State != api.NodeState_NODE_STATE_READY {
		return true
	}
	if req.Addr != "" && n.Status.Addr != req.Addr {
		return true
	}
	return req.Description != nil && !proto.Equal(n.Description, req.Description)
}

// updateNode applies change to a fresh copy of the node, retrying on
// version conflicts.
func (d *Dispatcher) updateNode(ctx context.Context, id string, change func(*api.Node)) error {
	for attempt := 0; ; attempt++ {
		err := d.cfg.Store.Update(ctx, func(tx store.Tx) error {
			cur := tx.GetNode(id)
			if cur == nil {
				return fmt.Errorf("node %s: %w", id, ErrNodeRemoved)
			}
			n := proto.Clone(cur).(*api.Node)
			change(n)
			return tx.UpdateNode(n)
		})
		if errors.Is(err, store.ErrSequenceConflict) && attempt < 5 {
			continue
		}
		return err
	}
}

// Run serves assignment streams and status reports and marks nodes DOWN
// when they miss their heartbeats, until ctx ends; then the streams end
// (ErrNotRunning) and reports still waiting fail with ErrNotRunning. Call
// it only on the leader, with a context that ends when leadership does,
// and never twice at once.
func (d *Dispatcher) Run(ctx context.Context) {
	rs := &runState{ctx: ctx, hub: newHub(d.cfg.Store), statusCh: make(chan *statusRequest)}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rs.hub.run(ctx) }()
	go func() { defer wg.Done(); d.runStatusWriter(rs) }()
	d.runMu.Lock()
	d.run = rs
	d.runMu.Unlock()
	defer func() {
		d.runMu.Lock()
		if d.run == rs {
			d.run = nil
		}
		d.runMu.Unlock()
		wg.Wait()
	}()
	d.detectDown(ctx)
}

// detectDown marks nodes DOWN when they miss their heartbeats, until ctx
// ends.
func (d *Dispatcher) detectDown(ctx context.Context) {
	start := time.Now()
	d.mu.Lock()
	for id := range d.lastSeen {
		d.lastSeen[id] = start
	}
	d.mu.Unlock()
	for {
		period, grace := d.timing()
		select {
		case <-ctx.Done():
			return
		case <-time.After(period / 2):
		}
		d.markDown(ctx, start, period*time.Duration(grace))
	}
}

func (d *Dispatcher) markDown(ctx context.Context, start time.Time, grace time.Duration) {
	now := time.Now()
	var late []string
	d.cfg.Store.View(func(tx store.ReadTx) {
		for _, n := range tx.FindNodes(store.All()) {
			if n.Status == nil || n.Status.State != api.NodeState_NODE_STATE_READY {
				continue
			}
			d.mu.Lock()
			seen, ok := d.lastSeen[n.Id]
			d.mu.Unlock()
			if !ok {
				seen = start
			}
			if now.Sub(seen) > grace {
				late = append(late, n.Id)
			}
		}
	})
	for _, id := range late {
		err := d.updateNode(ctx, id, func(n *api.Node) {
			n.Status.State = api.NodeState_NODE_STATE_DOWN
			n.Status.Message = fmt.Sprintf("heartbeat failure: no heartbeat for more than %s", grace)
		})
		if err != nil {
			d.cfg.Logger.Warn("mark node down", "node", id, "err", err)
			continue
		}
		d.cfg.Logger.Info("node is down", "node", id)
	}
}
