package bridge_test

import (
	"testing"

	"github.com/shoalhq/shoal/overlay/bridge"
)

// BenchmarkAttachDetach measures one Attach (allocation, state file write,
// veth, address, route) and one Detach of a task namespace.
func BenchmarkAttachDetach(b *testing.B) {
	w := newWorld(b)
	n := w.open(b, w.config())
	ns := w.task(b, "bench")
	for b.Loop() {
		if _, err := n.Attach("bench", ns); err != nil {
			b.Fatal(err)
		}
		if err := n.Detach("bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures Open on a host where everything already exists:
// the cost of a restarted agent's reconcile.
func BenchmarkOpen(b *testing.B) {
	w := newWorld(b)
	w.open(b, w.config())
	for b.Loop() {
		n, err := bridge.Open(w.config())
		if err != nil {
			b.Fatal(err)
		}
		n.Close()
	}
}
