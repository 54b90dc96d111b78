package nstest

import (
	"slices"
	"testing"
	"time"

	"github.com/shoalhq/shoal/overlay/nsrun"
)

// Interleave runs b.N rounds inside the namespace at ns (nsrun.Do, so
// that x and y dial from there); round i measures x(i) and y(i) once
// each, x first in even rounds and y first in odd ones, so that neither
// path always runs first. Each measure returns the duration it measured.
// Only the rounds are timed: Interleave resets the benchmark timer before
// them and stops it after. It returns the median duration of x and of y,
// and fails the benchmark at the first error.
func Interleave(b *testing.B, ns string, x, y func(round int) (time.Duration, error)) (medX, medY time.Duration) {
	b.Helper()
	var xs, ys []time.Duration
	err := nsrun.Do(ns, func() error {
		b.ResetTimer()
		for i := range b.N {
			first, second := x, y
			if i%2 == 1 {
				first, second = y, x
			}
			d1, err := first(i)
			if err != nil {
				return err
			}
			d2, err := second(i)
			if err != nil {
				return err
			}
			if i%2 == 1 {
				d1, d2 = d2, d1
			}
			xs, ys = append(xs, d1), append(ys, d2)
		}
		b.StopTimer()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return median(xs), median(ys)
}

// median returns the median of ds (the upper one of an even count), 0
// for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}
