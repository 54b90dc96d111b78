// Package agent is the node side of Shoal: it keeps the node's session
// with the managers. Today that is a heartbeat loop that reports the node
// alive, learns the managers' addresses and the role the operator wants
// for the node; task execution arrives with the dispatcher's assignments.
//
// The agent talks to any manager: a follower forwards heartbeats to the
// leader. When the manager it talks to fails, it moves to the next one in
// the list the managers handed out.
package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/proto/api"
)

// ErrRemoved means the managers no longer know this node: it was removed
// from the cluster and must join again.
var ErrRemoved = errors.New("this node was removed from the cluster")

// Config configures an Agent.
type Config struct {
	NodeID      string
	Addr        string
	Description *api.NodeDescription
	// Managers are the manager addresses known at start.
	Managers []string
	// Dial opens a connection to a manager address.
	Dial func(addr string) (*grpc.ClientConn, error)
	// Role reports the role the node runs as now.
	Role func() api.NodeRole
	// OnResponse is called with every heartbeat answer.
	OnResponse func(*api.HeartbeatResponse)
	// Period is the heartbeat period until a manager says otherwise.
	Period time.Duration
	Logger *slog.Logger
}

// Agent keeps the node's session with the managers.
type Agent struct {
	cfg Config

	mu       sync.Mutex
	managers []string
	next     int
	conns    map[string]*grpc.ClientConn
}

// New returns an agent.
func New(cfg Config) *Agent {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Period <= 0 {
		cfg.Period = 5 * time.Second
	}
	return &Agent{cfg: cfg, managers: append([]string(nil), cfg.Managers...), conns: map[string]*grpc.ClientConn{}}
}

// Managers returns the manager addresses the agent knows.
func (a *Agent) Managers() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.managers...)
}

// Run sends heartbeats until ctx ends or the node is removed (ErrRemoved).
func (a *Agent) Run(ctx context.Context) error {
	defer a.closeConns()
	period := a.cfg.Period
	for {
		resp, err := a.beat(ctx)
		switch {
		case err == nil:
			if resp.Period > 0 {
				period = time.Duration(resp.Period)
			}
			a.learnManagers(resp.Managers)
			if a.cfg.OnResponse != nil {
				a.cfg.OnResponse(resp)
			}
		case status.Code(err) == codes.NotFound:
			return ErrRemoved
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
		resp, err := api.NewDispatcherClient(c).Heartbeat(cctx, &api.HeartbeatRequest{
			NodeId: a.cfg.NodeID, Description: a.cfg.Description, Addr: a.cfg.Addr, Role: role,
		})
		cancel()
		if err == nil || status.Code(err) == codes.NotFound {
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
