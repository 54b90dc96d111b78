package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// Advance performs the next step of task t, whose observed status is cur,
// toward its desired state, through its controller, and returns the new
// status. It changes one state at a time; the caller records (persists,
// reports) each status it returns and calls Advance again.
//
// With a desired state of RUNNING the steps are: anything before ACCEPTED
// → ACCEPTED → PREPARING → (Prepare) READY → STARTING → (Start) RUNNING →
// (Wait) COMPLETE for exit code 0, FAILED otherwise. When the controller
// is a HealthChecker and the task has a health check, the STARTING step
// is Start then Health: it gives STARTING again with health "starting"
// (recorded once), then RUNNING with health "healthy" once the check
// passes; a task found unhealthy, at STARTING (by Health) or RUNNING (by
// Wait), is stopped (Shutdown, or Terminate) and FAILED with health
// "unhealthy" and the controller's reason in Status.Err; a task that
// exits before it is healthy ends as its exit code says. A desired state
// below RUNNING (READY: a restart delay) holds the task at READY. A
// desired state above RUNNING (SHUTDOWN, REMOVE) stops the task:
// (Shutdown, or Terminate if Shutdown fails) SHUTDOWN; a task that was
// never prepared goes to SHUTDOWN without calling the controller. A
// failed Prepare gives REJECTED, a failed Start or Wait FAILED, with the
// error in Status.Err. A finished task (COMPLETE, SHUTDOWN, FAILED,
// REJECTED or later) never changes again.
//
// Errors leave the task in cur and return a nil status: ErrNoop when
// there is nothing to do until the desired state changes; ctx.Err() when
// ctx ended during a step (it is safe to call again: controllers are
// idempotent); any other error (an ErrTemporary from the controller, a
// failed stop) when the same step should be tried again after a pause.
//
// The returned status is a new object; Advance never changes t or cur.
func Advance(ctx context.Context, t *api.Task, cur *api.TaskStatus, c Controller) (*api.TaskStatus, error) {
	state := cur.GetState()
	desired := t.GetDesiredState()
	if state > api.TaskState_TASK_STATE_RUNNING {
		return nil, ErrNoop
	}
	if desired > api.TaskState_TASK_STATE_RUNNING {
		return stop(ctx, cur, c)
	}
	switch state {
	case api.TaskState_TASK_STATE_ACCEPTED:
		return next(cur, api.TaskState_TASK_STATE_PREPARING, "preparing"), nil
	case api.TaskState_TASK_STATE_PREPARING:
		if err := c.Prepare(ctx); err != nil {
			return failed(ctx, cur, api.TaskState_TASK_STATE_REJECTED, "prepare", err)
		}
		return next(cur, api.TaskState_TASK_STATE_READY, "prepared"), nil
	case api.TaskState_TASK_STATE_READY:
		if desired < api.TaskState_TASK_STATE_RUNNING {
			return nil, ErrNoop
		}
		return next(cur, api.TaskState_TASK_STATE_STARTING, "starting"), nil
	case api.TaskState_TASK_STATE_STARTING:
		if err := c.Start(ctx); err != nil {
			return failed(ctx, cur, api.TaskState_TASK_STATE_FAILED, "start", err)
		}
		health := HealthNone
		if hc, ok := c.(HealthChecker); ok {
			h, err := hc.Health(ctx, cur.GetHealth())
			switch {
			case errors.Is(err, ErrUnhealthy):
				return unhealthy(ctx, cur, c, err)
			case errors.Is(err, ErrTaskExited):
				code, werr := c.Wait(ctx)
				if werr != nil {
					return failedWait(ctx, cur, code, werr)
				}
				return exited(cur, code), nil
			case err != nil:
				return failed(ctx, cur, api.TaskState_TASK_STATE_FAILED, "health check", err)
			case h == HealthStarting:
				st := next(cur, api.TaskState_TASK_STATE_STARTING, "started; waiting for the health check to pass")
				st.Health = HealthStarting
				return st, nil
			}
			health = h
		}
		st := next(cur, api.TaskState_TASK_STATE_RUNNING, "started")
		st.Health = health
		if cs, ok := c.(ContainerStatuser); ok {
			if container, err := cs.ContainerStatus(ctx); err == nil && container != nil {
				st.Container = container
			}
		}
		return st, nil
	case api.TaskState_TASK_STATE_RUNNING:
		code, err := c.Wait(ctx)
		if errors.Is(err, ErrUnhealthy) {
			return unhealthy(ctx, cur, c, err)
		}
		if err != nil {
			return failedWait(ctx, cur, code, err)
		}
		return exited(cur, code), nil
	}
	// NEW, PENDING, ASSIGNED: the agent takes the task.
	return next(cur, api.TaskState_TASK_STATE_ACCEPTED, "accepted"), nil
}

