// Package agent is the node side of Shoal: it keeps the node's session
// with the managers and, given an Executor, runs the node's tasks.
//
// The session is three loops. Heartbeats report the node alive to any
// manager (a follower forwards them to the leader) and learn the
// managers' addresses, the leader's address and the role the operator
// wants for the node; when the manager it talks to fails, the agent
// moves to the next one in the list the managers handed out. The
// Assignments stream, opened on the leader, delivers the node's tasks: a
// COMPLETE message, then INCREMENTAL changes (session.go). Status
// reports go back through UpdateTaskStatus, gathered for ReportInterval
// and retried across manager failover (reporter.go).
//
// Each assigned task has a driver goroutine that moves it toward its
// desired state one runtime.Advance step at a time and records every new
// status (task.go). The agent never starts a task twice: one driver per
// task ID, and controllers are idempotent. Assignments and the last
// observed status of each task are persisted in StateDir/worker.db
// (storage.go), so a restarted agent resumes its tasks: it reattaches to
// them through the executor, reports their status again, and removes
// the tasks the managers no longer assign only once a new COMPLETE
// message says so.
//
// When Run returns (its context ended, or the node was removed) the
// tasks are left running: the next agent on the same state reattaches.
package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/proto/api"
)

// ErrRemoved means the managers no longer know this node: it was removed
// from the cluster and must join again.
var ErrRemoved = errors.New("this node was removed from the cluster")

// Config configures an Agent.
type Config struct {
	// NodeID is this node's ID, as the managers know it.
	NodeID string
	// Addr is the address the node reports itself reachable at.
	Addr string
	// Description is the node's description; fields it leaves empty are
	// filled from Executor.Describe.
	Description *api.NodeDescription
	// Managers are the manager addresses known at start.
	Managers []string
	// Dial opens a connection to a manager address.
	Dial func(addr string) (*grpc.ClientConn, error)
	// Role reports the role the node runs as now.
	Role func() api.NodeRole
	// OnResponse is called with every heartbeat answer.
	OnResponse func(*api.HeartbeatResponse)
	// Report, if set, adds the node's own state to each heartbeat: the
	// digest of its gossip keys, the roots it trusts and the issuer of its
	// certificate, which the managers follow key rotations with.
	Report func(*api.HeartbeatRequest)
	// Period is the heartbeat period until a manager says otherwise.
	Period time.Duration
	Logger *slog.Logger

	// Executor runs the node's tasks. Without one the agent only sends
	// heartbeats: it opens no assignments stream and runs no task.
	Executor runtime.Executor
	// StateDir is where the agent keeps worker.db, its persisted
	// assignments and task statuses (bbolt; the directory is made if
	// missing). Empty keeps them in memory only (scale tests): a
	// restarted agent then learns its tasks from the managers alone.
	StateDir string
	// Overlay, when set, is the node's data plane: it is given the
	// networks the assignments carry, and told when a task's endpoints
	// must enter service discovery (running and healthy) and leave it
	// (before the task is stopped).
	Overlay Overlay
	// EndpointSettle is how long a task keeps running after its
	// endpoints were withdrawn and before it is stopped, so that every
	// host has stopped sending it new connections
	// (DefaultEndpointSettle; the gossip spreads a change in about 100 ms).
	EndpointSettle time.Duration
	// ReportInterval is how long task status changes gather before they
	// are sent in one UpdateTaskStatus call (DefaultReportInterval).
	ReportInterval time.Duration
}

// Overlay is the node's data plane as the agent drives it (package
// overlay's Host implements it).
type Overlay interface {
	// UpdateNetworks records the networks the node's tasks attach to (all
	// of them when complete) and forgets removed ones.
	UpdateNetworks(update []*api.Network, remove []string, complete bool)
	// Publish puts a task's endpoints into every host's load balancing
	// and DNS; Withdraw takes them out. Both are idempotent.
	Publish(t *api.Task) error
	Withdraw(taskID string) error
}

// DefaultEndpointSettle is the default Config.EndpointSettle.
const DefaultEndpointSettle = 500 * time.Millisecond

// DefaultReportInterval is how long status changes gather by default.
const DefaultReportInterval = 50 * time.Millisecond

// Agent keeps the node's session with the managers and runs its tasks.
type Agent struct {
	cfg Config

	mu       sync.Mutex
	managers []string
	next     int
	conns    map[string]*grpc.ClientConn
	desc     *api.NodeDescription
	// leader is the leader's address as last learned ("" when unknown);
	// leaderMoved is closed and replaced whenever it changes.
	leader      string
	leaderMoved chan struct{}

	worker *worker // set while Run runs with an Executor
}

// New returns an agent. Call Run once.
func New(cfg Config) *Agent {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Period <= 0 {
		cfg.Period = 5 * time.Second
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = DefaultReportInterval
	}
	return &Agent{
		cfg: cfg, managers: append([]string(nil), cfg.Managers...), conns: map[string]*grpc.ClientConn{},
		desc: cfg.Description, leaderMoved: make(chan struct{}),
	}
}

// Managers returns the manager addresses the agent knows.
func (a *Agent) Managers() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.managers...)
}

