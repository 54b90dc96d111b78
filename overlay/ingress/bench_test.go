package ingress

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/shoalhq/shoal/overlay/internal/nstest"
	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
)

// BenchmarkIngressConnect compares connect + request + answer latency
// from the outside client to one task on the third node, interleaved in
// the same run, (a) through the mesh: the published port of the first
// node, which runs no task (DNAT there, no SNAT), and (b) directly to the
// task's overlay address, routed by the client through the same first
// node. Both take the same path (client → node 1 → VXLAN → node 3 → task,
// replies back through node 1), so the ratio is the mesh's own cost. It
// reports the median of each (µs) and ratio = mesh / direct.
func BenchmarkIngressConnect(b *testing.B) {
	m := newMesh(b)
	target := m.tasks[1]
	entry := m.nodes[0]
	m.publish(b, m.services(target))
	ch := vxlantest.Handle(b, m.client)
	route := &netlink.Route{
		Dst: &net.IPNet{IP: ingressSubnet.Addr().AsSlice(), Mask: net.CIDRMask(ingressSubnet.Bits(), 32)},
		Gw:  entry.host.Addr.AsSlice(),
	}
	if err := ch.RouteAdd(route); err != nil {
		b.Fatalf("route the overlay through %s in the client: %v", entry.host.Name, err)
	}
	meshDst := netip.AddrPortFrom(entry.host.Addr, publishedTC)
	directDst := netip.AddrPortFrom(target.addr, targetTCP)

	ask := func(dst netip.AddrPort) (time.Duration, error) {
		start := time.Now()
		a, err := askTCP(dst, 2*time.Second)
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if a.server != target.addr.String() || a.peer != m.caddr {
			b.Errorf("%s answered %+v, want task %s seeing %s", dst, a, target.addr, m.caddr)
		}
		return d, nil
	}
	ms, dir := nstest.Interleave(b, m.client,
		func(int) (time.Duration, error) { return ask(meshDst) },
		func(int) (time.Duration, error) { return ask(directDst) })
	b.ReportMetric(float64(ms)/float64(dir), "ratio")
	b.ReportMetric(float64(ms)/1e3, "mesh-p50-us")
	b.ReportMetric(float64(dir)/1e3, "direct-p50-us")
}
