package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/proto/api"
)

// Retry pauses of a task step that failed for now.
const (
	minStepRetry = 100 * time.Millisecond
	maxStepRetry = 10 * time.Second
)

// taskDriver is the one goroutine that drives one task through its
// controller. Only it calls the controller, so a task ID never has two
// instances started by this agent.
type taskDriver struct {
	w  *worker
	id string
	// reattach asks the controller to find the task's existing container
	// before anything else (set for tasks an earlier agent worked on).
	reattach bool
	kick     chan struct{} // wakes the driver: the task changed

	mu     sync.Mutex
	task   *api.Task       // the latest assignment
	status *api.TaskStatus // the last observed status
	// removed is set when the task is no longer assigned: the driver
	// stops it, removes it and returns. reassigned is the task when it
	// was assigned again meanwhile.
	removed    bool
	reassigned *api.Task
	// interrupt cancels the step in progress, while one runs.
	interrupt context.CancelFunc
	// containerRemoved is set once Remove succeeded for a task whose
	// desired state is REMOVE.
	containerRemoved bool
	// published is set while the task's endpoints are in the overlay's
	// table (only the driver goroutine touches it).
	published bool
	// drained is set once the task has been held running for its drain
	// (only the driver goroutine touches it).
	drained bool
}

// update takes a new version of the task. A desired state that now asks
// the task to stop interrupts the step in progress (a Wait, a Start).
func (d *taskDriver) update(t *api.Task) {
	d.mu.Lock()
	if d.removed {
		d.reassigned = t
		d.mu.Unlock()
		return
	}
	stop := t.GetDesiredState() > api.TaskState_TASK_STATE_RUNNING && d.task.GetDesiredState() <= api.TaskState_TASK_STATE_RUNNING
	d.task = t
	if stop && d.interrupt != nil {
		d.interrupt()
	}
	d.mu.Unlock()
	d.wake()
}

// remove has the driver stop and remove the task, then forget it.
func (d *taskDriver) remove() {
	d.mu.Lock()
	d.removed = true
	d.reassigned = nil
	if d.interrupt != nil {
		d.interrupt()
	}
	d.mu.Unlock()
	d.wake()
}

func (d *taskDriver) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// run drives the task until it is removed or ctx ends (the agent stops:
// the task is left as it is).
func (d *taskDriver) run(ctx context.Context) {
	log := d.w.a.cfg.Logger.With("task", d.id)
	d.mu.Lock()
	task := d.task
	d.mu.Unlock()
	ctlr, err := d.w.a.cfg.Executor.Controller(task)
	if err != nil {
		d.runWithout(ctx, err)
		return
	}
	defer ctlr.Close()
	if r, ok := ctlr.(runtime.Reattacher); ok && d.reattach {
		d.mu.Lock()
		st := d.status
		d.mu.Unlock()
		if err := r.Reattach(ctx, st); err != nil {
			log.Warn("reattach task", "state", st.GetState().String(), "err", err)
		}
	}
	retry := minStepRetry
	for ctx.Err() == nil {
		d.mu.Lock()
		task, st, removed := d.task, d.status, d.removed
		d.mu.Unlock()
		// Endpoints leave discovery before a stop step, and enter it
		// after the step that made the task run (the next loop).
		settled := d.syncEndpoints(ctx, task, st, removed, log)
		d.drain(ctx, task, st, removed, settled, log)
		d.mu.Lock()
		if removed {
			d.mu.Unlock()
			d.finish(ctx, ctlr, st)
			return
		}
		stepCtx, cancel := context.WithCancel(ctx)
		d.interrupt = cancel
		d.mu.Unlock()

		next, err := runtime.Advance(stepCtx, task, st, ctlr)
		interrupted := stepCtx.Err() != nil
		d.mu.Lock()
		d.interrupt = nil
		d.mu.Unlock()
		cancel()

		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			d.record(next)
			retry = minStepRetry
		case errors.Is(err, runtime.ErrNoop):
			d.removeContainer(ctx, ctlr, task, log)
			d.idle(ctx, 0)
		case interrupted:
			// The desired state changed under the step: look again.
		default:
			log.Warn("task step failed; retrying", "state", st.GetState().String(), "err", err, "retry", retry)
			d.idle(ctx, retry)
			retry = min(2*retry, maxStepRetry)
		}
	}
}

// syncEndpoints publishes the task's endpoints while it runs, is healthy
// and is meant to run, and withdraws them otherwise; a running task then
// keeps running for EndpointSettle before it is stopped. It returns how
// long it held the task.
func (d *taskDriver) syncEndpoints(ctx context.Context, task *api.Task, st *api.TaskStatus, removed bool, log *slog.Logger) time.Duration {
	o := d.w.a.cfg.Overlay
	if o == nil || len(task.GetNetworks()) == 0 {
		return 0
	}
	want := !removed && st.GetState() == api.TaskState_TASK_STATE_RUNNING &&
		task.GetDesiredState() <= api.TaskState_TASK_STATE_RUNNING && st.GetHealth() != runtime.HealthUnhealthy
	if want == d.published {
		return 0
	}
	var err error
	if want {
		err = o.Publish(task)
	} else {
		err = o.Withdraw(task.GetId())
	}
	if err != nil {
		log.Warn("task endpoints", "publish", want, "err", err)
		return 0
	}
	d.published = want
	if want || st.GetState() != api.TaskState_TASK_STATE_RUNNING {
		return 0
	}
	// Let every host learn it before the task stops answering.
	settle := d.w.a.cfg.EndpointSettle
	if settle == 0 {
		settle = DefaultEndpointSettle
	}
	hold(ctx, settle)
	return settle
}

