package placement

import (
	"context"
	"log/slog"
	"time"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// Defaults of Config.
const (
	// DefaultBatchWindow is how long events are collected before a pass.
	DefaultBatchWindow = 10 * time.Millisecond
	// DefaultRetryInterval is how often tasks that did not fit are tried
	// again.
	DefaultRetryInterval = 5 * time.Second
	// DefaultMaxCommitTasks bounds the task writes of one transaction.
	DefaultMaxCommitTasks = 10_000
	// DefaultMaxCommitBytes bounds the estimated encoded size of one
	// transaction's writes.
	DefaultMaxCommitBytes = 4 << 20
)

// Config configures a Placer. Zero fields take the defaults.
type Config struct {
	// Logger receives a debug line per pass and warnings on failed
	// commits; slog.Default() when nil.
	Logger *slog.Logger
	// BatchWindow is how long the placer collects events after the first
	// one before it runs a pass (debounce), so that tasks created by many
	// small writes are placed together.
	BatchWindow time.Duration
	// RetryInterval is how often a pass runs while some tasks do not fit,
	// even without events.
	RetryInterval time.Duration
	// MaxCommitTasks and MaxCommitBytes bound one transaction: at most
	// that many task writes, of at most about that many encoded bytes
	// (estimated from each group's first task); a transaction holds at
	// least one write.
	MaxCommitTasks int
	MaxCommitBytes int
	// Now stamps the status of assigned tasks; time.Now when nil.
	Now func() time.Time
}

// Placer places pending tasks on nodes: see the package comment.
type Placer struct {
	store *store.MemoryStore
	cfg   Config

	// Test hooks, nil in production. beforeCommit runs between planning
	// and committing a pass; afterPass runs after each pass.
	beforeCommit func()
	afterPass    func(passStats)
}

// New returns a placer over s. s needs a Proposer: the placer writes
// through s.Update.
func New(s *store.MemoryStore, cfg Config) *Placer {
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
	if cfg.MaxCommitBytes <= 0 {
		cfg.MaxCommitBytes = DefaultMaxCommitBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Placer{store: s, cfg: cfg}
}

// Run places pending tasks until ctx ends. Call it only while this
// manager is the Raft leader, and again after each leadership change: it
// starts with a full pass over the store, since events may have been
// missed. Run may be called again after it returns, but not concurrently
// with itself. Writes that fail because leadership was lost are logged
// and retried in the next pass, if any.
func (p *Placer) Run(ctx context.Context) {
	for ctx.Err() == nil {
		p.follow(ctx)
	}
}

// follow lists the state, runs a pass, then follows the watch until ctx
// ends or the watch is closed (the caller lists again).
func (p *Placer) follow(ctx context.Context) {
	// The listing is a slice of immutable objects: count them after the
	// store's lock is released.
	var tasks []*api.Task
	events, cancel := p.store.ViewAndWatch(relevant, func(tx store.ReadTx) { tasks = tx.FindTasks(store.All()) })
	defer cancel()
	m := newModel(tasks)

	batch := time.NewTimer(p.cfg.BatchWindow)
	defer batch.Stop()
	retry := time.NewTicker(p.cfg.RetryInterval)
	defer retry.Stop()
	// pending is set while a pass is due when batch fires.
	pending := true

	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() == nil {
					p.cfg.Logger.Debug("placement: watch closed, listing again")
				}
				return
			}
			if m.apply(ev) && !pending {
				pending = true
				batch.Reset(p.cfg.BatchWindow)
			}
		case <-batch.C:
			pending = false
			again := p.pass(ctx, m)
			if m.stale {
				return
			}
			if again {
				pending = true
				batch.Reset(p.cfg.BatchWindow)
			}
		case <-retry.C:
			if (m.unplaced > 0 || m.failed) && !pending {
				pending = true
				batch.Reset(0)
			}
		}
	}
}
