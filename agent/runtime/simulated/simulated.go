// Package simulated is a runtime.Executor that runs no containers: its
// "containers" are a few fields in a map, so one process can host
// thousands of simulated nodes with ten thousand tasks for scale tests,
// benchmarks and agent tests.
//
// A task starts after Config.StartDelay, fails to start with probability
// Config.FailureRate, and then runs until it is stopped or, when
// Config.RunDuration is set (jobs), exits with Config.ExitCode after that
// long. No goroutine runs per task: a running task is a channel that Wait
// blocks on and, for jobs, a timer.
//
// Reattach: the containers live in the Executor value, so a new agent on
// the same Executor finds them. A new Executor (a restarted agent
// process) knows none, and learns them from the agent, which calls
// Reattach with the last status it persisted: a task last seen STARTING
// or RUNNING is taken as still running (no new start is counted, and a
// job keeps the rest of its run time, counted from the status's
// timestamp); PREPARING or READY as prepared; a finished one as exited
// with its recorded exit code.
package simulated

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/proto/api"
)

// ErrStartFailed is the simulated failure of a start (Config.FailureRate).
var ErrStartFailed = errors.New("simulated start failure")

// Exit codes of stopped simulated tasks, as a shell reports them.
const (
	ExitCodeShutdown  = 143 // 128 + SIGTERM
	ExitCodeTerminate = 137 // 128 + SIGKILL
)

// Config says how simulated tasks behave. The zero value starts every
// task at once and runs it until it is stopped.
type Config struct {
	// StartDelay is how long each Start takes; 0 starts at once.
	StartDelay time.Duration
	// FailureRate is the probability, from 0 to 1, that a task's start
	// fails (the task is then FAILED). Whether a task fails is a function
	// of Seed and the task ID, so a run replays whatever the order of
	// starts.
	FailureRate float64
	Seed        uint64
	// RunDuration, when set, makes a task exit with ExitCode that long
	// after it started (jobs); 0 runs it until it is stopped.
	RunDuration time.Duration
	ExitCode    int
	// Description is what Describe returns (resources, labels).
	Description *api.NodeDescription
}

// Executor is a simulated runtime.Executor. It is safe for concurrent use.
type Executor struct {
	cfg Config

	mu         sync.Mutex
	containers map[string]*container
	starts     map[string]int
}

// container states.
const (
	created = iota
	running
	exited
)

// container is one simulated task's container; guarded by Executor.mu.
type container struct {
	state    int
	exitCode int
	done     chan struct{} // closed when the process exits or the container is removed
	timer    *time.Timer   // a job's end
}

// New returns an executor with no containers.
func New(cfg Config) *Executor {
	return &Executor{cfg: cfg, containers: map[string]*container{}, starts: map[string]int{}}
}

// Describe implements runtime.Executor: a copy of Config.Description.
func (e *Executor) Describe(context.Context) (*api.NodeDescription, error) {
	if e.cfg.Description == nil {
		return &api.NodeDescription{}, nil
	}
	return proto.Clone(e.cfg.Description).(*api.NodeDescription), nil
}

// Controller implements runtime.Executor.
func (e *Executor) Controller(t *api.Task) (runtime.Controller, error) {
	if t.GetId() == "" {
		return nil, fmt.Errorf("%w: task has no ID", runtime.ErrTaskRejected)
	}
	return &controller{e: e, id: t.GetId()}, nil
}

// Starts returns how many times this executor started a container for the
// task (a correct agent never makes it more than one).
func (e *Executor) Starts(taskID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.starts[taskID]
}

// TotalStarts returns the number of container starts of all tasks.
func (e *Executor) TotalStarts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.starts {
		n += s
	}
	return n
}

// Running returns the number of tasks whose container runs now.
func (e *Executor) Running() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.containers {
		if c.state == running {
			n++
		}
	}
	return n
}

// IsRunning reports whether the task's container runs now.
func (e *Executor) IsRunning(taskID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.containers[taskID]
	return c != nil && c.state == running
}

// Exists reports whether the task has a container (prepared, running or
// exited, not removed).
func (e *Executor) Exists(taskID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.containers[taskID] != nil
}

// fails decides, from the seed and the task ID only, whether the task's
// start fails.
func (e *Executor) fails(taskID string) bool {
	if e.cfg.FailureRate <= 0 {
		return false
	}
	h := fnv.New64a()
	var seed [8]byte
	for i := range seed {
		seed[i] = byte(e.cfg.Seed >> (8 * i))
	}
	h.Write(seed[:])
	h.Write([]byte(taskID))
	// splitmix64 finalizer: spreads FNV's weak low bits.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11)/(1<<53) < e.cfg.FailureRate
}

// newContainer records a container in state st; e.mu is held.
func (e *Executor) newContainer(id string, st int) *container {
	c := &container{state: st, done: make(chan struct{})}
	e.containers[id] = c
	return c
}

