package ingress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// isOurPref reports whether a policy rule priority is in the range the
// task side owns: the gateways' and the UDP rules'.
func isOurPref(p int) bool {
	return p > prefBase && p <= prefBase+MaxGateways || p == udpRulePref
}

// isOurTable reports whether a routing table is one the task side owns:
// the gateways' and the UDP one (never main, local or default).
func isOurTable(t int) bool { return t >= markBase && t <= markBase+MaxGateways }

// ruleShape is what identifies a policy rule of this package. A rule with
// any selector or action beyond these is not one ApplyTask writes.
type ruleShape struct {
	pref, table int
	mark, mask  uint32
	udpPort     uint16
	extra       bool
}

func shapeOfRule(r netlink.Rule) ruleShape {
	s := ruleShape{pref: r.Priority, table: r.Table, mark: r.Mark}
	if r.Mask != nil {
		s.mask = *r.Mask
	}
	switch {
	case r.IPProto == 0 && r.Sport == nil:
	case r.IPProto == unix.IPPROTO_UDP && r.Sport != nil && r.Sport.Start == r.Sport.End:
		s.udpPort = r.Sport.Start
	default:
		s.extra = true
	}
	s.extra = s.extra || r.Src != nil || r.Dst != nil || r.IifName != "" || r.OifName != "" || r.Invert ||
		r.Goto > 0 || r.Tos != 0 || r.Dport != nil || r.UIDRange != nil || r.TunID != 0 || r.Flow > 0 ||
		r.SuppressIfgroup > 0 || r.SuppressPrefixlen > 0
	return s
}

func (s ruleShape) rule() *netlink.Rule {
	r := netlink.NewRule()
	r.Family = unix.AF_INET
	r.Priority, r.Table = s.pref, s.table
	if s.mask != 0 {
		r.Mark, r.Mask = s.mark, &s.mask
	}
	if s.udpPort != 0 {
		r.IPProto = unix.IPPROTO_UDP
		r.Sport = netlink.NewRulePortRange(s.udpPort, s.udpPort)
	}
	return r
}

func gatewayRule(k int) ruleShape {
	return ruleShape{pref: gatewayPref(k), table: gatewayTable(k), mark: gatewayMark(k), mask: markRuleMask}
}

func udpRule(port uint16) ruleShape {
	return ruleShape{pref: udpRulePref, table: udpTable, udpPort: port}
}

// routeShape is what identifies a route of this package: the default
// route of one of its tables, through a gateway or straight on a link.
type routeShape struct {
	table int
	gw    netip.Addr
	link  int
	extra bool
}

func shapeOfRoute(r netlink.Route) routeShape {
	s := routeShape{table: r.Table, link: r.LinkIndex}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok {
		s.gw = gw.Unmap()
	}
	isDefault := r.Dst == nil
	if r.Dst != nil {
		ones, _ := r.Dst.Mask.Size()
		isDefault = ones == 0
	}
	s.extra = !isDefault || r.Src != nil || len(r.MultiPath) > 0 || r.Priority != 0 || r.Type != unix.RTN_UNICAST
	return s
}

func (s routeShape) route() *netlink.Route {
	r := &netlink.Route{Table: s.table, LinkIndex: s.link, Scope: netlink.SCOPE_LINK, Family: unix.AF_INET,
		Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
	if s.gw.IsValid() {
		r.Gw = s.gw.AsSlice()
		r.Scope = netlink.SCOPE_UNIVERSE
	}
	return r
}

// routing is the task side's policy routing as the kernel holds it.
type routing struct {
	rules  []netlink.Rule
	routes []netlink.Route
}

// readRouting lists the rules and routes in the ranges this package owns.
func readRouting(h *netlink.Handle) (routing, error) {
	var rt routing
	rules, err := h.RuleList(unix.AF_INET)
	if err != nil {
		return rt, fmt.Errorf("list policy rules: %w", err)
	}
	for _, r := range rules {
		if isOurPref(r.Priority) {
			rt.rules = append(rt.rules, r)
		}
	}
	routes, err := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return rt, fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if isOurTable(r.Table) {
			rt.routes = append(rt.routes, r)
		}
	}
	return rt, nil
}

// wantRouting is the rules and routes t needs, link being the index of
// t.IfName.
func wantRouting(t TaskSide, link int) (rules []ruleShape, routes []routeShape) {
	for _, g := range t.Gateways {
		rules = append(rules, gatewayRule(g.Index))
		routes = append(routes, routeShape{table: gatewayTable(g.Index), gw: g.Addr, link: link})
	}
	for _, p := range t.UDPPorts {
		rules = append(rules, udpRule(p))
	}
	if len(t.UDPPorts) > 0 {
		routes = append(routes, routeShape{table: udpTable, link: link})
	}
	return rules, routes
}

// addRouting adds the wanted routes, then rules, that are missing or
// different. Routes go first so that no rule ever points to an empty
// table.
func addRouting(h *netlink.Handle, have routing, rules []ruleShape, routes []routeShape) error {
	haveRoutes := map[routeShape]bool{}
	for _, r := range have.routes {
		haveRoutes[shapeOfRoute(r)] = true
	}
	for _, r := range routes {
		if haveRoutes[r] {
			continue
		}
		if err := h.RouteReplace(r.route()); err != nil {
			return fmt.Errorf("set default route via %v in table %d: %w", r.gw, r.table, err)
		}
	}
	haveRules := map[ruleShape]bool{}
	for _, r := range have.rules {
		haveRules[shapeOfRule(r)] = true
	}
	for _, r := range rules {
		if haveRules[r] {
			continue
		}
		if err := h.RuleAdd(r.rule()); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add policy rule %d → table %d: %w", r.pref, r.table, err)
		}
	}
	return nil
}

// pruneRouting deletes the rules, then routes, in this package's ranges
// that are not wanted. Kernel errors are collected, so that every stale
// entry is tried.
func pruneRouting(h *netlink.Handle, have routing, rules []ruleShape, routes []routeShape) error {
	wantRules := map[ruleShape]bool{}
	for _, r := range rules {
		wantRules[r] = true
	}
	wantRoutes := map[routeShape]bool{}
	for _, r := range routes {
		wantRoutes[r] = true
	}
	var errs []error
	for _, r := range have.rules {
		if wantRules[shapeOfRule(r)] {
			continue
		}
		if err := h.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete stale policy rule %d → table %d: %w", r.Priority, r.Table, err))
		}
	}
	for _, r := range have.routes {
		if wantRoutes[shapeOfRoute(r)] {
			continue
		}
		if err := h.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete stale route %v in table %d: %w", r.Dst, r.Table, err))
		}
	}
	return errors.Join(errs...)
}

func (s ruleShape) String() string {
	out := fmt.Sprintf("pref %d", s.pref)
	if s.mask != 0 {
		out += fmt.Sprintf(" fwmark %#x/%#x", s.mark, s.mask)
	}
	if s.udpPort != 0 {
		out += fmt.Sprintf(" ipproto udp sport %d", s.udpPort)
	}
	if s.extra {
		out += " (and more)"
	}
	return out + fmt.Sprintf(" lookup %d", s.table)
}

func (s routeShape) String() string {
	out := "default"
	if s.gw.IsValid() {
		out += " via " + s.gw.String()
	}
	out += fmt.Sprintf(" dev #%d table %d", s.link, s.table)
	if s.extra {
		out += " (and more)"
	}
	return out
}
