package agent

import (
	"context"
	"maps"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// worker is the node's task table: one driver per assigned task, fed by
// the assignments stream and by the persisted state at start.
type worker struct {
	a   *Agent
	db  taskDB
	rep *reporter

	// ctx is Run's context, the drivers' lifetime; set by load.
	ctx context.Context

	mu    sync.Mutex
	tasks map[string]*taskDriver
	wg    sync.WaitGroup
}

func newWorker(a *Agent, db taskDB) *worker {
	return &worker{a: a, db: db, rep: newReporter(a), tasks: map[string]*taskDriver{}}
}

// load resumes the persisted tasks: each gets a driver that first
// reattaches to it, and its last status is reported again (the managers
// ignore what they already have). The persisted tasks are kept until a
// COMPLETE message says whether they are still assigned.
func (w *worker) load(ctx context.Context) error {
	w.ctx = ctx
	persisted, err := w.db.load()
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range persisted {
		st := p.status
		if st == nil {
			st = p.task.GetStatus()
		}
		w.startLocked(p.task, st, true)
		if p.status != nil {
			w.rep.report(p.task.GetId(), p.status)
		}
	}
	if len(persisted) > 0 {
		w.a.cfg.Logger.Info("resumed persisted tasks", "tasks", len(persisted))
	}
	return nil
}

// apply applies one assignments message: it persists the tasks it
// carries, updates or starts their drivers, and has the drivers of
// removed tasks (listed in remove_tasks, or absent from a COMPLETE
// message) stop and remove them.
func (w *worker) apply(msg *api.AssignmentsMessage) {
	if err := w.db.putTasks(msg.UpdateTasks); err != nil {
		// Keep going: running the assignment matters more; a restart
		// without the record learns it from the managers again.
		w.a.cfg.Logger.Error("persist assignments", "err", err)
	}
	if o := w.a.cfg.Overlay; o != nil {
		// Before the tasks: a task's networks must be known when it is
		// prepared.
		o.UpdateNetworks(msg.UpdateNetworks, msg.RemoveNetworks, msg.Type == api.AssignmentsMessage_TYPE_COMPLETE)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	assigned := make(map[string]bool, len(msg.UpdateTasks))
	for _, t := range msg.UpdateTasks {
		assigned[t.GetId()] = true
		if d := w.tasks[t.GetId()]; d != nil {
			d.update(t)
			continue
		}
		// A task new to this agent. A status past ASSIGNED means an
		// earlier agent on this node worked on it (one without a state
		// directory): reattach from the managers' record.
		st := t.GetStatus()
		w.startLocked(t, st, st.GetState() > api.TaskState_TASK_STATE_ASSIGNED)
	}
	for _, id := range msg.RemoveTasks {
		if d := w.tasks[id]; d != nil {
			d.remove()
		}
	}
	if msg.Type == api.AssignmentsMessage_TYPE_COMPLETE {
		for id, d := range w.tasks {
			if !assigned[id] {
				d.remove()
			}
		}
	}
}

// startLocked starts the driver of a task; w.mu is held.
func (w *worker) startLocked(t *api.Task, st *api.TaskStatus, reattach bool) {
	if st == nil {
		st = &api.TaskStatus{}
	}
	d := &taskDriver{
		w: w, id: t.GetId(), task: t, status: proto.Clone(st).(*api.TaskStatus),
		reattach: reattach, kick: make(chan struct{}, 1),
	}
	w.tasks[d.id] = d
	w.wg.Go(func() { d.run(w.ctx) })
}

// forget drops a driver whose task was removed. When the task was
// assigned again meanwhile, a new driver takes it from the final status
// the old one reached (a finished task is not started again).
func (w *worker) forget(d *taskDriver) {
	if err := w.db.remove(d.id); err != nil {
		w.a.cfg.Logger.Error("forget task", "task", d.id, "err", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tasks[d.id] != d {
		return
	}
	delete(w.tasks, d.id)
	d.mu.Lock()
	again, st := d.reassigned, d.status
	d.mu.Unlock()
	if again != nil && w.ctx.Err() == nil {
		if err := w.db.putTasks([]*api.Task{again}); err == nil {
			_ = w.db.putStatus(again.GetId(), st)
		}
		w.startLocked(again, st, true)
	}
}

// wait waits for every driver to return (after Run's context ended).
func (w *worker) wait() { w.wg.Wait() }

// states returns each task's last observed state.
func (w *worker) states() map[string]api.TaskState {
	w.mu.Lock()
	drivers := slices.Collect(maps.Values(w.tasks))
	w.mu.Unlock()
	out := make(map[string]api.TaskState, len(drivers))
	for _, d := range drivers {
		d.mu.Lock()
		out[d.id] = d.status.GetState()
		d.mu.Unlock()
	}
	return out
}

// TaskStates returns the last observed state of each task the agent
// drives, by task ID (empty without an Executor or before Run).
func (a *Agent) TaskStates() map[string]api.TaskState {
	a.mu.Lock()
	w := a.worker
	a.mu.Unlock()
	if w == nil {
		return map[string]api.TaskState{}
	}
	return w.states()
}
