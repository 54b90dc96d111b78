package nslock

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestLockExcludesPerKey: callers of one key never overlap, and the set
// forgets every key once all callers are done.
func TestLockExcludesPerKey(t *testing.T) {
	var l Locks
	keys := []string{"/run/netns/a", "/run/netns/b", "/run/netns/c"}
	inside := make([]atomic.Int32, len(keys))
	var overlaps atomic.Int32
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Go(func() {
			for range 200 {
				k := g % len(keys)
				unlock := l.Lock(keys[k])
				if inside[k].Add(1) != 1 {
					overlaps.Add(1)
				}
				inside[k].Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d times two callers held the same key at once", n)
	}
	if n := len(l.held); n != 0 {
		t.Fatalf("%d keys still held after every caller unlocked", n)
	}
}

// TestLockKeysAreIndependent: holding one key does not block another.
func TestLockKeysAreIndependent(t *testing.T) {
	var l Locks
	unlockA := l.Lock("a")
	defer unlockA()
	done := make(chan struct{})
	go func() {
		l.Lock("b")()
		close(done)
	}()
	<-done // a deadlock here fails the test by timeout
}
