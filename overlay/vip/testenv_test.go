package vip

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/internal/nstest"
)

// testRun names every namespace this test run creates: "vip", 4 random
// hex digits and a dash, so that leftovers can be found and removed.
var testRun = nstest.NewRun("vip")

// runPrefix is the prefix of every namespace name of this run.
var runPrefix = testRun.Prefix()

// newNS creates a named network namespace with lo up and returns its path.
// It is deleted when the test ends, also on failure.
var newNS = testRun.NewNS

// nsName returns the name of a namespace from its /run/netns path.
func nsName(path string) string { return strings.TrimPrefix(path, "/run/netns/") }

func run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// inNS runs fn on a fresh OS thread switched into the namespace at path.
// The thread is never switched back: it exits with its goroutine, so no
// other goroutine ever runs in that namespace by accident.
func inNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, on purpose (see above)
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		_ = unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Addresses of the test topology. The VIPs live in vipNet, which is
// routed through the client's veth but configured nowhere.
var (
	clientAddr = netip.MustParseAddr("10.98.0.1")
	vipNet     = netip.MustParsePrefix("10.99.0.0/16")
	testVIP    = netip.MustParseAddr("10.99.0.100")
)

const (
	tcpPort = 8080
	udpPort = 5353
)

// topology is a client namespace joined by a veth pair to a servers
// namespace holding several backend addresses, each with a TCP and a UDP
// server that answer with their own address.
type topology struct {
	client, servers string
	backends        []netip.Addr
}

func newTopology(tb testing.TB, nBackends int) *topology {
	tb.Helper()
	tp := &topology{client: newNS(tb, "c"), servers: newNS(tb, "s")}
	c, s := nsName(tp.client), nsName(tp.servers)
	run(tb, "ip", "-n", c, "link", "add", "shc0", "type", "veth", "peer", "name", "shs0", "netns", s)
	run(tb, "ip", "-n", c, "addr", "add", clientAddr.String()+"/24", "dev", "shc0")
	run(tb, "ip", "-n", c, "link", "set", "shc0", "up")
	run(tb, "ip", "-n", c, "route", "add", vipNet.String(), "dev", "shc0")
	for i := range nBackends {
		b := netip.AddrFrom4([4]byte{10, 98, 0, byte(2 + i)})
		tp.backends = append(tp.backends, b)
		run(tb, "ip", "-n", s, "addr", "add", b.String()+"/24", "dev", "shs0")
	}
	run(tb, "ip", "-n", s, "link", "set", "shs0", "up")
	for _, b := range tp.backends {
		serve(tb, tp.servers, b)
	}
	return tp
}

// serve starts, in namespace ns, a TCP server on addr:tcpPort and a UDP
// server on addr:udpPort that answer every connection or datagram with
// addr. They stop when the test ends.
func serve(tb testing.TB, ns string, addr netip.Addr) {
	tb.Helper()
	answer := []byte(addr.String() + "\n")
	nstest.Serve(tb, ns, netip.AddrPortFrom(addr, tcpPort).String(), netip.AddrPortFrom(addr, udpPort).String(),
		func(c net.Conn) { _, _ = c.Write(answer) },
		func([]byte, *net.UDPAddr) []byte { return answer })
}

// askTCP connects to addr (from the calling thread's namespace) and
// returns the address the server answered with.
func askTCP(addr netip.Addr, timeout time.Duration) (netip.Addr, error) {
	c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(addr, tcpPort).String(), timeout)
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read answer: %w", err)
	}
	return netip.ParseAddr(strings.TrimSpace(line))
}

// askUDP sends a datagram to addr and returns the address in the answer.
func askUDP(addr netip.Addr, timeout time.Duration) (netip.Addr, error) {
	c, err := net.Dial("udp4", netip.AddrPortFrom(addr, udpPort).String())
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("who?")); err != nil {
		return netip.Addr{}, err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read answer: %w", err)
	}
	return netip.ParseAddr(strings.TrimSpace(string(buf[:n])))
}

// isTimeout reports whether err is a deadline, as opposed to a refusal.
var isTimeout = nstest.IsTimeout
