package gossip

import (
	"net/netip"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// benchNodes is the cluster size of BenchmarkDeadNodeRemoval: 5, or
// SHOAL_GOSSIP_BENCH_NODES (up to 250) to measure larger clusters.
func benchNodes(b *testing.B) int {
	s := os.Getenv("SHOAL_GOSSIP_BENCH_NODES")
	if s == "" {
		return 5
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 2 || n > 250 {
		b.Fatalf("SHOAL_GOSSIP_BENCH_NODES=%q: want a number from 2 to 250", s)
	}
	return n
}

// BenchmarkPropagation measures the time from Publish on node 1 to the
// endpoint being visible on node 5, in a cluster of 5 (metric ms: the
// mean; max-ms: the worst).
func BenchmarkPropagation(b *testing.B) {
	c := newCluster(b, 5, clusterOpts{})
	sub, cancel := c.table(5).Subscribe()
	defer cancel()
	e := c.tep(1, 1, "netA")
	var total, worst time.Duration
	b.ResetTimer()
	for n := range b.N {
		e.Addr = netip.AddrFrom4([4]byte{10, 1, byte(n >> 8), byte(n)})
		start := time.Now()
		if err := c.table(1).Publish(e); err != nil {
			b.Fatal(err)
		}
		for !slices.ContainsFunc(c.table(5).Endpoints("netA"), func(got Endpoint) bool { return got.Addr == e.Addr }) {
			select {
			case <-sub:
			case <-time.After(10 * time.Second):
				b.Fatalf("publish %d not visible on h5 after 10s:\n%s", n, c.tablesDump())
			}
		}
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
}

// BenchmarkDeadNodeRemoval measures the time from a host's crash
// (Shutdown without Leave) to its entries having left every other table,
// with the LAN timing defaults (metric ms: the mean; max-ms: the worst).
// The cluster has 5 nodes, or SHOAL_GOSSIP_BENCH_NODES. Each iteration
// takes seconds: run it with -benchtime=5x or so.
func BenchmarkDeadNodeRemoval(b *testing.B) {
	n := benchNodes(b)
	c := newCluster(b, n, clusterOpts{})
	victim := n
	var total, worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if i > 0 {
			c.start(victim)
			c.join(victim, 1)
			c.waitMembers(n)
		}
		e := c.tep(victim, 1, "netA")
		if err := c.table(victim).Publish(e); err != nil {
			b.Fatal(err)
		}
		c.waitTables(want(victim, e))
		b.StartTimer()

		start := time.Now()
		c.crash(victim)
		for !c.noneHold(e.ID) {
			if time.Since(start) > time.Minute {
				b.Fatalf("crashed %s still listed after a minute:\n%s", name(victim), c.tablesDump())
			}
			time.Sleep(10 * time.Millisecond)
		}
		d := time.Since(start)
		total += d
		worst = max(worst, d)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(n), "nodes")
}

// noneHold reports whether no running table holds an endpoint with ID id.
func (c *testCluster) noneHold(id string) bool {
	for _, i := range c.running() {
		if slices.ContainsFunc(c.table(i).All(), func(e Endpoint) bool { return e.ID == id }) {
			return false
		}
	}
	return true
}
