package bridge_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/shoalhq/shoal/overlay/bridge"
	"github.com/shoalhq/shoal/overlay/internal/nstest"
	"github.com/shoalhq/shoal/overlay/nsrun"
	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
)

// Addresses of the test topology; they exist only inside the namespaces
// the tests create.
var (
	hostUplink    = netip.MustParsePrefix("10.250.0.1/24") // the host's eth0
	outsideUplink = netip.MustParsePrefix("10.250.0.2/24") // the outside's eth0, the host's default gateway
	serverAddr    = netip.MustParseAddr("10.251.0.10")     // on the outside's lo; the outside has no route to the bridge subnet
)

// newNS creates the named network namespace (lo up) and deletes it in
// t.Cleanup, also when the test fails. The calling thread never moves.
var newNS = nstest.NewNS

// handle opens a netlink handle inside the namespace at path, closed in
// t.Cleanup.
var handle = vxlantest.Handle

func mustAddr(t testing.TB, h *netlink.Handle, link string, p netip.Prefix) {
	t.Helper()
	l, err := h.LinkByName(link)
	if err != nil {
		t.Fatalf("look up %s: %v", link, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}}
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatalf("add %v to %s: %v", p, link, err)
	}
}

// world is a "host" namespace whose eth0 leads to an "outside" namespace
// (its default route), with a TCP and a UDP echo server on serverAddr in
// the outside. The outside has no route to the bridge subnet: only
// masqueraded traffic gets replies.
type world struct {
	prefix  string
	host    string // host namespace path: Config.HostNS
	outside string
	state   string // a state file path in a fresh directory
	hostNL  *netlink.Handle
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{prefix: vxlantest.Prefix("obr")}
	w.host = newNS(t, w.prefix+"host")
	w.outside = newNS(t, w.prefix+"out")
	w.state = filepath.Join(t.TempDir(), "bridge.json")
	w.hostNL = handle(t, w.host)
	out := handle(t, w.outside)
	outNS, err := netns.GetFromPath(w.outside)
	if err != nil {
		t.Fatal(err)
	}
	defer outNS.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(outNS))}
	if err := w.hostNL.LinkAdd(veth); err != nil {
		t.Fatalf("create the uplink veth: %v", err)
	}
	mustAddr(t, w.hostNL, "eth0", hostUplink)
	mustAddr(t, out, "eth0", outsideUplink)
	mustAddr(t, out, "lo", netip.PrefixFrom(serverAddr, 32))
	for _, h := range []*netlink.Handle{w.hostNL, out} {
		l, err := h.LinkByName("eth0")
		if err == nil {
			err = h.LinkSetUp(l)
		}
		if err != nil {
			t.Fatalf("uplink up: %v", err)
		}
	}
	if err := w.hostNL.RouteAdd(&netlink.Route{Gw: outsideUplink.Addr().AsSlice()}); err != nil {
		t.Fatalf("host default route: %v", err)
	}
	return w
}

func (w *world) config() bridge.Config {
	return bridge.Config{HostNS: w.host, StateFile: w.state}
}

