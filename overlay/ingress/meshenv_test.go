package ingress

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoalhq/shoal/overlay/internal/nstest"
	"github.com/shoalhq/shoal/overlay/nsrun"
	"github.com/shoalhq/shoal/overlay/sandbox"
	"github.com/shoalhq/shoal/overlay/vxlan"
	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
)

// The mesh topology: three nodes and an outside client on one underlay
// (vxlantest: h0, h1, h2 are the nodes, h3 is the client, which is no
// cluster node), the ingress overlay between the nodes, and two tasks on
// it, on the second and third nodes. The first node runs no task.
const (
	ingressVNI  = 4096
	publishedTC = 8080 // TCP published port
	targetTCP   = 80
	publishedUD = 8081 // UDP published port
	targetUDP   = 81
)

var ingressSubnet = netip.MustParsePrefix("10.255.0.0/24")

type meshNode struct {
	host    vxlantest.Host
	index   int        // Gateway.Index
	ingress netip.Addr // the node's address on the ingress network
	mac     net.HardwareAddr
}

type meshTask struct {
	ns   string
	addr netip.Addr
	node int // index into mesh.nodes
}

type mesh struct {
	nodes  []meshNode
	client string     // the outside client's namespace
	caddr  netip.Addr // its underlay address
	tasks  []meshTask
}

// newMesh builds the topology, programs the task side of both tasks and
// starts their servers; no port is published yet. The first task has a
// default route (via its own node), the second none: ingress replies must
// not depend on the task's main table.
func newMesh(t testing.TB) *mesh {
	t.Helper()
	u := vxlantest.NewUnderlay(t, testRun.Name("m"), 4)
	m := &mesh{client: u.Hosts[3].NS, caddr: u.Hosts[3].Addr}
	var vteps []netip.Addr
	var remotes []vxlan.Remote
	mgrs := make([]*vxlan.Manager, 3)
	for i, h := range u.Hosts[:3] {
		n := meshNode{host: h, index: i + 1, ingress: netip.AddrFrom4([4]byte{10, 255, 0, byte(2 + i)}),
			mac: vxlan.BridgeMAC(ingressVNI, h.Addr)}
		m.nodes = append(m.nodes, n)
		vteps = append(vteps, h.Addr)
		remotes = append(remotes, vxlan.Remote{Addr: n.ingress, MAC: n.mac, VTEP: h.Addr})
		mgr, err := vxlan.New(vxlan.Config{NetNS: h.NS, VTEP: h.Addr})
		if err != nil {
			t.Fatalf("vxlan.New on %s: %v", h.Name, err)
		}
		t.Cleanup(func() { mgr.Close() })
		if _, err := mgr.EnsureNetwork(vxlan.Network{VNI: ingressVNI, Subnet: ingressSubnet, Gateway: n.ingress}); err != nil {
			t.Fatalf("EnsureNetwork on %s: %v", h.Name, err)
		}
		mgrs[i] = mgr
		setSysctl(t, h.NS, "/proc/sys/net/ipv4/conf/all/rp_filter", "1")
	}
	for i, node := range []int{1, 2} {
		addr := netip.AddrFrom4([4]byte{10, 255, 0, byte(10 + i)})
		tk := meshTask{ns: newNS(t, fmt.Sprintf("t%d", i)), addr: addr, node: node}
		a := sandbox.Attachment{
			HostNS: m.nodes[node].host.NS,
			TaskNS: tk.ns,
			Bridge: vxlan.BridgeName(ingressVNI),
			HostIf: sandbox.IfNameFor(tk.ns, "ingress"),
			IfName: "eth0",
			Addr:   netip.PrefixFrom(addr, ingressSubnet.Bits()),
			MAC:    vxlan.MACFor(addr),
		}
		if i == 0 {
			a.Gateway = m.nodes[node].ingress
		}
		if err := sandbox.Attach(a); err != nil {
			t.Fatalf("attach task %s: %v", addr, err)
		}
		setSysctl(t, tk.ns, "/proc/sys/net/ipv4/conf/all/rp_filter", "1")
		setSysctl(t, tk.ns, "/proc/sys/net/ipv4/conf/eth0/rp_filter", "1")
		m.tasks = append(m.tasks, tk)
		remotes = append(remotes, vxlan.Remote{Addr: addr, MAC: a.MAC, VTEP: m.nodes[node].host.Addr})
	}
	for i, mgr := range mgrs {
		if err := mgr.SetPeers(ingressVNI, vteps); err != nil {
			t.Fatalf("node %d SetPeers: %v", i, err)
		}
		if err := mgr.SetRemotes(ingressVNI, remotes); err != nil {
			t.Fatalf("node %d SetRemotes: %v", i, err)
		}
	}
	// The task side goes first: a task lists every node before any node
	// publishes to it.
	for _, tk := range m.tasks {
		if err := ApplyTask(tk.ns, TaskSide{IfName: "eth0", Gateways: m.gateways(), UDPPorts: []uint16{targetUDP}}); err != nil {
			t.Fatalf("ApplyTask in %s: %v", tk.ns, err)
		}
		serveTask(t, tk.ns, tk.addr)
	}
	return m
}