// run makes c a running container, with a job's timer; e.mu is held.
func (e *Executor) run(c *container, runFor time.Duration) {
	c.state = running
	if e.cfg.RunDuration <= 0 {
		return
	}
	c.timer = time.AfterFunc(max(runFor, 0), func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.exit(c, e.cfg.ExitCode)
	})
}

// exit ends c's process with code, if it runs or never ran; e.mu is held.
func (e *Executor) exit(c *container, code int) {
	if c.state == exited {
		return
	}
	c.state = exited
	c.exitCode = code
	if c.timer != nil {
		c.timer.Stop()
	}
	close(c.done)
}

// controller is one task's simulated controller.
type controller struct {
	e  *Executor
	id string
}

// Prepare implements runtime.Controller: it creates the container unless
// there is one.
func (c *controller) Prepare(context.Context) error {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if c.e.containers[c.id] == nil {
		c.e.newContainer(c.id, created)
	}
	return nil
}

// Start implements runtime.Controller: after the start delay, it runs the
// prepared container, or fails as Config.FailureRate says. A container
// already started is left alone.
func (c *controller) Start(ctx context.Context) error {
	c.e.mu.Lock()
	ct := c.e.containers[c.id]
	c.e.mu.Unlock()
	if ct == nil {
		return fmt.Errorf("start task %s: not prepared: %w", c.id, runtime.ErrContainerGone)
	}
	if d := c.e.cfg.StartDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if c.e.containers[c.id] != ct {
		return fmt.Errorf("start task %s: removed while starting: %w", c.id, runtime.ErrContainerGone)
	}
	if ct.state != created {
		return nil // started before: never a second instance
	}
	c.e.starts[c.id]++
	if c.e.fails(c.id) {
		c.e.exit(ct, 1)
		return fmt.Errorf("start task %s: %w", c.id, ErrStartFailed)
	}
	c.e.run(ct, c.e.cfg.RunDuration)
	return nil
}

// Wait implements runtime.Controller.
func (c *controller) Wait(ctx context.Context) (int, error) {
	c.e.mu.Lock()
	ct := c.e.containers[c.id]
	c.e.mu.Unlock()
	if ct == nil {
		return 0, fmt.Errorf("wait for task %s: %w", c.id, runtime.ErrContainerGone)
	}
	select {
	case <-ct.done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if c.e.containers[c.id] != ct {
		return 0, fmt.Errorf("wait for task %s: removed: %w", c.id, runtime.ErrContainerGone)
	}
	return ct.exitCode, nil
}

// Shutdown implements runtime.Controller: the task stops at once.
func (c *controller) Shutdown(context.Context) error { c.stop(ExitCodeShutdown); return nil }

// Terminate implements runtime.Controller.
func (c *controller) Terminate(context.Context) error { c.stop(ExitCodeTerminate); return nil }

func (c *controller) stop(code int) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if ct := c.e.containers[c.id]; ct != nil {
		if ct.state == created {
			code = 0
		}
		c.e.exit(ct, code)
	}
}

// Remove implements runtime.Controller: it forgets the container.
func (c *controller) Remove(context.Context) error {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if ct := c.e.containers[c.id]; ct != nil {
		c.e.exit(ct, ExitCodeTerminate)
		delete(c.e.containers, c.id)
	}
	return nil
}

// Close implements runtime.Controller.
func (c *controller) Close() error { return nil }

// Reattach implements runtime.Reattacher; see the package comment.
func (c *controller) Reattach(_ context.Context, last *api.TaskStatus) error {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if c.e.containers[c.id] != nil {
		return nil // this executor made it: it knows better
	}
	switch st := last.GetState(); {
	case st == api.TaskState_TASK_STATE_STARTING || st == api.TaskState_TASK_STATE_RUNNING:
		ct := c.e.newContainer(c.id, created)
		runFor := c.e.cfg.RunDuration
		if ts := last.GetTimestamp(); ts > 0 {
			runFor -= time.Since(time.Unix(0, ts))
		}
		c.e.run(ct, runFor)
	case st == api.TaskState_TASK_STATE_PREPARING || st == api.TaskState_TASK_STATE_READY:
		c.e.newContainer(c.id, created)
	case st > api.TaskState_TASK_STATE_RUNNING:
		ct := c.e.newContainer(c.id, created)
		c.e.exit(ct, int(last.GetContainer().GetExitCode()))
	}
	return nil
}

// ContainerStatus implements runtime.ContainerStatuser.
func (c *controller) ContainerStatus(context.Context) (*api.ContainerStatus, error) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	ct := c.e.containers[c.id]
	if ct == nil {
		return nil, fmt.Errorf("task %s: %w", c.id, runtime.ErrContainerGone)
	}
	st := &api.ContainerStatus{ContainerId: "sim-" + c.id}
	if ct.state == exited {
		st.ExitCode = int32(ct.exitCode)
	}
	return st, nil
}
