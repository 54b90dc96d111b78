package vxlan_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/shoalhq/shoal/overlay/sandbox"
	"github.com/shoalhq/shoal/overlay/vxlan"
	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
	"golang.org/x/sys/unix"
)

// task is a container's network namespace attached to one network.
type task struct {
	ns   string
	addr netip.Addr
	mac  net.HardwareAddr
	vtep netip.Addr
}

// attachTask makes a task namespace on host h and attaches it to network
// n (whose bridge must exist) at addr.
func attachTask(t *testing.T, e *env, host int, name string, n vxlan.Network, addr string) task {
	t.Helper()
	h := e.u.Hosts[host]
	a := netip.MustParseAddr(addr)
	tk := task{ns: vxlantest.NewNS(t, e.u.Prefix+name), addr: a, mac: vxlan.MACFor(a), vtep: h.Addr}
	err := sandbox.Attach(sandbox.Attachment{
		HostNS:  h.NS,
		TaskNS:  tk.ns,
		Bridge:  vxlan.BridgeName(n.VNI),
		HostIf:  sandbox.IfNameFor(name, fmt.Sprint(n.VNI)),
		IfName:  "eth0",
		Addr:    netip.PrefixFrom(a, n.Subnet.Bits()),
		MAC:     tk.mac,
		Gateway: n.Gateway,
	})
	if err != nil {
		t.Fatalf("attach %s: %v", name, err)
	}
	return tk
}

func (tk task) remote() vxlan.Remote { return vxlan.Remote{Addr: tk.addr, MAC: tk.mac, VTEP: tk.vtep} }

// program gives every host's network vni the other hosts as peers and the
// given endpoints as remotes (each host ignores its own).
func program(t *testing.T, e *env, vni uint32, remotes []vxlan.Remote) {
	t.Helper()
	var vteps []netip.Addr
	for _, h := range e.u.Hosts {
		vteps = append(vteps, h.Addr)
	}
	for i, m := range e.mgrs {
		if err := m.SetPeers(vni, vteps); err != nil {
			t.Fatalf("host %d SetPeers: %v", i, err)
		}
		if err := m.SetRemotes(vni, remotes); err != nil {
			t.Fatalf("host %d SetRemotes: %v", i, err)
		}
	}
}

// listenIn opens a listener inside namespace ns; it is closed in cleanup.
func listenIn(t *testing.T, ns, network, addr string) io.Closer {
	t.Helper()
	var c io.Closer
	err := vxlantest.InNS(ns, func() error {
		var err error
		if network == "udp" {
			c, err = net.ListenPacket(network, addr)
		} else {
			c, err = net.Listen(network, addr)
		}
		return err
	})
	if err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serveEcho echoes every TCP connection or UDP datagram back.
func serveEcho(c io.Closer) {
	switch l := c.(type) {
	case net.Listener:
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					io.Copy(conn, conn)
				}()
			}
		}()
	case net.PacketConn:
		go func() {
			buf := make([]byte, 65536)
			for {
				n, from, err := l.ReadFrom(buf)
				if err != nil {
					return
				}
				l.WriteTo(buf[:n], from)
			}
		}()
	}
}