// Run keeps the session until ctx ends or the node is removed
// (ErrRemoved): it sends heartbeats and, with an Executor, first resumes
// the persisted tasks, then follows the assignments stream, drives the
// tasks and reports their status. It fails at once when the state in
// StateDir cannot be opened (another agent holds it, say). The tasks are
// left as they are when Run returns.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer a.closeConns()
	if a.cfg.Executor == nil {
		return a.heartbeats(ctx)
	}
	a.describe(ctx)
	db, err := openTaskDB(a.cfg.StateDir)
	if err != nil {
		return err
	}
	defer db.close()
	w := newWorker(a, db)
	a.mu.Lock()
	a.worker = w
	a.mu.Unlock()
	var loops sync.WaitGroup
	loops.Go(func() { w.rep.run(ctx) })
	if err := w.load(ctx); err != nil {
		cancel()
		loops.Wait()
		return err
	}
	loops.Go(func() { a.followAssignments(ctx, w) })
	err = a.heartbeats(ctx)
	cancel()
	loops.Wait()
	w.wait()
	return err
}

// describe fills the node description's empty fields from the executor.
func (a *Agent) describe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Period)
	defer cancel()
	ed, err := a.cfg.Executor.Describe(ctx)
	if err != nil {
		a.cfg.Logger.Warn("describe node through the executor", "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.desc = mergeDescription(a.cfg.Description, ed)
}

// mergeDescription is own with its empty fields taken from exec.
func mergeDescription(own, exec *api.NodeDescription) *api.NodeDescription {
	if own == nil {
		return exec
	}
	d := proto.Clone(own).(*api.NodeDescription)
	if exec == nil {
		return d
	}
	if d.Hostname == "" {
		d.Hostname = exec.Hostname
	}
	if d.Platform == nil {
		d.Platform = exec.Platform
	}
	if d.Resources == nil {
		d.Resources = exec.Resources
	}
	if d.Version == "" {
		d.Version = exec.Version
	}
	for k, v := range exec.EngineLabels {
		if _, ok := d.EngineLabels[k]; !ok {
			if d.EngineLabels == nil {
				d.EngineLabels = map[string]string{}
			}
			d.EngineLabels[k] = v
		}
	}
	return d
}

// heartbeats sends heartbeats until ctx ends or the node is removed.
func (a *Agent) heartbeats(ctx context.Context) error {
	period := a.cfg.Period
	for {
		resp, err := a.beat(ctx)
		switch {
		case err == nil:
			if resp.Period > 0 {
				period = time.Duration(resp.Period)
			}
			a.learnManagers(resp.Managers)
			if resp.LeaderAddr != "" {
				a.setLeader(resp.LeaderAddr)
			}
			if a.cfg.OnResponse != nil {
				a.cfg.OnResponse(resp)
			}
		case api.IsNodeRemoved(err):
			return ErrRemoved
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			a.cfg.Logger.Warn("heartbeat failed; trying another manager", "err", err)
		}
		wait := period
		if err != nil {
			wait = period / 5
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// beat sends one heartbeat, trying each known manager once.
func (a *Agent) beat(ctx context.Context) (*api.HeartbeatResponse, error) {
	a.mu.Lock()
	n := len(a.managers)
	a.mu.Unlock()
	var lastErr error = errors.New("no manager address known")
	for i := 0; i < n; i++ {
		addr := a.pick(i)
		c, err := a.conn(addr)
		if err != nil {
			lastErr = err
			continue
		}
		role := api.NodeRole_NODE_ROLE_WORKER
		if a.cfg.Role != nil {
			role = a.cfg.Role()
		}
		cctx, cancel := context.WithTimeout(ctx, a.cfg.Period)
		a.mu.Lock()
		desc := a.desc
		a.mu.Unlock()
		req := &api.HeartbeatRequest{NodeId: a.cfg.NodeID, Description: desc, Addr: a.cfg.Addr, Role: role}
		if a.cfg.Report != nil {
			a.cfg.Report(req)
		}
		resp, err := api.NewDispatcherClient(c).Heartbeat(cctx, req)
		cancel()
		if err == nil || api.IsNodeRemoved(err) {
			a.mu.Lock()
			a.next = (a.next + i) % max(1, len(a.managers))
			a.mu.Unlock()
			return resp, err
		}
		lastErr = err
	}
	a.mu.Lock()
	a.next++
	a.mu.Unlock()
	return nil, lastErr
}

func (a *Agent) pick(i int) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.managers[(a.next+i)%len(a.managers)]
}

func (a *Agent) conn(addr string) (*grpc.ClientConn, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.conns[addr]; ok {
		return c, nil
	}
	c, err := a.cfg.Dial(addr)
	if err != nil {
		return nil, err
	}
	a.conns[addr] = c
	return c, nil
}

func (a *Agent) learnManagers(peers []*api.Peer) {
	if len(peers) == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cur := a.managers
	a.managers = a.managers[:0:0]
	for _, p := range peers {
		a.managers = append(a.managers, p.Addr)
	}
	if len(cur) > 0 && a.next < len(cur) {
		// Keep talking to the same manager if it is still listed.
		for i, m := range a.managers {
			if m == cur[a.next%len(cur)] {
				a.next = i
				return
			}
		}
	}
	a.next = 0
}

func (a *Agent) closeConns() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, c := range a.conns {
		c.Close()
		delete(a.conns, k)
	}
}