// drain keeps a running task that is to stop in place for its drain (set
// by the orchestrator when it replaces the task), less what the endpoint
// settle already held it, so the requests it holds can finish before its
// stop signal. A task no longer assigned is not held.
func (d *taskDriver) drain(ctx context.Context, task *api.Task, st *api.TaskStatus, removed bool, settled time.Duration, log *slog.Logger) {
	if d.drained || removed || task.GetDrain() <= 0 || st.GetState() != api.TaskState_TASK_STATE_RUNNING ||
		task.GetDesiredState() <= api.TaskState_TASK_STATE_RUNNING {
		return
	}
	d.drained = true
	if left := time.Duration(task.GetDrain()) - settled; left > 0 {
		log.Info("draining the task before its stop signal", "drain", time.Duration(task.GetDrain()))
		hold(ctx, left)
	}
}

// hold waits for d or until ctx ends.
func hold(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// runWithout handles a task the executor gave no controller for: it is
// rejected (or failed, if it had started under an earlier agent) and
// forgotten once removed.
func (d *taskDriver) runWithout(ctx context.Context, cause error) {
	d.mu.Lock()
	st := d.status
	d.mu.Unlock()
	if st.GetState() <= api.TaskState_TASK_STATE_RUNNING {
		next := proto.Clone(st).(*api.TaskStatus)
		next.State = api.TaskState_TASK_STATE_REJECTED
		if st.GetState() >= api.TaskState_TASK_STATE_STARTING {
			next.State = api.TaskState_TASK_STATE_FAILED
		}
		next.Message = "no controller for the task"
		next.Err = cause.Error()
		next.Timestamp = time.Now().UnixNano()
		d.record(next)
	}
	for ctx.Err() == nil {
		d.mu.Lock()
		removed := d.removed
		d.mu.Unlock()
		if removed {
			d.w.forget(d)
			return
		}
		d.idle(ctx, 0)
	}
}

// record makes next the task's status: persisted first, then reported.
func (d *taskDriver) record(next *api.TaskStatus) {
	if err := d.w.db.putStatus(d.id, next); err != nil {
		d.w.a.cfg.Logger.Error("persist task status", "task", d.id, "err", err)
	}
	d.mu.Lock()
	d.status = next
	d.mu.Unlock()
	d.w.rep.report(d.id, next)
}

// removeContainer removes the container of a finished task whose
// desired state is REMOVE (its service is gone), once.
func (d *taskDriver) removeContainer(ctx context.Context, ctlr runtime.Controller, task *api.Task, log *slog.Logger) {
	if task.GetDesiredState() < api.TaskState_TASK_STATE_REMOVE {
		return
	}
	d.mu.Lock()
	done := d.containerRemoved
	d.mu.Unlock()
	if done {
		return
	}
	if err := ctlr.Remove(ctx); err != nil {
		log.Warn("remove task container", "err", err)
		return
	}
	d.mu.Lock()
	d.containerRemoved = true
	d.mu.Unlock()
}

// finish stops a removed task if it may run, removes its container and
// forgets it. It gives up only when ctx ends: the task stays persisted,
// and the next agent finishes the job after its first COMPLETE message.
func (d *taskDriver) finish(ctx context.Context, ctlr runtime.Controller, st *api.TaskStatus) {
	log := d.w.a.cfg.Logger.With("task", d.id)
	d.mu.Lock()
	stop := proto.Clone(d.task).(*api.Task)
	d.mu.Unlock()
	stop.DesiredState = max(stop.DesiredState, api.TaskState_TASK_STATE_SHUTDOWN)
	retry := minStepRetry
	for {
		next, err := runtime.Advance(ctx, stop, st, ctlr)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			st = next
			d.mu.Lock()
			d.status = next
			d.mu.Unlock()
			continue
		case errors.Is(err, runtime.ErrNoop):
		default:
			log.Warn("stop removed task; retrying", "err", err)
			if !sleep(ctx, retry) {
				return
			}
			retry = min(2*retry, maxStepRetry)
			continue
		}
		break
	}
	for {
		err := ctlr.Remove(ctx)
		if err == nil {
			break
		}
		log.Warn("remove task; retrying", "err", err)
		if !sleep(ctx, retry) {
			return
		}
		retry = min(2*retry, maxStepRetry)
	}
	d.w.forget(d)
}

// idle waits for a kick, or for the pause when it is not 0, or for ctx.
func (d *taskDriver) idle(ctx context.Context, pause time.Duration) {
	var timeout <-chan time.Time
	if pause > 0 {
		t := time.NewTimer(pause)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
	case <-d.kick:
	case <-timeout:
	}
}
