package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// More sentinel errors, of the store's own operation rather than of one
// object.
var (
	// ErrNoProposer means Update was called on a store that has no
	// Proposer yet: pass one to New or call SetProposer first.
	ErrNoProposer = errors.New("store has no proposer: pass one to New or call SetProposer")
	// ErrStaleIndex means Apply was given a log index not greater than the
	// applied index: the command was (or is treated as) applied already,
	// and the store did not change.
	ErrStaleIndex = errors.New("log index already applied")
)

// MemoryStore is the indexed in-memory state of one manager.
//
// Reads (View) run under a read lock and see a consistent state. Writes
// are staged by Update, proposed through the Proposer, and applied, on
// every manager, by Apply. Objects handed out are shared and read-only:
// proto.Clone before changing one. Tasks are indexed by service, node and
// desired state, nodes by name and role, and every kind by ID, so Find
// costs O(log n + k) for k results, sorted by ID.
//
// A MemoryStore is safe for concurrent use.
type MemoryStore struct {
	// mu guards st and events; Apply and Restore hold it for writing.
	mu     sync.RWMutex
	st     *state
	events []Event // Apply's reusable event buffer

	applied atomic.Uint64

	// waitMu guards waitCh, which is closed when the applied index moves
	// (made only while someone waits).
	waitMu sync.Mutex
	waitCh chan struct{}

	// wmu guards watchers and their closed flags.
	wmu      sync.Mutex
	watchers []*watcher

	pmu      sync.Mutex
	proposer Proposer
}

// New returns an empty store that proposes writes through p. p may be nil
// until SetProposer is called; Update fails with ErrNoProposer until then.
func New(p Proposer) *MemoryStore { return &MemoryStore{proposer: p, st: newState()} }

// SetProposer sets the proposer used by Update.
func (s *MemoryStore) SetProposer(p Proposer) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.proposer = p
}

func (s *MemoryStore) getProposer() Proposer {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.proposer
}

// View runs fn on a consistent read-only view. Apply waits while fn runs,
// so fn should be short; it must not call Update, Apply or Restore on the
// same store, nor View (a nested read lock can deadlock behind a waiting
// Apply). The ReadTx must not be used after fn returns.
func (s *MemoryStore) View(fn func(ReadTx)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.viewLocked(fn)
}

func (s *MemoryStore) viewLocked(fn func(ReadTx)) {
	tx := newTxn(s.st, true, 0)
	defer tx.finish()
	fn(tx)
}

// Update runs fn in a transaction and proposes its writes as one Command.
// It returns fn's error (nothing proposed), or the Proposer's.
//
// fn runs under the store's read lock, with the same restrictions as in
// View; reads inside it see the writes staged so far. The Tx stamps
// Meta.CreatedAt and UpdatedAt with the local clock and stores clones of
// the objects it is given, so the caller keeps ownership of them. When fn
// returns nil and staged at least one write, the command is proposed after
// the lock is released and Update returns once it is applied, with Apply's
// error: another writer may have changed an object since fn read it
// (ErrSequenceConflict; read again and retry). When the Proposer fails
// otherwise, the command may or may not have been applied. Update fails
// with ErrNoProposer, before running fn, when the store has no proposer,
// and with ctx.Err() when ctx has ended.
func (s *MemoryStore) Update(ctx context.Context, fn func(Tx) error) error {
	p := s.getProposer()
	if p == nil {
		return ErrNoProposer
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cmd, err := s.stage(fn)
	if err != nil || cmd == nil {
		return err
	}
	_, err = p.Propose(ctx, cmd)
	return err
}

// stage runs fn in a transaction and returns the command it staged, nil
// when it staged nothing.
func (s *MemoryStore) stage(fn func(Tx) error) (*api.Command, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tx := newTxn(s.st, false, time.Now().UnixNano())
	defer tx.finish()
	if err := fn(tx); err != nil {
		return nil, err
	}
	if len(tx.actions) == 0 {
		return nil, nil
	}
	return &api.Command{Actions: tx.actions}, nil
}

// AppliedIndex is the log index of the last applied command or restore.
func (s *MemoryStore) AppliedIndex() uint64 { return s.applied.Load() }

// WaitForIndex blocks until AppliedIndex() >= index, and returns nil, or
// until ctx ends, and returns ctx.Err().
func (s *MemoryStore) WaitForIndex(ctx context.Context, index uint64) error {
	for {
		s.waitMu.Lock()
		if s.applied.Load() >= index {
			s.waitMu.Unlock()
			return nil
		}
		if s.waitCh == nil {
			s.waitCh = make(chan struct{})
		}
		ch := s.waitCh
		s.waitMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wake wakes the WaitForIndex callers after the applied index moved.
func (s *MemoryStore) wake() {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	if s.waitCh != nil {
		close(s.waitCh)
		s.waitCh = nil
	}
}