// open opens the world's bridge network with cfg and closes it in
// t.Cleanup.
func (w *world) open(t testing.TB, cfg bridge.Config) *bridge.Network {
	t.Helper()
	n, err := bridge.Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// task creates a task namespace.
func (w *world) task(t testing.TB, name string) string {
	t.Helper()
	return newNS(t, w.prefix+name)
}

// serveEcho runs, inside the namespace at ns, a TCP and a UDP server on
// addr:port that answer every line or datagram with "PEER-IP MESSAGE".
// They stop in t.Cleanup.
func serveEcho(t testing.TB, ns string, addr netip.Addr, port int) {
	t.Helper()
	ap := netip.AddrPortFrom(addr, uint16(port)).String()
	nstest.Serve(t, ns, ap, ap,
		func(c net.Conn) {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			peer := c.RemoteAddr().(*net.TCPAddr).IP
			fmt.Fprintf(c, "%s %s", peer, line)
		},
		func(req []byte, from *net.UDPAddr) []byte {
			return fmt.Appendf(nil, "%s %s", from.IP, req)
		})
}

// ask sends msg from inside the namespace at ns to addr:port over network
// ("tcp4" or "udp4") and returns the address the server saw, retrying
// until a deadline (the first packets may wait for ARP).
func ask(t testing.TB, ns, network string, addr netip.Addr, port int, msg string) netip.Addr {
	t.Helper()
	ap := netip.AddrPortFrom(addr, uint16(port)).String()
	deadline := time.Now().Add(5 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		var c net.Conn
		err := nsrun.Do(ns, func() (err error) {
			c, err = net.DialTimeout(network, ap, time.Second)
			return err
		})
		if err == nil {
			var reply string
			reply, err = exchange(c, msg)
			c.Close()
			if err == nil {
				peer, rest, _ := strings.Cut(strings.TrimSpace(reply), " ")
				if rest != msg {
					t.Fatalf("%s %s from %s: reply %q does not echo %q", network, ap, ns, reply, msg)
				}
				a, perr := netip.ParseAddr(peer)
				if perr != nil {
					t.Fatalf("%s %s from %s: reply %q has no peer address", network, ap, ns, reply)
				}
				return a
			}
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s %s from %s: no answer before the deadline: %v", network, ap, ns, lastErr)
	return netip.Addr{}
}

func exchange(c net.Conn, msg string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return "", err
	}
	if _, ok := c.(*net.UDPConn); ok {
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// taskState is a task's eth0 as read back from the kernel.
type taskState struct {
	addrs      []netip.Prefix
	defaultVia netip.Addr
	mac        string
	mtu        int
}

func readTask(t testing.TB, ns string) taskState {
	t.Helper()
	h := handle(t, ns)
	l, err := h.LinkByName(bridge.TaskIfName)
	if err != nil {
		t.Fatalf("%s in %s: %v", bridge.TaskIfName, ns, err)
	}
	var s taskState
	s.mac, s.mtu = l.Attrs().HardwareAddr.String(), l.Attrs().MTU
	addrs, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		s.addrs = append(s.addrs, netip.PrefixFrom(ip.Unmap(), ones))
	}
	routes, err := h.RouteList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		gw, _ := netip.AddrFromSlice(r.Gw)
		s.defaultVia = gw.Unmap()
	}
	return s
}

// hasLink reports whether the namespace at ns has an interface name.
func hasLink(t testing.TB, ns, name string) bool {
	t.Helper()
	_, err := handle(t, ns).LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return false
	}
	if err != nil {
		t.Fatalf("look up %s in %s: %v", name, ns, err)
	}
	return true
}

// ports returns the names of the bridge's ports in the host namespace.
func (w *world) ports(t testing.TB, bridgeName string) []string {
	t.Helper()
	br, err := w.hostNL.LinkByName(bridgeName)
	if err != nil {
		t.Fatalf("bridge %s: %v", bridgeName, err)
	}
	links, err := w.hostNL.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// eth0Addrs returns the IPv4 addresses of eth0 in the namespace at ns,
// and false when it has no eth0.
func eth0Addrs(t interface {
	Helper()
	Fatalf(string, ...any)
}, ns string) ([]netip.Addr, bool) {
	t.Helper()
	nsh, err := netns.GetFromPath(ns)
	if err != nil {
		t.Fatalf("open %s: %v", ns, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatalf("netlink in %s: %v", ns, err)
	}
	defer h.Close()
	l, err := h.LinkByName(bridge.TaskIfName)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("look up eth0 in %s: %v", ns, err)
	}
	list, err := h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("addresses of eth0 in %s: %v", ns, err)
	}
	var out []netip.Addr
	for _, a := range list {
		ip, _ := netip.AddrFromSlice(a.IP)
		out = append(out, ip.Unmap())
	}
	return out, true
}
