package bridge_test

import (
	"errors"
	"net/netip"
	"os"
	"testing"

	"github.com/shoalhq/shoal/overlay/bridge"
)

func TestOpenRefusesBadConfig(t *testing.T) {
	w := newWorld(t)
	// A host route and an interface address the subnet must not overlap.
	mustAddr(t, w.hostNL, "eth0", netip.MustParsePrefix("10.99.0.1/24"))
	mustAddr(t, w.hostNL, "lo", netip.MustParsePrefix("10.98.0.5/32")) // an address with no main-table route
	if err := os.WriteFile(w.state+".bad", []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := func(f func(*bridge.Config)) bridge.Config {
		c := w.config()
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  bridge.Config
		want error
	}{
		{"IPv6 subnet", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") }), bridge.ErrInvalid},
		{"4in6 subnet", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("::ffff:172.18.0.0/112") }), bridge.ErrInvalid},
		{"too small /31", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("172.18.0.0/31") }), bridge.ErrInvalid},
		{"too small /32", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("172.18.0.1/32") }), bridge.ErrInvalid},
		{"too large /7", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("10.0.0.0/7") }), bridge.ErrInvalid},
		{"host bits set", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("172.18.0.5/16") }), bridge.ErrInvalid},
		{"loopback", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("127.1.0.0/16") }), bridge.ErrInvalid},
		{"multicast", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("239.1.0.0/16") }), bridge.ErrInvalid},
		{"link-local", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("169.254.0.0/16") }), bridge.ErrInvalid},
		{"bridge without sh prefix", cfg(func(c *bridge.Config) { c.Bridge = "docker0" }), bridge.ErrInvalid},
		{"bridge with the veth prefix", cfg(func(c *bridge.Config) { c.Bridge = "shv0" }), bridge.ErrInvalid},
		{"bridge name too long", cfg(func(c *bridge.Config) { c.Bridge = "shbridge0123456789" }), bridge.ErrInvalid},
		{"MTU too small", cfg(func(c *bridge.Config) { c.MTU = 500 }), bridge.ErrInvalid},
		{"no state file", cfg(func(c *bridge.Config) { c.StateFile = "" }), bridge.ErrInvalid},
		{"missing host namespace", cfg(func(c *bridge.Config) { c.HostNS = "/run/netns/" + w.prefix + "nosuch" }), bridge.ErrInvalid},
		{"overlaps the uplink subnet", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("10.250.0.0/16") }), bridge.ErrSubnetConflict},
		{"inside a route", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("10.99.0.0/28") }), bridge.ErrSubnetConflict},
		{"around an address", cfg(func(c *bridge.Config) { c.Subnet = netip.MustParsePrefix("10.98.0.0/24") }), bridge.ErrSubnetConflict},
		{"name taken by a non-bridge", cfg(func(c *bridge.Config) { c.Bridge = "sheth" }), bridge.ErrNameInUse},
		{"corrupt state file", cfg(func(c *bridge.Config) { c.StateFile = w.state + ".bad" }), bridge.ErrState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == bridge.ErrNameInUse {
				renameUplink(t, w, "sheth")
			}
			n, err := bridge.Open(tc.cfg)
			if !errors.Is(err, tc.want) {
				if n != nil {
					n.Close()
				}
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
	if hasLink(t, w.host, bridge.DefaultBridge) || hasTable(t, w.host) {
		t.Errorf("a refused Open left a bridge or a table behind")
	}
	if _, err := os.Stat(w.state); !os.IsNotExist(err) {
		t.Errorf("a refused Open wrote the state file: %v", err)
	}
}

// renameUplink renames the host's eth0, so that a Config.Bridge of that
// name points at a veth.
func renameUplink(t *testing.T, w *world, name string) {
	t.Helper()
	l, err := w.hostNL.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.hostNL.LinkSetName(l, name); err != nil {
		t.Fatal(err)
	}
}

func TestAttachRefusesBadArguments(t *testing.T) {
	w := newWorld(t)
	n := w.open(t, w.config())
	for _, tc := range []struct {
		name, task, ns string
		want           error
	}{
		{"empty task", "", w.host, bridge.ErrInvalid},
		{"empty namespace", "t", "", bridge.ErrInvalid},
		{"missing namespace", "t", "/run/netns/" + w.prefix + "nosuch", bridge.ErrInvalid},
	} {
		if _, err := n.Attach(tc.task, tc.ns); !errors.Is(err, tc.want) {
			t.Errorf("%s: Attach: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := n.Detach(""); !errors.Is(err, bridge.ErrInvalid) {
		t.Errorf("Detach(\"\"): %v, want ErrInvalid", err)
	}
	if len(n.Tasks()) != 0 {
		t.Errorf("refused Attach calls allocated: %v", n.Tasks())
	}
}
