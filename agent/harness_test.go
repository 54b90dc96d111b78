package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/agent/runtime/simulated"
	disp "github.com/shoalhq/shoal/manager/dispatcher"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// failAfter bounds waits for things that should happen soon; it is a
// deadline, not a sleep.
const failAfter = 15 * time.Second

const (
	stAssigned = api.TaskState_TASK_STATE_ASSIGNED
	stReady    = api.TaskState_TASK_STATE_READY
	stRunning  = api.TaskState_TASK_STATE_RUNNING
	stComplete = api.TaskState_TASK_STATE_COMPLETE
	stShutdown = api.TaskState_TASK_STATE_SHUTDOWN
	stFailed   = api.TaskState_TASK_STATE_FAILED
	stRemove   = api.TaskState_TASK_STATE_REMOVE
)

// cluster is a set of in-process managers sharing one real store (as
// Raft would keep their stores equal). Each has its own dispatcher and
// gRPC server; one at a time is the leader and runs its dispatcher, the
// others behave as followers: they forward heartbeats and status reports
// to the leader and refuse assignment streams, naming the leader.
type cluster struct {
	t        *testing.T
	s        *store.MemoryStore
	managers []*testManager

	mu     sync.Mutex
	leader *testManager
}

type testManager struct {
	c      *cluster
	d      *disp.Dispatcher
	addr   string
	srv    *grpc.Server
	stop   context.CancelFunc // ends Run
	done   chan struct{}
	dead   bool
	status atomic.Int64 // UpdateTaskStatus calls answered
}

func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	return newClusterPeriod(t, n, 50*time.Millisecond)
}

// newClusterPeriod is newCluster with the heartbeat period the managers
// hand out.
func newClusterPeriod(t *testing.T, n int, period time.Duration) *cluster {
	t.Helper()
	s := store.New(nil)
	s.SetProposer(store.NewLocalProposer(s))
	c := &cluster{t: t, s: s}
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m := &testManager{c: c, addr: ln.Addr().String(), srv: grpc.NewServer()}
		m.d = disp.New(disp.Config{
			Store:               s,
			Members:             c.members,
			Period:              period,
			StatusBatchInterval: 10 * time.Millisecond,
			Logger:              slog.New(slog.NewTextHandler(t.Output(), nil)),
		})
		api.RegisterDispatcherServer(m.srv, &adapter{m: m})
		go m.srv.Serve(ln)
		c.managers = append(c.managers, m)
	}
	t.Cleanup(func() {
		for _, m := range c.managers {
			c.kill(m)
		}
	})
	c.lead(c.managers[0])
	return c
}

func (c *cluster) members() []*api.RaftMember {
	var out []*api.RaftMember
	for i, m := range c.managers {
		out = append(out, &api.RaftMember{NodeId: fmt.Sprintf("m%d", i), Addr: m.addr})
	}
	return out
}

func (c *cluster) addrs() []string {
	var out []string
	for _, m := range c.managers {
		out = append(out, m.addr)
	}
	return out
}

func (c *cluster) current() *testManager {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// lead makes m the leader: the old leader's dispatcher stops (its streams
// end), m's runs.
func (c *cluster) lead(m *testManager) {
	c.mu.Lock()
	old := c.leader
	c.leader = nil
	c.mu.Unlock()
	if old != nil {
		old.stopRun()
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop, m.done = cancel, make(chan struct{})
	go func() { defer close(m.done); m.d.Run(ctx) }()
	c.mu.Lock()
	c.leader = m
	c.mu.Unlock()
}

func (m *testManager) stopRun() {
	if m.stop != nil {
		m.stop()
		<-m.done
		m.stop = nil
	}
}

// kill stops m for good: its server and, if it leads, its dispatcher.
func (c *cluster) kill(m *testManager) {
	c.mu.Lock()
	if c.leader == m {
		c.leader = nil
	}
	dead := m.dead
	m.dead = true
	c.mu.Unlock()
	if !dead {
		m.srv.Stop()
		m.stopRun()
	}
}

// adapter serves api.Dispatcher over one test manager, mapping the
// dispatcher's errors to codes as the manager's own wrapper does.
type adapter struct {
	api.UnimplementedDispatcherServer
	m *testManager
}

func (a *adapter) Heartbeat(ctx context.Context, req *api.HeartbeatRequest) (*api.HeartbeatResponse, error) {
	l := a.m.c.current()
	if l == nil {
		return nil, status.Error(codes.Unavailable, "no leader")
	}
	resp, err := l.d.Heartbeat(ctx, req)
	if err != nil {
		return nil, a.mapErr(err)
	}
	resp.LeaderAddr = l.addr
	return resp, nil
}

func (a *adapter) Assignments(req *api.AssignmentsRequest, stream api.Dispatcher_AssignmentsServer) error {
	return a.mapErr(a.m.d.Assignments(stream.Context(), req.NodeId, stream.Send))
}

func (a *adapter) UpdateTaskStatus(ctx context.Context, req *api.UpdateTaskStatusRequest) (*api.UpdateTaskStatusResponse, error) {
	a.m.status.Add(1)
	l := a.m.c.current()
	if l == nil {
		return nil, status.Error(codes.Unavailable, "no leader")
	}
	if err := l.d.UpdateTaskStatus(ctx, req); err != nil {
		return nil, a.mapErr(err)
	}
	return &api.UpdateTaskStatusResponse{}, nil
}

func (a *adapter) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, disp.ErrNotRunning):
		addr := ""
		if l := a.m.c.current(); l != nil {
			addr = l.addr
		}
		st, _ := status.New(codes.Unavailable, "not the leader; leader at "+addr).WithDetails(&errdetails.ErrorInfo{
			Reason: notLeaderReason, Domain: notLeaderDomain, Metadata: map[string]string{leaderAddrMetKey: addr},
		})
		return st.Err()
	case errors.Is(err, disp.ErrNodeRemoved):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unavailable, err.Error())
}