func (m *mesh) gateways() []Gateway {
	var gws []Gateway
	for _, n := range m.nodes {
		gws = append(gws, Gateway{Index: n.index, Addr: n.ingress, MAC: n.mac})
	}
	return gws
}

// services publishes TCP 8080 → 80 and UDP 8081 → 81 over the given tasks.
func (m *mesh) services(tasks ...meshTask) []Published {
	var backends []netip.Addr
	for _, tk := range tasks {
		backends = append(backends, tk.addr)
	}
	return []Published{
		{Protocol: TCP, Port: publishedTC, TargetPort: targetTCP, Backends: backends},
		{Protocol: UDP, Port: publishedUD, TargetPort: targetUDP, Backends: backends},
	}
}

// publish applies services on every node.
func (m *mesh) publish(t testing.TB, services []Published) {
	t.Helper()
	for _, n := range m.nodes {
		if err := ApplyHost(n.host.NS, services); err != nil {
			t.Fatalf("ApplyHost on %s: %v", n.host.Name, err)
		}
	}
}

func setSysctl(t testing.TB, ns, file, value string) {
	t.Helper()
	if err := nsrun.Do(ns, func() error { return os.WriteFile(file, []byte(value), 0o644) }); err != nil {
		t.Fatalf("set %s=%s in %s: %v", file, value, ns, err)
	}
}

// serveTask starts, in the task namespace ns, a TCP server on 0.0.0.0:80
// and a UDP server on 0.0.0.0:81. Both answer each request with "ADDR
// PEER\n": the task's address and the peer address the server sees.
// Bound to 0.0.0.0 on purpose: the UDP reply source is the kernel's pick.
func serveTask(t testing.TB, ns string, addr netip.Addr) {
	t.Helper()
	serveAnswering(t, ns, addr.String(), targetTCP, targetUDP)
}

// serveAnswering starts TCP and UDP servers on 0.0.0.0 in ns answering
// "NAME PEER\n"; they stop when the test ends.
func serveAnswering(t testing.TB, ns, name string, tcpPort, udpPort int) {
	t.Helper()
	nstest.Serve(t, ns, fmt.Sprintf("0.0.0.0:%d", tcpPort), fmt.Sprintf("0.0.0.0:%d", udpPort),
		func(c net.Conn) {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				return
			}
			peer := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			_, _ = fmt.Fprintf(c, "%s %s\n", name, peer)
		},
		func(_ []byte, from *net.UDPAddr) []byte {
			return fmt.Appendf(nil, "%s %s\n", name, from.AddrPort().Addr().Unmap())
		})
}

// answer is what a server said: who answered and the peer it saw.
type answer struct {
	server string
	peer   netip.Addr
}

func parseAnswer(line string) (answer, error) {
	f := strings.Fields(line)
	if len(f) != 2 {
		return answer{}, fmt.Errorf("malformed answer %q", line)
	}
	peer, err := netip.ParseAddr(f[1])
	return answer{server: f[0], peer: peer}, err
}

// askTCP connects to dst from the calling thread's namespace, sends a
// request and returns the answer. The connection ends with a reset: no
// TIME_WAIT, so many connections never run out of ports.
func askTCP(dst netip.AddrPort, timeout time.Duration) (answer, error) {
	c, err := net.DialTimeout("tcp4", dst.String(), timeout)
	if err != nil {
		return answer{}, err
	}
	defer func() {
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	}()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "who?\n"); err != nil {
		return answer{}, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return answer{}, fmt.Errorf("read answer: %w", err)
	}
	return parseAnswer(line)
}

// askUDP sends a datagram to dst from a new socket (a new flow) in the
// calling thread's namespace and returns the answer, sending again on
// silence until timeout. A connected socket takes only replies from dst:
// an answer proves the reply was un-DNATed on the way back.
func askUDP(dst netip.AddrPort, timeout time.Duration) (answer, error) {
	c, err := net.Dial("udp4", dst.String())
	if err != nil {
		return answer{}, err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 128)
	for {
		if _, err := c.Write([]byte("who?\n")); err != nil {
			return answer{}, err
		}
		wait := time.Now().Add(300 * time.Millisecond)
		if wait.After(deadline) {
			wait = deadline
		}
		_ = c.SetReadDeadline(wait)
		n, err := c.Read(buf)
		if err == nil {
			return parseAnswer(string(buf[:n]))
		}
		if !isTimeout(err) || time.Now().After(deadline) {
			return answer{}, err
		}
	}
}

// isTimeout reports whether err is a deadline, as opposed to a refusal.
var isTimeout = nstest.IsTimeout
