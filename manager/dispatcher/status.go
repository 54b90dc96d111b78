package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// maxWriteAttempts bounds the retries of one status transaction that
// keeps losing compare-and-swap races.
const maxWriteAttempts = 10

// statusRequest is one UpdateTaskStatus call waiting for its write.
type statusRequest struct {
	node    string
	updates []*api.TaskStatusUpdate
	done    chan error // receives the outcome once
}

// Stats counts the dispatcher's status work since it was made.
type Stats struct {
	// StatusUpdates is the number of task status updates received.
	StatusUpdates uint64
	// StatusWrites is the number of store transactions that wrote them.
	StatusWrites uint64
	// StatusWritten is the number of task writes those transactions made
	// (updates that were not ignored and changed something).
	StatusWritten uint64
}

type stats struct {
	updates, writes, written atomic.Uint64
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{
		StatusUpdates: d.stats.updates.Load(),
		StatusWrites:  d.stats.writes.Load(),
		StatusWritten: d.stats.written.Load(),
	}
}

// UpdateTaskStatus writes a node's task status reports and returns once
// they are committed, or failed. Reports of every node that arrive while
// a batch is being written, or in the StatusBatchInterval after it, are
// gathered (up to StatusBatchSize) and written together; a report after
// a quiet spell is written at once. StatusBatchSize tasks go per store
// transaction, each
// transaction re-reading the tasks and retried on fresh state when
// another write got in first.
//
// Only the status is written, and a report is ignored (without failing
// the call) when the task is gone, is not on the reporting node, or the
// report is not news: a state before ACCEPTED, a state behind the
// task's, a different ending for a finished task, or the same status
// again (the timestamp aside). Reports are idempotent: an agent that
// retries after an error cannot do harm.
//
// Fails with ErrNotRunning when Run is not running (or stops before the
// write), ErrNodeRemoved for an unknown node, ctx.Err() when ctx ends
// first (the reports may still be written), and the store's error when
// the write failed (it may have been applied if the error is not one of
// the store's sentinels).
func (d *Dispatcher) UpdateTaskStatus(ctx context.Context, req *api.UpdateTaskStatusRequest) error {
	rs := d.current()
	if rs == nil {
		return ErrNotRunning
	}
	var node *api.Node
	d.cfg.Store.View(func(tx store.ReadTx) { node = tx.GetNode(req.GetNodeId()) })
	if node == nil {
		return fmt.Errorf("node %s: %w", req.GetNodeId(), ErrNodeRemoved)
	}
	if len(req.GetUpdates()) == 0 {
		return nil
	}
	d.stats.updates.Add(uint64(len(req.GetUpdates())))
	r := &statusRequest{node: req.GetNodeId(), updates: req.GetUpdates(), done: make(chan error, 1)}
	select {
	case rs.statusCh <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-rs.ctx.Done():
		return ErrNotRunning
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runStatusWriter gathers status requests and hands them to one writer at
// a time. A request after a quiet spell is written at once (a task start
// is not held back); after each write the writer rests for
// StatusBatchInterval, so requests that come meanwhile gather into one
// batch, which goes when the rest is over or StatusBatchSize updates
// wait. When rs.ctx ends it waits for the writer and fails what waits
// with ErrNotRunning.
func (d *Dispatcher) runStatusWriter(rs *runState) {
	var (
		pending []*statusRequest
		n       int
		writing bool
		resting bool
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	written := make(chan struct{}, 1)
	for {
		select {
		case r := <-rs.statusCh:
			pending = append(pending, r)
			n += len(r.updates)
		case <-timer.C:
			resting = false
		case <-written:
			writing, resting = false, true
			timer.Reset(d.cfg.StatusBatchInterval)
		case <-rs.ctx.Done():
			if writing {
				<-written
			}
			for _, r := range pending {
				r.done <- ErrNotRunning
			}
			return
		}
		if writing || len(pending) == 0 || (resting && n < d.cfg.StatusBatchSize) {
			continue
		}
		batch := pending
		pending, n, writing = nil, 0, true
		go func() {
			d.writeStatuses(rs.ctx, batch)
			written <- struct{}{}
		}()
	}
}

// statusUpdate is one task's report in a batch.
type statusUpdate struct {
	node, task string
	status     *api.TaskStatus
}

// writeStatuses writes a batch, StatusBatchSize tasks per transaction,
// and tells each request the outcome of the transactions that carried its
// updates.
func (d *Dispatcher) writeStatuses(ctx context.Context, batch []*statusRequest) {
	// The latest report per task and node wins: the highest state, and
	// of equal states the later one.
	type key struct{ node, task string }
	pos := map[key]int{}
	var ups []statusUpdate
	reqKeys := make([][]key, len(batch))
	for i, r := range batch {
		for _, u := range r.updates {
			if u.GetTaskId() == "" || u.GetStatus() == nil {
				continue
			}
			k := key{r.node, u.GetTaskId()}
			reqKeys[i] = append(reqKeys[i], k)
			if j, ok := pos[k]; ok {
				if u.GetStatus().GetState() >= ups[j].status.GetState() {
					ups[j].status = u.GetStatus()
				}
				continue
			}
			pos[k] = len(ups)
			ups = append(ups, statusUpdate{node: r.node, task: u.GetTaskId(), status: u.GetStatus()})
		}
	}
	failed := map[key]error{}
	for chunk := range slices.Chunk(ups, d.cfg.StatusBatchSize) {
		if err := d.writeStatusChunk(ctx, chunk); err != nil {
			d.cfg.Logger.Warn("write task status", "updates", len(chunk), "err", err)
			for _, u := range chunk {
				failed[key{u.node, u.task}] = err
			}
		}
	}
	for i, r := range batch {
		var err error
		for _, k := range reqKeys[i] {
			if err = failed[k]; err != nil {
				break
			}
		}
		r.done <- err
	}
}

// writeStatusChunk writes the updates that are news in one transaction,
// retrying on fresh state after a compare-and-swap conflict.
func (d *Dispatcher) writeStatusChunk(ctx context.Context, ups []statusUpdate) error {
	for attempt := 1; ; attempt++ {
		written := 0
		err := d.cfg.Store.Update(ctx, func(tx store.Tx) error {
			written = 0
			for _, u := range ups {
				t := tx.GetTask(u.task)
				if t == nil || t.GetNodeId() != u.node || !isNews(t.GetStatus(), u.status) {
					continue
				}
				nt := proto.Clone(t).(*api.Task)
				nt.Status = u.status // Update stores a clone
				if err := tx.UpdateTask(nt); err != nil {
					return err
				}
				written++
			}
			return nil
		})
		if err == nil {
			if written > 0 {
				d.stats.writes.Add(1)
				d.stats.written.Add(uint64(written))
			}
			return nil
		}
		if errors.Is(err, store.ErrSequenceConflict) && attempt < maxWriteAttempts {
			continue
		}
		if ctx.Err() != nil {
			// Leadership ended during the write: ask the next leader.
			return fmt.Errorf("%w: %v", ErrNotRunning, err)
		}
		return err
	}
}

// isNews reports whether an agent's report nu should replace the task's
// status cur: agents report ACCEPTED onwards, states only move forward,
// a finished task keeps its ending, and a report of the same status
// (timestamp aside) changes nothing.
func isNews(cur, nu *api.TaskStatus) bool {
	switch s, c := nu.GetState(), cur.GetState(); {
	case s < api.TaskState_TASK_STATE_ACCEPTED, s < c:
		return false
	case c > api.TaskState_TASK_STATE_RUNNING && s != c:
		return false
	case s == c:
		return !sameStatus(cur, nu)
	}
	return true
}

// sameStatus compares two statuses but for their timestamps.
func sameStatus(a, b *api.TaskStatus) bool {
	return a.GetState() == b.GetState() &&
		a.GetMessage() == b.GetMessage() &&
		a.GetErr() == b.GetErr() &&
		a.GetHealth() == b.GetHealth() &&
		proto.Equal(a.GetContainer(), b.GetContainer()) &&
		slices.EqualFunc(a.GetPorts(), b.GetPorts(), func(x, y *api.PortConfig) bool { return proto.Equal(x, y) })
}
