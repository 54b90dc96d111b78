// Package allocator gives overlay networks their addresses: the leader's
// loop that creates the ingress network, gives each service a virtual IP
// on each of its networks and its published ports, and gives each new
// task an address and MAC on each of its networks before it may be
// scheduled (NEW → PENDING).
//
// It keeps no allocation state between passes: each pass reads networks,
// services and tasks in one store transaction, rebuilds the pools from
// what is recorded there (service VIPs, and the attachments of tasks that
// are not dead), and writes its allocations in that same transaction.
// The writes carry the objects' versions, so a pass that raced another
// writer fails as a whole and is redone. An address is therefore never
// handed out twice while a live task or service holds it, across leader
// changes too; a task's addresses are free again as soon as its observed
// state is final.
package allocator

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// Defaults of Config.
const (
	// DefaultBatchWindow is how long events are collected before a pass.
	DefaultBatchWindow = 5 * time.Millisecond
	// DefaultRetryInterval is how often a pass runs while some task could
	// not get an address.
	DefaultRetryInterval = 5 * time.Second
	// DefaultMaxCommitTasks bounds the task writes of one transaction.
	DefaultMaxCommitTasks = 5000
)

// Config configures an Allocator. Zero fields take the defaults.
type Config struct {
	// Logger receives a debug line per pass and warnings; slog.Default()
	// when nil.
	Logger         *slog.Logger
	BatchWindow    time.Duration
	RetryInterval  time.Duration
	MaxCommitTasks int
	// Now stamps task status changes; time.Now when nil.
	Now func() time.Time
}

// Allocator is the leader's allocation loop; see the package comment.
type Allocator struct {
	store *store.MemoryStore
	cfg   Config
	// last is the address handed out last on each network, so that the
	// pools rebuilt by each pass keep moving forward: an address freed by
	// a dead task is handed out again only after the rest of the subnet,
	// long after every host has forgotten the dead task. At the start of
	// a term it is read again from the store (the address of the newest
	// task holding one), so a new leader goes on where the last one was.
	last map[string]netip.Addr
}

// New returns an allocator over s, which needs a Proposer.
func New(s *store.MemoryStore, cfg Config) *Allocator {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BatchWindow <= 0 {
		cfg.BatchWindow = DefaultBatchWindow
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.MaxCommitTasks <= 0 {
		cfg.MaxCommitTasks = DefaultMaxCommitTasks
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Allocator{store: s, cfg: cfg, last: map[string]netip.Addr{}}
}

// Run allocates until ctx ends. Call it only while this manager leads,
// and again after every leadership change: it starts with a full pass.
func (a *Allocator) Run(ctx context.Context) {
	// Another leader may have allocated since this one last led.
	a.last = map[string]netip.Addr{}
	events, cancel := a.store.Watch(relevant)
	defer cancel()
	batch := time.NewTimer(0) // the full pass at the start of the term
	defer batch.Stop()
	retry := time.NewTicker(a.cfg.RetryInterval)
	defer retry.Stop()
	pending, waiting := true, false
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return
				}
				events, cancel = a.store.Watch(relevant)
				defer cancel()
			}
			if !pending {
				pending = true
				batch.Reset(a.cfg.BatchWindow)
			}
		case <-batch.C:
			pending = false
			res, err := a.pass(ctx)
			if err != nil && ctx.Err() == nil {
				a.cfg.Logger.Warn("allocator: pass failed, retrying", "err", err)
				pending = true
				batch.Reset(100 * time.Millisecond)
				continue
			}
			waiting = res.waiting > 0
			if res.more {
				pending = true
				batch.Reset(0)
			}
		case <-retry.C:
			if waiting && !pending {
				pending = true
				batch.Reset(0)
			}
		}
	}
}

// relevant selects the changes that may call for a pass: networks and
// services changing, tasks created NEW, and tasks dying (their addresses
// may let a waiting task through).
func relevant(ev store.Event) bool {
	switch o := ev.Object.(type) {
	case *api.Network, *api.Service, *api.Cluster:
		return true
	case *api.Node:
		return ev.Kind == store.EventCreate
	case *api.Task:
		switch ev.Kind {
		case store.EventCreate:
			return o.GetStatus().GetState() == api.TaskState_TASK_STATE_NEW
		case store.EventUpdate:
			old, _ := ev.Old.(*api.Task)
			return len(o.GetNetworks()) > 0 && dead(o) && !dead(old)
		}
	}
	return false
}

// dead reports whether a task's observed state is final: it holds no
// address any more.
func dead(t *api.Task) bool {
	return t.GetStatus().GetState() >= api.TaskState_TASK_STATE_COMPLETE
}
