package dispatcher

import (
	"context"
	"sync"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// maxQueuedEvents is how many task events a subscription holds for a
// stream that has not taken them; beyond that the stream starts over
// with a COMPLETE message.
const maxQueuedEvents = 16384

// hub is the one store watch of the dispatcher's assignment streams: it
// watches task events and hands each to the subscriptions of the nodes
// the task is on (before and after the change). One watch for all
// streams instead of one per stream: a store watch buffers
// store.WatchBufferSize events up front, and a thousand of them would
// hold hundreds of megabytes; a subscription holds only the events it
// has not handed on.
//
// A subscription sees every task event applied after subscribe returned
// (and maybe some from before, which carry an index the subscriber's
// later View already includes). When the store watch overflows, every
// subscription is marked overflowed and the hub watches again.
type hub struct {
	s *store.MemoryStore

	mu      sync.Mutex
	events  <-chan store.Event
	cancel  func()
	subs    map[string]map[*subscription]struct{}
	stopped bool
}

func newHub(s *store.MemoryStore) *hub {
	h := &hub{s: s, subs: map[string]map[*subscription]struct{}{}}
	h.events, h.cancel = s.Watch(isTaskEvent)
	return h
}

func isTaskEvent(ev store.Event) bool {
	_, ok := ev.Object.(*api.Task)
	return ok
}

// run hands events on until ctx ends, then closes every subscription.
func (h *hub) run(ctx context.Context) {
	defer h.stop()
	for {
		h.mu.Lock()
		ch := h.events
		h.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				h.rewatch()
				continue
			}
			h.deliver(ev)
		}
	}
}

// deliver hands ev to the subscriptions of the task's old and new node.
func (h *hub) deliver(ev store.Event) {
	t := ev.Object.(*api.Task)
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[t.GetNodeId()] {
		sub.push(ev)
	}
	if old, ok := ev.Old.(*api.Task); ok && old.GetNodeId() != t.GetNodeId() {
		for sub := range h.subs[old.GetNodeId()] {
			sub.push(ev)
		}
	}
}

// rewatch replaces a store watch that overflowed: every subscription
// missed events and must start over.
func (h *hub) rewatch() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cancel()
	h.events, h.cancel = h.s.Watch(isTaskEvent)
	for _, subs := range h.subs {
		for sub := range subs {
			sub.end(true)
		}
	}
	clear(h.subs)
}

func (h *hub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	h.cancel()
	for _, subs := range h.subs {
		for sub := range subs {
			sub.end(false)
		}
	}
	clear(h.subs)
}

// subscribe returns a subscription to the task events of a node, or
// ErrNotRunning once the hub has stopped.
func (h *hub) subscribe(node string) (*subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return nil, ErrNotRunning
	}
	sub := &subscription{notify: make(chan struct{}, 1)}
	if h.subs[node] == nil {
		h.subs[node] = map[*subscription]struct{}{}
	}
	h.subs[node][sub] = struct{}{}
	sub.unsubscribe = func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if subs := h.subs[node]; subs != nil {
			delete(subs, sub)
			if len(subs) == 0 {
				delete(h.subs, node)
			}
		}
	}
	return sub, nil
}

// subscription is the queue of one stream's events.
type subscription struct {
	notify      chan struct{} // receives when there is something to take
	unsubscribe func()

	mu         sync.Mutex
	events     []store.Event
	ended      bool
	overflowed bool
}

// push queues ev, or marks the subscription overflowed when too many
// wait.
func (s *subscription) push(ev store.Event) {
	s.mu.Lock()
	switch {
	case s.ended:
	case len(s.events) >= maxQueuedEvents:
		s.ended, s.overflowed, s.events = true, true, nil
	default:
		s.events = append(s.events, ev)
	}
	s.mu.Unlock()
	s.wake()
}

// end ends the subscription: overflowed (start over) or stopped.
func (s *subscription) end(overflowed bool) {
	s.mu.Lock()
	if !s.ended {
		s.ended, s.overflowed, s.events = true, overflowed, nil
	}
	s.mu.Unlock()
	s.wake()
}

func (s *subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// take returns the queued events, and whether the subscription ended
// (then whether because it overflowed).
func (s *subscription) take() (events []store.Event, ended, overflowed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	events, s.events = s.events, nil
	return events, s.ended, s.overflowed
}

// nodes is how many nodes have an assignment stream open.
func (h *hub) nodes() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
