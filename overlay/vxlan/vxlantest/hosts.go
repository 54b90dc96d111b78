// Package vxlantest builds "hosts as network namespaces" for tests of the
// overlay data plane: an underlay namespace holding a bridge, and N host
// namespaces, each with a veth eth0 plugged into that bridge and a private
// underlay address. Nothing is created in the caller's own namespace; every
// namespace is named with a unique per-run prefix and deleted in t.Cleanup,
// also when the test fails.
package vxlantest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/shoalhq/shoal/overlay/nsrun"
)

// NetnsDir is where named network namespaces are bind-mounted.
const NetnsDir = "/run/netns"

// UnderlayPrefix is the subnet the hosts' eth0 addresses come from; it
// exists only inside the namespaces this package creates.
var UnderlayPrefix = netip.MustParsePrefix("192.168.237.0/24")

// Host is one simulated machine: a network namespace whose eth0 is plugged
// into the underlay bridge.
type Host struct {
	Name string     // namespace name
	NS   string     // namespace path, for Config.NetNS and Attachment.HostNS
	Addr netip.Addr // eth0 address on the underlay (the host's VTEP)
	Link string     // underlay interface name in the host namespace ("eth0")
}

// Underlay is a set of hosts sharing one L2 segment.
type Underlay struct {
	Prefix string // unique per-run prefix of every namespace name
	NS     string // path of the underlay namespace
	Hosts  []Host
}

// Prefix returns a unique per-run name prefix: short, 4 random hex digits
// and a dash (e.g. "ovx3fa2-"). Keep short ≤ 4 characters so names stay
// readable.
func Prefix(short string) string {
	var b [2]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return short + hex.EncodeToString(b[:]) + "-"
}

// RequireRoot skips the test when the process cannot create namespaces.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

// NewUnderlay creates the underlay namespace with a bridge and n host
// namespaces named prefix+"h0" … prefix+"h<n-1>", each with eth0 at
// UnderlayPrefix .1, .2, … and lo up. Everything is removed in t.Cleanup.
func NewUnderlay(t testing.TB, prefix string, n int) *Underlay {
	t.Helper()
	RequireRoot(t)
	u := &Underlay{Prefix: prefix}
	u.NS = NewNS(t, prefix+"ul")
	ulNS, err := netns.GetFromPath(u.NS)
	if err != nil {
		t.Fatalf("open underlay namespace: %v", err)
	}
	defer ulNS.Close()
	ul, err := netlink.NewHandleAt(ulNS)
	if err != nil {
		t.Fatalf("netlink handle in underlay namespace: %v", err)
	}
	defer ul.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "shul0"}}
	if err := ul.LinkAdd(br); err != nil {
		t.Fatalf("create underlay bridge: %v", err)
	}
	if err := ul.LinkSetUp(br); err != nil {
		t.Fatalf("underlay bridge up: %v", err)
	}
	base := UnderlayPrefix.Addr().As4()
	for i := range n {
		name := fmt.Sprintf("%sh%d", prefix, i)
		path := NewNS(t, name)
		base[3] = byte(i + 1)
		h := Host{Name: name, NS: path, Addr: netip.AddrFrom4(base), Link: "eth0"}
		if err := plugHost(ul, br, h, i); err != nil {
			t.Fatalf("plug host %s into the underlay: %v", name, err)
		}
		u.Hosts = append(u.Hosts, h)
	}
	return u
}

func plugHost(ul *netlink.Handle, br *netlink.Bridge, h Host, i int) error {
	hostNS, err := netns.GetFromPath(h.NS)
	if err != nil {
		return err
	}
	defer hostNS.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: fmt.Sprintf("u%d", i), MasterIndex: br.Index},
		PeerName:      h.Link,
		PeerNamespace: netlink.NsFd(int(hostNS)),
	}
	if err := ul.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth: %w", err)
	}
	if err := ul.LinkSetUp(veth); err != nil {
		return err
	}
	hh, err := netlink.NewHandleAt(hostNS)
	if err != nil {
		return err
	}
	defer hh.Close()
	eth, err := hh.LinkByName(h.Link)
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{
		IP:   h.Addr.AsSlice(),
		Mask: net.CIDRMask(UnderlayPrefix.Bits(), 32),
	}}
	if err := hh.AddrAdd(eth, addr); err != nil {
		return fmt.Errorf("address eth0: %w", err)
	}
	if err := hh.LinkSetUp(eth); err != nil {
		return err
	}
	return LoUp(h.NS)
}

// LoUp sets the loopback interface of the namespace at path up.
func LoUp(path string) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	return h.LinkSetUp(lo)
}

// NewNS creates the named network namespace name under NetnsDir and
// deletes it in t.Cleanup. The calling goroutine's thread is never moved:
// the namespace is made on a throw-away locked thread.
func NewNS(t testing.TB, name string) string {
	t.Helper()
	RequireRoot(t)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if err != nil {
			if serr := netns.Set(orig); serr != nil {
				errc <- errors.Join(err, serr) // thread stays locked and dies with the goroutine
				return
			}
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		ns.Close()
		if err := netns.Set(orig); err != nil {
			errc <- err // thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("create network namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete network namespace %s: %v", name, err)
		}
	})
	return filepath.Join(NetnsDir, name)
}

// InNS runs fn inside the namespace at path (see nsrun.Do); sockets fn
// creates stay in that namespace after it returns.
func InNS(path string, fn func() error) error { return nsrun.Do(path, fn) }

// Handle opens a netlink handle inside the namespace at path, closed in
// t.Cleanup.
func Handle(t testing.TB, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open namespace %s: %v", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", path, err)
	}
	t.Cleanup(h.Close)
	return h
}
