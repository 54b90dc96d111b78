// Package runtime is the seam between the agent and whatever runs task
// containers: an Executor makes a Controller per task, and Advance drives
// a task one step toward its desired state through its controller.
//
// The agent owns the task's state; the controller owns the container. The
// agent calls a controller from one goroutine at a time (one task, one
// driver), but may cancel any call's context when the task's desired
// state changes or the agent stops, and may call any method again after
// a cancelled or failed call, or after an agent restart on a new
// controller for the same task. Controllers must therefore be idempotent:
//
//   - Prepare on a task already prepared (or started) succeeds and does
//     nothing.
//   - Start on a task already started succeeds and does nothing: a
//     controller never runs a second instance of a task ID.
//   - Shutdown and Terminate on a task that never started, or has already
//     stopped, succeed.
//   - Remove may be called after any other method, or none, and succeeds
//     when there is nothing to remove.
//
// Errors: a controller wraps ErrTemporary when the same call may succeed
// later (the runtime is unreachable, say): the agent keeps the task where
// it is and retries. Any other error is permanent for the step: a failed
// Prepare rejects the task (REJECTED; ErrTaskRejected says so explicitly),
// a failed Start or Wait fails it (FAILED). The orchestrator, not the
// agent, decides whether to replace a failed task.
//
// After an agent restart the agent makes a new controller for each task
// it had persisted and, when the controller implements Reattacher, first
// tells it the last status it observed, so the controller can find the
// task's container again instead of making a new one.
//
// Health checks: a controller whose tasks may have a health check
// implements HealthChecker. Advance then holds a started task at STARTING
// (TaskStatus.health "starting") until the check first passes, moves it
// to RUNNING ("healthy") only then, and stops a task that turns unhealthy
// (while starting or running) and fails it (FAILED, health "unhealthy",
// err "container unhealthy: REASON"). Tasks without a check, and
// controllers that do not implement HealthChecker, go to RUNNING as soon
// as Start returns.
package runtime

import (
	"context"
	"errors"

	"github.com/shoalhq/shoal/proto/api"
)

// Sentinel errors. Controllers wrap them (fmt.Errorf("%w: ...", ...)) so
// that the agent and Advance can tell kinds of failure apart with
// errors.Is.
var (
	// ErrTaskRejected means the task cannot be prepared on this node at
	// all (an image that does not exist, a spec the runtime refuses): the
	// task is REJECTED and is not retried here.
	ErrTaskRejected = errors.New("task rejected: it cannot be prepared on this node")
	// ErrTemporary means a call failed for a reason that may pass (the
	// runtime is unreachable or busy): the task stays in its state and the
	// same step is tried again later.
	ErrTemporary = errors.New("temporary runtime failure")
	// ErrContainerGone means the task's container does not exist (it was
	// removed behind the agent's back, or did not survive a restart): a
	// task that was running is FAILED.
	ErrContainerGone = errors.New("the task's container no longer exists")
	// ErrUnhealthy means the task's health check failed `retries` times
	// in a row: the task is stopped and FAILED. Controllers wrap it as
	// fmt.Errorf("%w: %s", ErrUnhealthy, reason), which reads
	// "container unhealthy: REASON", the task's status.err.
	ErrUnhealthy = errors.New("container unhealthy")
	// ErrTaskExited is wrapped by HealthChecker.Health when the task's
	// process exited before its health changed: Advance then gets the
	// exit code from Wait.
	ErrTaskExited = errors.New("the task's process exited")
	// ErrNoop is returned by Advance when the task needs no step until
	// its desired state changes: it is finished, or prepared and held at
	// READY.
	ErrNoop = errors.New("nothing to do until the desired state changes")
)

// Executor makes controllers for tasks. It is shared by every task of a
// node and must be safe for concurrent use.
type Executor interface {
	// Describe returns what the executor knows of the node (resources,
	// platform, engine labels). Fields it does not know are left empty;
	// the agent fills them from its own configuration.
	Describe(ctx context.Context) (*api.NodeDescription, error)
	// Controller returns the controller of a task. It does no work on the
	// runtime: containers are made by Prepare. Calling it again for the
	// same task ID (after an agent restart) returns a controller of the
	// same container. The task is read-only. A task that can never run
	// here fails with an error wrapping ErrTaskRejected.
	Controller(t *api.Task) (Controller, error)
}

