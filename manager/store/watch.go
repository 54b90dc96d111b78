package store

import "slices"

// WatchBufferSize is the number of events a watcher's channel buffers. A
// watcher that has this many events unread when another one arrives is
// closed.
const WatchBufferSize = 4096

// watcher is one Watch: a buffered channel and its filter. closed is
// guarded by MemoryStore.wmu.
type watcher struct {
	ch     chan Event
	filter func(Event) bool
	closed bool
}

// Watch returns a channel of the events applied after the call for which
// filter (if not nil) returns true, in the order they were applied, and a
// function that ends the watch and closes the channel (it may be called
// more than once).
//
// Apply never waits for a watcher: the channel buffers WatchBufferSize
// events, and a watcher that falls that far behind is closed. When the
// channel is closed without the cancel function having been called, the
// watcher missed events and must re-list (View) and watch again. Restore
// closes every watcher for the same reason.
//
// filter runs inside Apply with the store locked: it must be quick and
// must not call the store. Event objects are shared and read-only.
func (s *MemoryStore) Watch(filter func(Event) bool) (<-chan Event, func()) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.addWatcherLocked(filter)
}

// ViewAndWatch runs fn on a consistent read-only view, like View, and
// starts a watch, like Watch, atomically: the channel carries exactly the
// events applied after the state fn saw. It is how a reconciler lists and
// then follows changes without missing or double-counting any.
func (s *MemoryStore) ViewAndWatch(filter func(Event) bool, fn func(ReadTx)) (<-chan Event, func()) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.viewLocked(fn)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.addWatcherLocked(filter)
}

func (s *MemoryStore) addWatcherLocked(filter func(Event) bool) (<-chan Event, func()) {
	w := &watcher{ch: make(chan Event, WatchBufferSize), filter: filter}
	s.watchers = append(s.watchers, w)
	cancel := func() {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if w.closed {
			return
		}
		w.closed = true
		close(w.ch)
		if i := slices.Index(s.watchers, w); i >= 0 {
			s.watchers = slices.Delete(s.watchers, i, i+1)
		}
	}
	return w.ch, cancel
}

// publishLocked sends events to every watcher, closing those whose buffer
// is full. The caller holds s.mu for writing, so events of successive
// commands are published in order.
func (s *MemoryStore) publishLocked(events []Event) {
	if len(events) == 0 {
		return
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	live := s.watchers[:0]
	for _, w := range s.watchers {
		if w.deliver(events) {
			live = append(live, w)
		}
	}
	clear(s.watchers[len(live):])
	s.watchers = live
}

// deliver sends the events that pass the filter without blocking; it
// closes the channel and returns false when the buffer is full.
func (w *watcher) deliver(events []Event) bool {
	for _, ev := range events {
		if w.filter != nil && !w.filter(ev) {
			continue
		}
		select {
		case w.ch <- ev:
		default:
			w.closed = true
			close(w.ch)
			return false
		}
	}
	return true
}

// closeWatchers closes every watcher: they missed changes (Restore).
func (s *MemoryStore) closeWatchers() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, w := range s.watchers {
		w.closed = true
		close(w.ch)
	}
	clear(s.watchers)
	s.watchers = s.watchers[:0]
}
