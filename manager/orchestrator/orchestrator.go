package orchestrator

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// DefaultFullPassInterval is how often Run reconciles every service even
// when no event says so, as a safety net for anything missed.
const DefaultFullPassInterval = 15 * time.Second

// maxPlanAttempts is how many times a service's plan is computed again
// after its commit found the state changed, within one reconcile.
const maxPlanAttempts = 5

// retryAfterError is how soon a service whose commit failed otherwise
// (for example, the leadership was lost) is tried again.
const retryAfterError = time.Second

// Config configures an Orchestrator.
type Config struct {
	// Clock is the source of time; nil means RealClock().
	Clock Clock
	// Logger receives the orchestrator's log; nil discards it.
	Logger *slog.Logger
	// FullPassInterval is how often every service is reconciled whatever
	// the events; 0 means DefaultFullPassInterval.
	FullPassInterval time.Duration
}

// Orchestrator runs the level-triggered reconcilers of every service on
// the Raft leader. It creates and deletes tasks and raises their desired
// states; the only status it writes is ORPHANED, on a replaced task of a
// DOWN node. It never places a replicated task on a node (placement
// does).
type Orchestrator struct {
	store *store.MemoryStore
	cfg   Config
	clock Clock
	log   *slog.Logger
}

// New returns an orchestrator of the services in s. It does nothing until
// Run is called.
func New(s *store.MemoryStore, cfg Config) *Orchestrator {
	if cfg.Clock == nil {
		cfg.Clock = RealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.FullPassInterval <= 0 {
		cfg.FullPassInterval = DefaultFullPassInterval
	}
	return &Orchestrator{store: s, cfg: cfg, clock: cfg.Clock, log: cfg.Logger.With("component", "orchestrator")}
}

// Run reconciles until ctx ends, and returns then. Call it on every
// leadership gain, with a ctx that ends when leadership is lost; it
// keeps no state between runs.
//
// Run lists the state and starts a watch atomically (ViewAndWatch), does
// a full pass over every service (and every service ID that tasks still
// name), then reconciles the services that events touch: a task's
// service, every service with a task on a changed node and every global
// service, every service when the cluster changes. It also reconciles a
// service when its plan's wake-up time comes (restart delays and
// windows) and everything every FullPassInterval. When the watch is
// closed under it (it fell behind, or the store was restored from a
// snapshot) events were missed: Run lists again and does a full pass.
//
// Writes go through the store's Update, so they fail on a manager that
// is no longer the leader; a commit that fails that way may or may not
// have been applied, which a later pass sees and settles.
func (o *Orchestrator) Run(ctx context.Context) {
	for ctx.Err() == nil {
		var ids []string
		events, cancel := o.store.ViewAndWatch(watched, func(tx store.ReadTx) { ids = allServiceIDs(tx) })
		r := &run{o: o, wakes: map[string]time.Time{}}
		r.reconcile(ctx, ids)
		r.follow(ctx, events)
		cancel()
	}
}

// watched selects the events the orchestrator reacts to.
func watched(ev store.Event) bool {
	switch ev.Object.(type) {
	case *api.Task, *api.Service, *api.Node, *api.Cluster:
		return true
	}
	return false
}

// allServiceIDs returns the IDs of every service and of every service
// that a task names, sorted.
func allServiceIDs(tx store.ReadTx) []string {
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, s := range tx.FindServices(store.All()) {
		add(s.GetId())
	}
	for _, t := range tx.FindTasks(store.All()) {
		add(t.GetServiceId())
	}
	slices.Sort(ids)
	return ids
}

// run is the state of one Run: when each service asked to be woken.
type run struct {
	o     *Orchestrator
	wakes map[string]time.Time
}

// follow reacts to events, wake-ups and the full-pass interval until ctx
// ends or the watch is closed.
func (r *run) follow(ctx context.Context, events <-chan store.Event) {
	o := r.o
	nextFull := o.clock.Now().Add(o.cfg.FullPassInterval)
	for {
		at := nextFull
		for _, w := range r.wakes {
			if w.Before(at) {
				at = w
			}
		}
		timer := o.clock.NewTimer(at.Sub(o.clock.Now()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-events:
			timer.Stop()
			if !ok {
				o.log.Info("store watch closed (events were missed); listing again")
				return
			}
			d := &dirty{services: map[string]bool{}, nodes: map[string]bool{}}
			d.add(ev)
			closed := false
		more:
			for {
				select {
				case ev, ok := <-events:
					if !ok {
						closed = true
						break more
					}
					d.add(ev)
				default:
					break more
				}
			}
			if closed {
				o.log.Info("store watch closed (events were missed); listing again")
				return
			}
			r.reconcile(ctx, d.resolve(o.store))
		case <-timer.C():
			now := o.clock.Now()
			if !now.Before(nextFull) {
				var ids []string
				o.store.View(func(tx store.ReadTx) { ids = allServiceIDs(tx) })
				r.reconcile(ctx, ids)
				nextFull = now.Add(o.cfg.FullPassInterval)
				continue
			}
			var due []string
			for id, w := range r.wakes {
				if !now.Before(w) {
					due = append(due, id)
				}
			}
			slices.Sort(due)
			r.reconcile(ctx, due)
		}
	}
}

// dirty collects what a batch of events touched.
type dirty struct {
	services map[string]bool
	nodes    map[string]bool
	all      bool
}

func (d *dirty) add(ev store.Event) {
	switch obj := ev.Object.(type) {
	case *api.Task:
		d.services[obj.GetServiceId()] = true
	case *api.Service:
		d.services[obj.GetId()] = true
	case *api.Node:
		d.nodes[obj.GetId()] = true
	case *api.Cluster:
		d.all = true
	}
}

// resolve returns the IDs of the services to reconcile, sorted.
func (d *dirty) resolve(s *store.MemoryStore) []string {
	var ids []string
	s.View(func(tx store.ReadTx) {
		if d.all {
			ids = allServiceIDs(tx)
			return
		}
		if len(d.nodes) > 0 {
			for _, svc := range tx.FindServices(store.All()) {
				switch svc.GetSpec().GetMode().GetMode().(type) {
				case *api.ServiceMode_Global, *api.ServiceMode_GlobalJob:
					d.services[svc.GetId()] = true
				}
			}
			for n := range d.nodes {
				for _, t := range tx.FindTasks(store.ByNodeID(n)) {
					d.services[t.GetServiceId()] = true
				}
			}
		}
	})
	if d.all {
		return ids
	}
	for id := range d.services {
		if id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// reconcile computes and commits the plans of the services, reading all
// of them in one view at one instant.
func (r *run) reconcile(ctx context.Context, ids []string) {
	if len(ids) == 0 {
		return
	}
	for _, in := range r.o.read(ids, r.o.clock.Now()) {
		if ctx.Err() != nil {
			return
		}
		r.apply(ctx, in)
	}
}

// apply computes the service's plan and commits it, computing it again
// from fresh state while the commit finds the state changed.
func (r *run) apply(ctx context.Context, in Input) {
	o := r.o
	for attempt := 1; ; attempt++ {
		p := NewReconciler(in).Compute()
		r.setWake(in.ServiceID, p.Wake)
		if p.Empty() {
			return
		}
		err := o.commit(ctx, p)
		if err == nil {
			o.log.Debug("plan committed", "service", in.ServiceID,
				"created", p.Count(ActionCreate), "updated", p.Count(ActionUpdate), "deleted", p.Count(ActionDelete))
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !retryable(err) || attempt >= maxPlanAttempts {
			o.log.Warn("committing a plan failed; trying again later", "service", in.ServiceID, "err", err)
			r.setWake(in.ServiceID, o.clock.Now().Add(retryAfterError))
			return
		}
		in = o.read([]string{in.ServiceID}, o.clock.Now())[0]
	}
}

// setWake records when the service wants its next pass; zero clears it.
func (r *run) setWake(id string, at time.Time) {
	if at.IsZero() {
		delete(r.wakes, id)
		return
	}
	r.wakes[id] = at
}

// read returns the inputs of the services, all from one consistent view.
func (o *Orchestrator) read(ids []string, now time.Time) []Input {
	out := make([]Input, 0, len(ids))
	o.store.View(func(tx store.ReadTx) {
		nodes := tx.FindNodes(store.All())
		var cluster *api.Cluster
		if cs := tx.FindClusters(store.All()); len(cs) > 0 {
			cluster = cs[0]
		}
		for _, id := range ids {
			out = append(out, Input{
				ServiceID: id,
				Service:   tx.GetService(id),
				Tasks:     tx.FindTasks(store.ByServiceID(id)),
				Nodes:     nodes,
				Cluster:   cluster,
				Now:       now,
			})
		}
	})
	return out
}

// reconcileAll does one full pass, outside Run (tests).
func (o *Orchestrator) reconcileAll(ctx context.Context) {
	var ids []string
	o.store.View(func(tx store.ReadTx) { ids = allServiceIDs(tx) })
	(&run{o: o, wakes: map[string]time.Time{}}).reconcile(ctx, ids)
}