// Controller runs one task's container. See the package comment for the
// idempotence every method owes the agent.
type Controller interface {
	// Prepare makes everything the task needs short of starting it: the
	// image pulled, the container created, its sandbox made.
	Prepare(ctx context.Context) error
	// Start starts the prepared task and returns once its process runs
	// (its health check, if any, then begins; see HealthChecker).
	Start(ctx context.Context) error
	// Wait blocks until the task's process exits and returns its exit
	// code with a nil error. It fails with ctx.Err() when ctx ends first
	// (the task keeps running), with an error wrapping ErrUnhealthy as
	// soon as its health check finds it unhealthy (the task keeps running:
	// the caller stops it), and with ErrContainerGone when there is
	// nothing to wait for.
	Wait(ctx context.Context) (exitCode int, err error)
	// Shutdown stops the task gracefully: the spec's stop signal, then
	// its stop grace period, then a kill. It returns once the process has
	// exited.
	Shutdown(ctx context.Context) error
	// Terminate kills the task at once. It returns once the process has
	// exited.
	Terminate(ctx context.Context) error
	// Remove deletes the task's container and whatever Prepare made. The
	// agent calls it only when the task is stopped or never started.
	Remove(ctx context.Context) error
	// Close releases the controller's own resources (not the container).
	// The controller is not used afterwards.
	Close() error
}

// Reattacher is implemented by controllers that need to be told, after an
// agent restart, what the agent last observed of their task. The agent
// calls Reattach once, before any other method, for each task it had
// persisted, with the last status it recorded: a controller finds the
// task's container again (or learns it has none, in which case Wait
// fails with ErrContainerGone). Controllers whose runtime keeps its own
// records (containerd) can find their container without it.
type Reattacher interface {
	Reattach(ctx context.Context, last *api.TaskStatus) error
}

// ContainerStatuser is implemented by controllers that can describe the
// task's container (its ID and process); Advance records it in the task
// status once the task runs.
type ContainerStatuser interface {
	ContainerStatus(ctx context.Context) (*api.ContainerStatus, error)
}

// Health states of TaskStatus.health.
const (
	// HealthNone: the task has no health check.
	HealthNone = ""
	// HealthStarting: the check has not passed yet.
	HealthStarting = "starting"
	// HealthHealthy: the last check passed, or fewer than `retries`
	// checks have failed in a row since.
	HealthHealthy = "healthy"
	// HealthUnhealthy: `retries` checks in a row failed after the start
	// period (or after the first success). Final for the task.
	HealthUnhealthy = "unhealthy"
)

// HealthChecker is implemented by controllers that run health checks.
// Advance calls Health after every successful Start of a task at
// STARTING, so the task reaches RUNNING only once healthy.
type HealthChecker interface {
	// Health returns the started task's health once it differs from
	// last (the health the caller last recorded), blocking until then or
	// until ctx ends (ctx.Err()). It returns HealthNone at once, whatever
	// last is, when the task has no health check. A task that turned
	// unhealthy gives HealthUnhealthy with an error wrapping ErrUnhealthy
	// whose text is the reason; a task whose process exited first fails
	// with an error wrapping ErrTaskExited. Failures of the runtime wrap
	// ErrTemporary as elsewhere. After an agent restart the health is
	// learnt again from new probes.
	Health(ctx context.Context, last string) (string, error)
}

// Network wires a task's network namespace to the networks the task
// attaches to on this host (the overlay). Executors that make a network
// namespace per task call Attach once it exists, before the container
// starts (again after an agent restart: Attach is idempotent), and
// Detach before they remove it.
type Network interface {
	// Attach gives the namespace at nsPath the task's interfaces,
	// addresses, routes, VIP rules and DNS server, and returns the path
	// of the resolv.conf to mount in the container ("" when the task has
	// no network). A network the host does not know yet is a temporary
	// failure.
	Attach(ctx context.Context, t *api.Task, nsPath string) (resolvConf string, err error)
	// Detach undoes Attach; idempotent.
	Detach(ctx context.Context, t *api.Task, nsPath string) error
}