// stop brings a task that has not finished to SHUTDOWN.
func stop(ctx context.Context, cur *api.TaskStatus, c Controller) (*api.TaskStatus, error) {
	if cur.GetState() < api.TaskState_TASK_STATE_PREPARING {
		return next(cur, api.TaskState_TASK_STATE_SHUTDOWN, "shut down before it was prepared"), nil
	}
	if err := c.Shutdown(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if terr := c.Terminate(ctx); terr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("stop task: shutdown: %w; terminate: %w", err, terr)
		}
	}
	return next(cur, api.TaskState_TASK_STATE_SHUTDOWN, "shutdown"), nil
}

// unhealthy stops a task whose health check failed (Shutdown, or
// Terminate if Shutdown fails) and fails it with cause's text and health
// "unhealthy". A stop that fails leaves the task in cur and returns an
// error, to try the step again.
func unhealthy(ctx context.Context, cur *api.TaskStatus, c Controller, cause error) (*api.TaskStatus, error) {
	if err := c.Shutdown(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if terr := c.Terminate(ctx); terr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("stop unhealthy task: shutdown: %w; terminate: %w", err, terr)
		}
	}
	st := next(cur, api.TaskState_TASK_STATE_FAILED, "stopped: health check failed")
	st.Err = cause.Error()
	st.Health = HealthUnhealthy
	return st, nil
}

// failed turns a controller error into the task's end (state), or into
// an error to retry when it is temporary or ctx ended.
func failed(ctx context.Context, cur *api.TaskStatus, state api.TaskState, step string, err error) (*api.TaskStatus, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, ErrTemporary) {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	st := next(cur, state, step+" failed")
	st.Err = err.Error()
	return st, nil
}

// failedWait is the end of a task whose Wait failed; the exit code Wait
// still returned (an OOM kill: 137 with ErrOOMKilled) is recorded.
func failedWait(ctx context.Context, cur *api.TaskStatus, code int, err error) (*api.TaskStatus, error) {
	st, err := failed(ctx, cur, api.TaskState_TASK_STATE_FAILED, "wait", err)
	if st != nil && code != 0 {
		if st.Container == nil {
			st.Container = &api.ContainerStatus{}
		}
		st.Container.ExitCode = int32(code)
		st.Container.Pid = 0
	}
	return st, err
}

// exited is the status of a task whose process exited with code.
func exited(cur *api.TaskStatus, code int) *api.TaskStatus {
	var st *api.TaskStatus
	if code == 0 {
		st = next(cur, api.TaskState_TASK_STATE_COMPLETE, "finished")
	} else {
		st = next(cur, api.TaskState_TASK_STATE_FAILED, "task exited with a non-zero code")
		st.Err = fmt.Sprintf("exit code %d", code)
	}
	if st.Container == nil {
		st.Container = &api.ContainerStatus{}
	}
	st.Container.ExitCode = int32(code)
	st.Container.Pid = 0
	return st
}

// next is cur moved to state, stamped now, without an error.
func next(cur *api.TaskStatus, state api.TaskState, msg string) *api.TaskStatus {
	st := &api.TaskStatus{}
	if cur != nil {
		st = proto.Clone(cur).(*api.TaskStatus)
	}
	st.State = state
	st.Message = msg
	st.Err = ""
	st.Timestamp = time.Now().UnixNano()
	return st
}
