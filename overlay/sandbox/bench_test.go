package sandbox_test

import (
	"testing"
	"time"

	"github.com/shoalhq/shoal/overlay/sandbox"
	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
)

// BenchmarkAttachDetach measures one Attach of a fresh task interface
// (veth pair, address, MAC, MTU, route) and its Detach, reported
// separately as attach-us and detach-us per operation.
func BenchmarkAttachDetach(b *testing.B) {
	vxlantest.RequireRoot(b)
	h := newHost(b)
	a := h.attachment(b, "t1", "10.7.0.2/24")
	var attach, detach time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := sandbox.Attach(a); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := sandbox.Detach(a.HostNS, a.HostIf); err != nil {
			b.Fatal(err)
		}
		attach += t1.Sub(t0)
		detach += time.Since(t1)
	}
	b.ReportMetric(float64(attach.Microseconds())/float64(b.N), "attach-us")
	b.ReportMetric(float64(detach.Microseconds())/float64(b.N), "detach-us")
}

// BenchmarkReattach measures Attach of an attachment that already exists
// (what a restarted agent does for every running task).
func BenchmarkReattach(b *testing.B) {
	vxlantest.RequireRoot(b)
	h := newHost(b)
	a := h.attachment(b, "t1", "10.7.0.2/24")
	if err := sandbox.Attach(a); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := sandbox.Attach(a); err != nil {
			b.Fatal(err)
		}
	}
}