// runAgent runs an agent until the test ends or stop is called.
type runningAgent struct {
	*Agent
	stop func() error
}

func startAgent(t *testing.T, cfg Config) *runningAgent {
	t.Helper()
	if cfg.Dial == nil {
		cfg.Dial = dial
	}
	if cfg.Period == 0 {
		cfg.Period = 50 * time.Millisecond
	}
	if cfg.ReportInterval == 0 {
		cfg.ReportInterval = 10 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
				if errors.Is(err, context.Canceled) {
					err = nil
				}
			case <-time.After(failAfter):
				err = errors.New("agent did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return &runningAgent{Agent: a, stop: stop}
}

func (c *cluster) createNodes(ids ...string) {
	c.t.Helper()
	c.update(func(tx store.Tx) error {
		for _, id := range ids {
			if err := tx.CreateNode(&api.Node{Id: id, Spec: &api.NodeSpec{}}); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *cluster) update(fn func(store.Tx) error) {
	c.t.Helper()
	if err := c.s.Update(context.Background(), fn); err != nil {
		c.t.Fatal(err)
	}
}

func newTask(id, node string, desired api.TaskState) *api.Task {
	return &api.Task{
		Id: id, ServiceId: "svc", NodeId: node, DesiredState: desired,
		Spec:   &api.TaskSpec{Container: &api.ContainerSpec{Image: "app:v1"}},
		Status: &api.TaskStatus{State: stAssigned, Message: "assigned"},
	}
}

// assign creates tasks on node, ASSIGNED and desired RUNNING.
func (c *cluster) assign(node string, ids ...string) {
	c.t.Helper()
	c.update(func(tx store.Tx) error {
		for _, id := range ids {
			if err := tx.CreateTask(newTask(id, node, stRunning)); err != nil {
				return err
			}
		}
		return nil
	})
}

// setDesired raises tasks' desired state.
func (c *cluster) setDesired(state api.TaskState, ids ...string) {
	c.t.Helper()
	c.update(func(tx store.Tx) error {
		for _, id := range ids {
			t := proto.Clone(tx.GetTask(id)).(*api.Task)
			t.DesiredState = state
			if err := tx.UpdateTask(t); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *cluster) task(id string) *api.Task {
	var t *api.Task
	c.s.View(func(tx store.ReadTx) { t = tx.GetTask(id) })
	return t
}

// waitStates polls until every listed task has the state in the store.
func (c *cluster) waitStates(state api.TaskState, ids ...string) {
	c.t.Helper()
	poll(c.t, fmt.Sprintf("tasks %v %v in the store", ids, state), func() error {
		for _, id := range ids {
			if got := c.task(id).GetStatus().GetState(); got != state {
				return fmt.Errorf("task %s is %v", id, got)
			}
		}
		return nil
	})
}

// poll calls f until it returns nil, failing the test at the deadline.
func poll(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, failAfter, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

// checkStartedOnce fails the test unless each task was started exactly
// once over all the executors.
func checkStartedOnce(t *testing.T, tasks []string, execs ...*simulated.Executor) {
	t.Helper()
	for _, id := range tasks {
		n := 0
		for _, e := range execs {
			n += e.Starts(id)
		}
		if n != 1 {
			t.Errorf("task %s was started %d times, want once", id, n)
		}
	}
}