// dialIn connects from inside namespace ns; the socket stays there.
func dialIn(ns, network, addr string, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := vxlantest.InNS(ns, func() error {
		var err error
		conn, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return conn, err
}

// tcpEcho sends payload over a new connection and returns what came back.
func tcpEcho(ns, addr string, payload []byte, timeout time.Duration) ([]byte, error) {
	conn, err := dialIn(ns, "tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(payload)
		if err == nil {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		return nil, err
	}
	return got, <-werr
}

type counters struct{ txBytes, rxBytes, txPackets, rxPackets uint64 }

func vxlanCounters(t *testing.T, h vxlantest.Host, vni uint32) counters {
	t.Helper()
	l := linkByName(t, vxlantest.Handle(t, h.NS), vxlan.VxlanName(vni))
	s := l.Attrs().Statistics
	if s == nil {
		t.Fatalf("no statistics on %s", l.Attrs().Name)
	}
	return counters{s.TxBytes, s.RxBytes, s.TxPackets, s.RxPackets}
}

func TestCrossHostTCPOverVXLAN(t *testing.T) {
	e := newEnv(t, 2)
	n := vxlan.Network{VNI: 4096, Subnet: netip.MustParsePrefix("10.20.0.0/24"), Gateway: netip.MustParseAddr("10.20.0.1")}
	for i, m := range e.mgrs {
		if _, err := m.EnsureNetwork(n); err != nil {
			t.Fatalf("host %d EnsureNetwork: %v", i, err)
		}
	}
	a := attachTask(t, e, 0, "ta", n, "10.20.0.2")
	b := attachTask(t, e, 1, "tb", n, "10.20.0.3")
	program(t, e, n.VNI, []vxlan.Remote{a.remote(), b.remote()})
	// With a task port on it, the bridge still has its own MAC and MTU.
	checkNetwork(t, vxlantest.Handle(t, e.u.Hosts[0].NS), e.u.Hosts[0], n, vxlan.BridgeMAC(n.VNI, e.u.Hosts[0].Addr))
	serveEcho(listenIn(t, b.ns, "tcp", "10.20.0.3:7000"))
	serveEcho(listenIn(t, b.ns, "udp", "10.20.0.3:7001"))

	// Ensure/Attach/program a second time: same state, still working.
	for i, m := range e.mgrs {
		if _, err := m.EnsureNetwork(n); err != nil {
			t.Fatalf("host %d second EnsureNetwork: %v", i, err)
		}
	}
	attachAgain := sandbox.Attachment{HostNS: e.u.Hosts[0].NS, TaskNS: a.ns, Bridge: vxlan.BridgeName(n.VNI),
		HostIf: sandbox.IfNameFor("ta", "4096"), IfName: "eth0", Addr: netip.PrefixFrom(a.addr, 24), MAC: a.mac, Gateway: n.Gateway}
	if err := sandbox.Attach(attachAgain); err != nil {
		t.Fatalf("second Attach: %v", err)
	}
	before := readForwarding(t, vxlantest.Handle(t, e.u.Hosts[0].NS), n.VNI)
	program(t, e, n.VNI, []vxlan.Remote{a.remote(), b.remote()})
	if after := readForwarding(t, vxlantest.Handle(t, e.u.Hosts[0].NS), n.VNI); !after.equal(before) {
		t.Fatalf("programming twice changed host 0: %+v then %+v", before, after)
	}

	ca0, cb0 := vxlanCounters(t, e.u.Hosts[0], n.VNI), vxlanCounters(t, e.u.Hosts[1], n.VNI)
	payload := make([]byte, 64<<10)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	got, err := tcpEcho(a.ns, "10.20.0.3:7000", payload, 5*time.Second)
	if err != nil {
		t.Fatalf("TCP echo from task A to task B: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("TCP echo returned %d bytes, not the %d sent", len(got), len(payload))
	}
	// It crossed hosts over VXLAN: both directions went through both
	// VXLAN devices (the only path between the task namespaces).
	ca1, cb1 := vxlanCounters(t, e.u.Hosts[0], n.VNI), vxlanCounters(t, e.u.Hosts[1], n.VNI)
	for _, c := range []struct {
		what      string
		got, want uint64
	}{
		{"host A vxlan tx bytes", ca1.txBytes - ca0.txBytes, 64 << 10},
		{"host A vxlan rx bytes", ca1.rxBytes - ca0.rxBytes, 64 << 10},
		{"host B vxlan rx bytes", cb1.rxBytes - cb0.rxBytes, 64 << 10},
		{"host B vxlan tx bytes", cb1.txBytes - cb0.txBytes, 64 << 10},
	} {
		if c.got < c.want {
			t.Errorf("%s grew by %d, want at least %d: traffic did not cross over VXLAN", c.what, c.got, c.want)
		}
	}

	// Full-size datagrams pass with DF set (MTU 1450 everywhere: 1422
	// bytes of payload + 28 of headers); one byte more does not leave the
	// task.
	udp, err := dialIn(a.ns, "udp", "10.20.0.3:7001", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	setDontFragment(t, udp)
	full := bytes.Repeat([]byte{0xa5}, 1422)
	if err := udpEcho(udp, full); err != nil {
		t.Fatalf("full-size datagram (1422-byte payload, DF): %v", err)
	}
	if err := udpEcho(udp, full[:1400]); err != nil {
		t.Fatalf("1400-byte datagram: %v", err)
	}
	if _, err := udp.Write(append(full, 0)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("1423-byte datagram with DF: %v, want EMSGSIZE (task MTU must be 1450)", err)
	}
}

func setDontFragment(t *testing.T, c net.Conn) {
	t.Helper()
	raw, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
	}); err != nil || serr != nil {
		t.Fatalf("set DF: %v %v", err, serr)
	}
}

// udpEcho sends p until it comes back intact, within a deadline.
func udpEcho(c net.Conn, p []byte) error {
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 65536)
	for time.Now().Before(deadline) {
		if _, err := c.Write(p); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil && bytes.Equal(buf[:n], p) {
			return nil
		}
	}
	return errors.New("no echo before the deadline")
}

func TestNetworksWithDifferentVNIsAreIsolated(t *testing.T) {
	e := newEnv(t, 2)
	// Same subnet on purpose: only the VNI separates them.
	subnet := netip.MustParsePrefix("10.30.0.0/24")
	n1 := vxlan.Network{VNI: 4096, Subnet: subnet}
	n2 := vxlan.Network{VNI: 4097, Subnet: subnet}
	for i, m := range e.mgrs {
		for _, n := range []vxlan.Network{n1, n2} {
			if _, err := m.EnsureNetwork(n); err != nil {
				t.Fatalf("host %d EnsureNetwork(%d): %v", i, n.VNI, err)
			}
		}
	}
	a1 := attachTask(t, e, 0, "a1", n1, "10.30.0.2") // net 1, host A
	b1 := attachTask(t, e, 1, "b1", n1, "10.30.0.4") // net 1, host B
	b2 := attachTask(t, e, 1, "b2", n2, "10.30.0.3") // net 2, host B
	for _, tk := range []task{a1, b1, b2} {
		serveEcho(listenIn(t, tk.ns, "tcp", netip.AddrPortFrom(tk.addr, 7000).String()))
	}
	// As if the gossip leaked: each network's forwarding also lists the
	// other network's task, so frames for it are sent, with the wrong VNI.
	program(t, e, n1.VNI, []vxlan.Remote{a1.remote(), b1.remote(), b2.remote()})
	program(t, e, n2.VNI, []vxlan.Remote{b2.remote(), a1.remote()})

	msg := []byte("same network")
	if got, err := tcpEcho(a1.ns, "10.30.0.4:7000", msg, 5*time.Second); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("a1 → b1 on network 1: %q, %v", got, err)
	}
	// Nothing answers at all (no reset either): the dials time out.
	if _, err := tcpEcho(a1.ns, "10.30.0.3:7000", msg, 500*time.Millisecond); !isTimeout(err) {
		t.Fatalf("a1 (network 1) → b2 (network 2): %v, want a timeout", err)
	}
	if _, err := tcpEcho(b2.ns, "10.30.0.2:7000", msg, 500*time.Millisecond); !isTimeout(err) {
		t.Fatalf("b2 (network 2) → a1 (network 1): %v, want a timeout", err)
	}
	// The failure is the VNI's doing: a1 resolved b2's address (the leaked
	// neighbour entry answered its ARP), so frames for b2 were sent, tagged
	// with network 1's VNI, and host B delivered none of them to b2.
	neighs, err := vxlantest.Handle(t, a1.ns).NeighList(0, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	resolved := false
	for _, nb := range neighs {
		if nb.IP.Equal(b2.addr.AsSlice()) && nb.HardwareAddr.String() == b2.mac.String() {
			resolved = true
		}
	}
	if !resolved {
		t.Fatalf("a1 never resolved b2's address (neighbours %+v): the test did not exercise VNI isolation", neighs)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
