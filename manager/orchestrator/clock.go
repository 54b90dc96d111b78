package orchestrator

import "time"

// Clock is the orchestrator's source of time. Reconcile passes read Now
// once and take every decision against that instant; the run loop waits
// on timers made by NewTimer. Tests pass a FakeClock and move time by
// hand, so that restart delays and restart windows need no sleeping.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once, d from now. A d of zero
	// or less fires at once.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer made by a Clock.
type Timer interface {
	// C is the channel the fire time is sent on (once; it is buffered).
	C() <-chan time.Time
	// Stop stops the timer and reports whether it had not fired yet.
	Stop() bool
}

// RealClock returns the Clock of the time package.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
