package ingress

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/shoalhq/shoal/overlay/nsrun"
)

// TestMeshKeepsClientAddress: from a client outside the cluster, TCP and
// UDP to the published ports of every node, the first of which runs no
// task, reach both tasks, and every task sees the client's own address.
func TestMeshKeepsClientAddress(t *testing.T) {
	m := newMesh(t)
	m.publish(t, m.services(m.tasks...))
	const perNode = 24
	for _, n := range m.nodes {
		t.Run(n.host.Name, func(t *testing.T) {
			hits := map[string]map[string]int{"tcp": {}, "udp": {}}
			err := nsrun.Do(m.client, func() error {
				for i := range perNode {
					a, err := askTCP(netip.AddrPortFrom(n.host.Addr, publishedTC), 2*time.Second)
					if err != nil {
						return fmt.Errorf("TCP connection %d: %w", i, err)
					}
					if a.peer != m.caddr {
						t.Errorf("TCP: task %s saw peer %s, want the client %s", a.server, a.peer, m.caddr)
					}
					hits["tcp"][a.server]++
					a, err = askUDP(netip.AddrPortFrom(n.host.Addr, publishedUD), 2*time.Second)
					if err != nil {
						return fmt.Errorf("UDP flow %d: %w", i, err)
					}
					if a.peer != m.caddr {
						t.Errorf("UDP: task %s saw peer %s, want the client %s", a.server, a.peer, m.caddr)
					}
					hits["udp"][a.server]++
				}
				return nil
			})
			if err != nil {
				t.Fatalf("through %s: %v", n.host.Name, err)
			}
			t.Logf("through %s: %v", n.host.Name, hits)
			for proto, h := range hits {
				for _, tk := range m.tasks {
					if h[tk.addr.String()] == 0 {
						t.Errorf("%s through %s never reached task %s (%v)", proto, n.host.Name, tk.addr, h)
					}
				}
			}
		})
	}
}

// TestMeshFromANodeItself: a process on a node reaching the node's own
// address on the published port goes through the mesh too (nat output
// chain), and the task sees the node's address.
func TestMeshFromANodeItself(t *testing.T) {
	m := newMesh(t)
	m.publish(t, m.services(m.tasks...))
	n := m.nodes[0]
	seen := map[string]int{}
	err := nsrun.Do(n.host.NS, func() error {
		for i := range 16 {
			a, err := askTCP(netip.AddrPortFrom(n.host.Addr, publishedTC), 2*time.Second)
			if err != nil {
				return fmt.Errorf("TCP connection %d: %w", i, err)
			}
			if a.peer != n.host.Addr {
				t.Errorf("task %s saw peer %s, want the node's address %s", a.server, a.peer, n.host.Addr)
			}
			seen[a.server]++
			if a, err = askUDP(netip.AddrPortFrom(n.host.Addr, publishedUD), 2*time.Second); err != nil {
				return fmt.Errorf("UDP flow %d: %w", i, err)
			}
			seen[a.server]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("from %s to itself: %v", n.host.Name, err)
	}
	if len(seen) != len(m.tasks) {
		t.Fatalf("answers from %v, want both tasks", seen)
	}
}

// TestApplyHostUnderLoad: while the client opens a connection through the
// node with no task every few milliseconds, ApplyHost removes one
// backend. No connection fails, and none opened after ApplyHost returned
// reaches the removed task.
func TestApplyHostUnderLoad(t *testing.T) {
	m := newMesh(t)
	m.publish(t, m.services(m.tasks...))
	keep, removed := m.tasks[0], m.tasks[1]
	entry := m.nodes[0]

	type result struct {
		start  time.Time
		server string
		err    error
	}
	var results []result
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- nsrun.Do(m.client, func() error {
			tick := time.NewTicker(3 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return nil
				case <-tick.C:
				}
				start := time.Now()
				a, err := askTCP(netip.AddrPortFrom(entry.host.Addr, publishedTC), 2*time.Second)
				results = append(results, result{start, a.server, err})
			}
		})
	}()
	countBy := func(pred func(result) bool) int {
		n := 0
		for _, r := range results {
			if pred(r) {
				n++
			}
		}
		return n
	}
	// Let traffic reach both backends first, so that the test can fail.
	time.Sleep(150 * time.Millisecond)
	if err := ApplyHost(entry.host.NS, m.services(keep)); err != nil {
		close(stop)
		<-done
		t.Fatal(err)
	}
	returned := time.Now()
	time.Sleep(250 * time.Millisecond)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	before := countBy(func(r result) bool { return r.start.Before(returned) && r.server == removed.addr.String() })
	after := countBy(func(r result) bool { return r.start.After(returned) })
	failed := countBy(func(r result) bool { return r.err != nil })
	late := countBy(func(r result) bool { return r.start.After(returned) && r.server == removed.addr.String() })
	t.Logf("%d connections, %d before the change reached %s, %d after it, %d failed", len(results), before, removed.addr, after, failed)
	for _, r := range results {
		if r.err != nil {
			t.Errorf("connection at %s failed: %v", r.start.Format("15:04:05.000"), r.err)
		}
	}
	if before == 0 || after < 10 {
		t.Fatalf("too little traffic to judge: %d connections to the removed task before the change, %d after", before, after)
	}
	if late > 0 {
		t.Fatalf("%d connections opened after ApplyHost returned reached the removed task %s", late, removed.addr)
	}
}

// TestNoBackendsRefusesFast: a published port whose service has no
// backends refuses at once (TCP reset, ICMP port unreachable), even when
// a process on the node listens on that port: the refusal is the mesh's,
// not the kernel's "nobody listens here".
func TestNoBackendsRefusesFast(t *testing.T) {
	m := newMesh(t)
	entry := m.nodes[0]
	serveAnswering(t, entry.host.NS, "node", publishedTC, publishedUD)
	tcpDst := netip.AddrPortFrom(entry.host.Addr, publishedTC)
	udpDst := netip.AddrPortFrom(entry.host.Addr, publishedUD)
	ask := func() (tcp, udp answer, tcpErr, udpErr error) {
		err := nsrun.Do(m.client, func() error {
			tcp, tcpErr = askTCP(tcpDst, time.Second)
			udp, udpErr = askUDP(udpDst, time.Second)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}

	// Nothing published: the node's own servers answer.
	tcp, udp, tcpErr, udpErr := ask()
	if tcpErr != nil || udpErr != nil || tcp.server != "node" || udp.server != "node" {
		t.Fatalf("before publishing: %v %v, %v %v; want the node's own servers", tcp, tcpErr, udp, udpErr)
	}

	m.publish(t, m.services())
	_, _, tcpErr, udpErr = ask()
	if !errors.Is(tcpErr, syscall.ECONNREFUSED) {
		t.Errorf("TCP to a port with no backends: %v, want connection refused (not a timeout, not the node's server)", tcpErr)
	}
	if !errors.Is(udpErr, syscall.ECONNREFUSED) {
		t.Errorf("UDP to a port with no backends: %v, want connection refused (ICMP port unreachable)", udpErr)
	}

	// Backends again: the tasks answer, not the node.
	m.publish(t, m.services(m.tasks...))
	tcp, udp, tcpErr, udpErr = ask()
	if tcpErr != nil || udpErr != nil || tcp.server == "node" || udp.server == "node" {
		t.Fatalf("with backends: %v %v, %v %v; want a task", tcp, tcpErr, udp, udpErr)
	}
}
