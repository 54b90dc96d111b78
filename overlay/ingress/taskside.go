package ingress

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/internal/ipv4"
)

// Limits and numbering of the task side. Gateway k (1..MaxGateways) owns
// the connection mark 0x100+k, the routing table 0x100+k (257..511) and
// the policy rule of priority 100+k (101..355); the UDP source rules
// (priority 400) come after all of them and use table 0x100 (256).
//
// RECIPES numbers the table 100+k and the UDP rule and table 110: that
// collides with gateway 10, and tables 253..255 (default, main, local)
// would be gateways 153..155. The marks and the order of the rules are
// RECIPES'.
const (
	// MaxGateways is the largest Gateway.Index: the mark 0x100+k must keep
	// 0x100 under the mask 0xf00.
	MaxGateways = 0xff

	markBase     = 0x100 // mark and routing table of gateway k: markBase + k
	markRuleMask = 0xfff // fwmark mask of the policy rules
	markKindMask = 0xf00 // marks whose bits under this mask are markBase are ours
	prefBase     = 100   // policy rule priority of gateway k: prefBase + k

	// udpTable is the routing table, and udpRulePref the priority of the
	// rules, that pick a 0.0.0.0-bound UDP server's reply source on the
	// ingress interface. The rules sit after every gateway's rule, as
	// they must: a marked reply must meet its gateway's rule first.
	udpTable    = markBase
	udpRulePref = 400
)

// Gateway is one node of the cluster as seen from a task on the ingress
// network: the node's own address on that network (its bridge's) and
// its bridge's fixed MAC, from which the flows it forwards arrive.
type Gateway struct {
	// Index is the node's small number, 1..MaxGateways, stable for the
	// node's life and unique in the cluster: it names the node's mark and
	// routing table (0x100+Index) and rule priority (100+Index) in every
	// task.
	Index int
	// Addr is the node's ingress address, unicast IPv4, on the task's
	// ingress subnet.
	Addr netip.Addr
	// MAC is the node's ingress bridge MAC (vxlan.BridgeMAC).
	MAC net.HardwareAddr
}

// TaskSide is what a task attached to the ingress network needs so that
// its replies to a flow go back through the node the flow came in by.
type TaskSide struct {
	// IfName is the task's interface on the ingress network (eth0, eth1…).
	IfName string
	// Gateways are every node of the cluster, in any order.
	Gateways []Gateway
	// UDPPorts are the task's target ports served over UDP through the
	// mesh, in any order.
	UDPPorts []uint16
}

func gatewayMark(k int) uint32 { return uint32(markBase + k) }
func gatewayTable(k int) int   { return markBase + k }
func gatewayPref(k int) int    { return prefBase + k }

// validate checks t and returns the first violation, wrapped in a
// sentinel error and naming the field.
func (t *TaskSide) validate() error {
	if t.IfName == "" || len(t.IfName) >= unix.IFNAMSIZ || t.IfName == "lo" || t.IfName == "." || t.IfName == ".." ||
		strings.ContainsAny(t.IfName, "/: \t\n\x00") {
		return fmt.Errorf("ingress: TaskSide.IfName %q is not the name of a task interface (1..%d characters, not lo): %w", t.IfName, unix.IFNAMSIZ-1, ErrInvalidInterface)
	}
	indexes := map[int]int{}
	addrs := map[netip.Addr]int{}
	macs := map[string]int{}
	for i, g := range t.Gateways {
		if g.Index < 1 || g.Index > MaxGateways {
			return fmt.Errorf("ingress: Gateways[%d].Index %d is outside 1..%d: %w", i, g.Index, MaxGateways, ErrInvalidGateway)
		}
		if !ipv4.IsUnicast(g.Addr) {
			return fmt.Errorf("ingress: Gateways[%d].Addr %s is not a unicast IPv4 address: %w", i, ipv4.Describe(g.Addr), ErrInvalidGateway)
		}
		if len(g.MAC) != 6 || g.MAC[0]&1 != 0 || bytes.Equal(g.MAC, make(net.HardwareAddr, 6)) {
			return fmt.Errorf("ingress: Gateways[%d].MAC %q is not a 6-byte unicast Ethernet address: %w", i, g.MAC, ErrInvalidGateway)
		}
		for _, dup := range []struct {
			what string
			j    int
			seen bool
		}{
			{"Index", indexes[g.Index], indexes[g.Index] > 0},
			{"Addr", addrs[g.Addr], addrs[g.Addr] > 0},
			{"MAC", macs[g.MAC.String()], macs[g.MAC.String()] > 0},
		} {
			if dup.seen {
				return fmt.Errorf("ingress: Gateways[%d].%s is also Gateways[%d].%s: %w", i, dup.what, dup.j-1, dup.what, ErrDuplicateGateway)
			}
		}
		indexes[g.Index], addrs[g.Addr], macs[g.MAC.String()] = i+1, i+1, i+1
	}
	ports := map[uint16]int{}
	for i, p := range t.UDPPorts {
		if p == 0 {
			return fmt.Errorf("ingress: UDPPorts[%d] is 0: %w", i, ErrInvalidPort)
		}
		if j, dup := ports[p]; dup {
			return fmt.Errorf("ingress: UDPPorts[%d] %d is also UDPPorts[%d]: %w", i, p, j, ErrDuplicatePort)
		}
		ports[p] = i
	}
	return nil
}

// normalize returns a copy of t with gateways sorted by index, ports
// sorted and empty lists nil: the form ReadTask returns.
func (t TaskSide) normalize() TaskSide {
	out := TaskSide{IfName: t.IfName}
	for _, g := range t.Gateways {
		out.Gateways = append(out.Gateways, Gateway{Index: g.Index, Addr: g.Addr, MAC: slices.Clone(g.MAC)})
	}
	slices.SortFunc(out.Gateways, func(a, b Gateway) int { return cmp.Compare(a.Index, b.Index) })
	if len(t.UDPPorts) > 0 {
		out.UDPPorts = slices.Sorted(slices.Values(t.UDPPorts))
	}
	return out
}
