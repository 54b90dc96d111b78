package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// load sends requests through url from inside a container's network
// namespace, workers at a time, as fast as they are answered, until
// stopped; it counts what was sent, failed, and who answered.
type load struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	errors       map[string]int
	answered     map[string]int // by echo version
	firstFail    time.Time
	lastFail     time.Time
	stop         context.CancelFunc
	done         sync.WaitGroup
}

// startLoad starts the load from the namespace ns.
func startLoad(ns, url string, workers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel, errors: map[string]int{}, answered: map[string]int{}}
	for i := 0; i < workers; i++ {
		hc := httpClientIn(ns, 5*time.Second)
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			for ctx.Err() == nil {
				a, err := getEcho(hc, url)
				if ctx.Err() != nil && err != nil {
					return // cut by the stop itself
				}
				l.sent.Add(1)
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					l.errors[err.Error()]++
					if l.firstFail.IsZero() {
						l.firstFail = time.Now()
					}
					l.lastFail = time.Now()
				} else {
					l.answered[a.Version]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// end stops the load and waits for the requests in flight.
func (l *load) end() {
	l.stop()
	l.done.Wait()
}

// summary is one line for the test log.
func (l *load) summary() string {
	return fmt.Sprintf("sent=%d failed=%d %s", l.sent.Load(), l.failed.Load(), l.details())
}

// details names who answered and the first kinds of errors.
func (l *load) details() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []string
	for e, n := range l.errors {
		errs = append(errs, fmt.Sprintf("%dx %s", n, e))
	}
	sort.Strings(errs)
	if len(errs) > 5 {
		errs = errs[:5]
	}
	s := fmt.Sprintf("versions=%v errors=%v", l.answered, errs)
	if !l.firstFail.IsZero() {
		s += fmt.Sprintf(" failures-between=%s..%s", l.firstFail.UTC().Format("15:04:05.000"), l.lastFail.UTC().Format("15:04:05.000"))
	}
	return s
}
