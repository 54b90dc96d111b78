// Package nslock serialises work per key (a network namespace path)
// within one process, so that a caller reading the kernel state of a
// namespace never interleaves its reads with another caller's changes.
package nslock

import "sync"

// Locks is a set of mutexes by key that forgets a key once no caller
// holds or waits for it, so it does not grow with every namespace ever
// seen. The zero value is ready to use; a Locks must not be copied after
// first use. Each package keeps its own Locks: callers of different
// packages do not wait for each other.
type Locks struct {
	mu   sync.Mutex
	held map[string]*refMutex
}

// refMutex is one key's mutex and the number of callers holding or
// waiting for it.
type refMutex struct {
	sync.Mutex
	refs int
}

// Lock blocks until key is free, locks it and returns the function that
// unlocks it, which must be called exactly once. Locks of different keys
// never wait for each other. Lock is not reentrant: locking a key the
// caller already holds deadlocks.
func (l *Locks) Lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.held == nil {
		l.held = map[string]*refMutex{}
	}
	m := l.held[key]
	if m == nil {
		m = &refMutex{}
		l.held[key] = m
	}
	m.refs++
	l.mu.Unlock()

	m.Lock()
	return func() {
		m.Unlock()
		l.mu.Lock()
		m.refs--
		if m.refs == 0 {
			delete(l.held, key)
		}
		l.mu.Unlock()
	}
}
