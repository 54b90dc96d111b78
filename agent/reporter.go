package agent

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// maxReportUpdates is the most task updates one UpdateTaskStatus call
// carries.
const maxReportUpdates = 1000

// reporter sends the tasks' status changes to the managers. A change
// after a quiet spell goes at once (a task start is not held back);
// after each send the reporter waits the report interval, so changes
// that come meanwhile gather and go in one call, only the latest status
// of each task. A failed call is retried, after a pause that grows while
// nothing works, with whatever is latest by then. Reports are
// idempotent, so sending one twice does no harm.
type reporter struct {
	a        *Agent
	interval time.Duration

	mu      sync.Mutex
	pending map[string]*api.TaskStatus
	wake    chan struct{}
}

func newReporter(a *Agent) *reporter {
	return &reporter{a: a, interval: a.cfg.ReportInterval, pending: map[string]*api.TaskStatus{}, wake: make(chan struct{}, 1)}
}

// report queues a task's status; it replaces a queued older one.
func (r *reporter) report(id string, st *api.TaskStatus) {
	r.mu.Lock()
	r.pending[id] = st
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run sends queued reports until ctx ends.
func (r *reporter) run(ctx context.Context) {
	retry := minRetry
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		for {
			batch := r.take()
			if len(batch) == 0 {
				break
			}
			if err := r.send(ctx, batch); err != nil {
				r.putBack(batch)
				if ctx.Err() != nil {
					return
				}
				r.a.cfg.Logger.Warn("report task status; retrying", "tasks", len(batch), "err", err, "retry", retry)
				if !sleep(ctx, retry) {
					return
				}
				retry = min(2*retry, maxRetry)
				continue
			}
			retry = minRetry
		}
		// Rate-limit: what arrives now waits for the next round.
		if !sleep(ctx, r.interval) {
			return
		}
	}
}

func (r *reporter) take() map[string]*api.TaskStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return nil
	}
	batch := r.pending
	r.pending = map[string]*api.TaskStatus{}
	return batch
}

// putBack queues a batch that failed again, under newer reports.
func (r *reporter) putBack(batch map[string]*api.TaskStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, st := range batch {
		if _, newer := r.pending[id]; !newer {
			r.pending[id] = st
		}
	}
}

// send reports a batch, maxReportUpdates per call.
func (r *reporter) send(ctx context.Context, batch map[string]*api.TaskStatus) error {
	ids := slices.Sorted(maps.Keys(batch))
	for chunk := range slices.Chunk(ids, maxReportUpdates) {
		req := &api.UpdateTaskStatusRequest{NodeId: r.a.cfg.NodeID}
		for _, id := range chunk {
			req.Updates = append(req.Updates, &api.TaskStatusUpdate{TaskId: id, Status: batch[id]})
		}
		if err := r.a.updateTaskStatus(ctx, req); err != nil {
			return err
		}
	}
	return nil
}
