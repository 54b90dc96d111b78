package bridge

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/shoalhq/shoal/overlay/sandbox"
)

// Defaults and limits of a Config.
const (
	// DefaultBridge is the bridge's name when Config.Bridge is empty.
	DefaultBridge = "shbridge0"
	// DefaultMTU is the MTU of the bridge and every veth when Config.MTU
	// is 0: the bridge network does not encapsulate.
	DefaultMTU = 1500
	// MinPrefixBits is the shortest accepted subnet prefix (/8): the
	// allocator scans the subnet, so it must stay bounded.
	MinPrefixBits = 8
	// MaxPrefixBits is the longest accepted subnet prefix (/30): network,
	// gateway, broadcast and at least one task address.
	MaxPrefixBits = 30
	// TableName is the nftables table (family ip) that holds the NAT.
	TableName = "shoal_bridge"
	// TaskIfName is the task's interface on the bridge network.
	TaskIfName = "eth0"
	// ifPrefix starts every interface name this package creates.
	ifPrefix = "sh"
)

// DefaultSubnet is the subnet when Config.Subnet is not set.
var DefaultSubnet = netip.MustParsePrefix("172.18.0.0/16")

// reserved are the IPv4 ranges no task address may come from: "this
// network", loopback, link-local, multicast and the reserved class E.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

// Config describes the bridge network of one host.
type Config struct {
	// HostNS is the path of the host's network namespace (a bind mount
	// such as /run/netns/X, or /proc/PID/ns/net); "" is the caller's own.
	HostNS string
	// Subnet is the IPv4 subnet of the network, /8 to /30, with no host
	// bits set; its first address is the gateway, held by the bridge.
	// Zero means DefaultSubnet.
	Subnet netip.Prefix
	// Bridge is the bridge's name; it must start with "sh". "" means
	// DefaultBridge.
	Bridge string
	// MTU of the bridge and every veth, 1280..65535; 0 means DefaultMTU.
	MTU int
	// StateFile is where the allocations persist (JSON, replaced
	// atomically). Required; its directory must exist.
	StateFile string
}

// withDefaults returns cfg with its defaults filled in, or an ErrInvalid
// naming the field at fault.
func (cfg Config) withDefaults() (Config, error) {
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	s := cfg.Subnet
	if !s.Addr().Is4() {
		return cfg, fmt.Errorf("%w: Config.Subnet %v is not an IPv4 subnet (IPv6 is not supported); give one such as %v", ErrInvalid, s, DefaultSubnet)
	}
	if s.Bits() < MinPrefixBits || s.Bits() > MaxPrefixBits {
		return cfg, fmt.Errorf("%w: Config.Subnet %v has prefix length /%d; give /%d (largest) to /%d (smallest, one task)", ErrInvalid, s, s.Bits(), MinPrefixBits, MaxPrefixBits)
	}
	if s != s.Masked() {
		return cfg, fmt.Errorf("%w: Config.Subnet %v has host bits set; did you mean %v?", ErrInvalid, s, s.Masked())
	}
	for _, r := range reserved {
		if s.Overlaps(r) {
			return cfg, fmt.Errorf("%w: Config.Subnet %v overlaps the reserved range %v; use a private range such as %v", ErrInvalid, s, r, DefaultSubnet)
		}
	}
	if err := validIfName(cfg.Bridge); err != nil {
		return cfg, err
	}
	if cfg.MTU < sandbox.MinMTU || cfg.MTU > 65535 {
		return cfg, fmt.Errorf("%w: Config.MTU %d is outside %d..65535", ErrInvalid, cfg.MTU, sandbox.MinMTU)
	}
	if cfg.StateFile == "" {
		return cfg, fmt.Errorf("%w: Config.StateFile is empty: give the file where the task addresses persist across restarts", ErrInvalid)
	}
	return cfg, nil
}

func validIfName(name string) error {
	if len(name) > 15 || !strings.HasPrefix(name, ifPrefix) || strings.ContainsAny(name, "/: \t\n\x00") {
		return fmt.Errorf("%w: Config.Bridge %q must start with %q and be at most 15 characters with no '/', ':' or spaces", ErrInvalid, name, ifPrefix)
	}
	if strings.HasPrefix(name, sandbox.HostIfPrefix) {
		return fmt.Errorf("%w: Config.Bridge %q must not start with %q, the prefix of the tasks' veths", ErrInvalid, name, sandbox.HostIfPrefix)
	}
	return nil
}

// gateway is the bridge's address: the subnet's first address.
func gateway(subnet netip.Prefix) netip.Addr { return subnet.Addr().Next() }

// macFor returns the MAC of an address on the bridge network: 02:42
// (locally administered, unicast) and the four bytes of the address, as
// Docker does, so MACs never collide within the subnet.
func macFor(a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
}
