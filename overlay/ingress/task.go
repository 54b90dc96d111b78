package ingress

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/shoalhq/shoal/overlay/internal/nft"
)

// srcValidMark makes reverse-path filtering honour the mark, so that a
// flow from a client no main route leads to passes strict rp_filter.
const srcValidMark = "/proc/sys/net/ipv4/conf/all/src_valid_mark"

// tcpFwmarkAccept makes a TCP listener route its SYN-ACK by the SYN's
// mark, and gives the accepted socket that mark.
const tcpFwmarkAccept = "/proc/sys/net/ipv4/tcp_fwmark_accept"

// ApplyTask makes t the whole task side of the ingress in the task
// network namespace at taskNS: a flow arriving on t.IfName from a node's
// bridge MAC is marked with that node's mark (connection mark, restored
// on every packet), and marked packets are routed by policy rules through
// that node's ingress address, so replies leave through the node the flow
// came in by, whatever the task's main routing table says. For each
// t.UDPPorts port, a server bound to 0.0.0.0 picks its reply source
// address on t.IfName. It also sets net.ipv4.conf.all.src_valid_mark=1.
//
// Ordering (the caller's job): a node must be in every backend task's
// Gateways BEFORE any host publishes to that task through it (ApplyHost
// on that node), and leave them only after. A flow from a node the task
// does not list gets no mark, and its replies follow the main table,
// through the wrong node or nowhere.
//
// A listed UDP port answers every client through t.IfName, including
// clients on the task's other networks when the server is bound to
// 0.0.0.0: serve those from another port or bind to each address.
//
// It converges: the gateway map is replaced in one nftables batch;
// routes (tables 101..355 and 400) and policy rules (priorities 101..355
// and 400) of gateways or ports no longer listed are removed, and other
// entries in those ranges too (this package owns them). Routes and rules
// are added before the map lists a gateway, and removed after it no
// longer does. Applying the same t again changes nothing.
//
// It errs with ErrInvalidInterface, ErrInvalidGateway,
// ErrDuplicateGateway, ErrInvalidPort or ErrDuplicatePort (nothing
// changed) for bad input or when t.IfName is not an interface of taskNS,
// and with ErrNamespace if taskNS cannot be used. On a kernel error part
// of the work may be done; calling ApplyTask again converges. A gateway
// address outside t.IfName's subnet is refused by the kernel. Calls for
// the same taskNS are serialised within a process.
func ApplyTask(taskNS string, t TaskSide) error {
	if err := t.validate(); err != nil {
		return err
	}
	t = t.normalize()

	unlock := nsLocks.Lock(taskNS)
	defer unlock()
	h, err := openLink(taskNS, "taskNS")
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(t.IfName)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return fmt.Errorf("ingress: TaskSide.IfName %q does not exist in %s; attach the task to the ingress network first: %w", t.IfName, taskNS, ErrInvalidInterface)
		}
		return fmt.Errorf("ingress: look up %s in %s: %w", t.IfName, taskNS, err)
	}
	s, err := openNft(taskNS, "taskNS")
	if err != nil {
		return err
	}
	defer s.Close()
	for _, file := range []string{srcValidMark, tcpFwmarkAccept} {
		if err := ensureSysctl(taskNS, file, "1"); err != nil {
			return err
		}
	}

	have, err := readRouting(h)
	if err != nil {
		return fmt.Errorf("ingress: in %s: %w", taskNS, err)
	}
	rules, routes := wantRouting(t, link.Attrs().Index)
	if err := addRouting(h, have, rules, routes); err != nil {
		return fmt.Errorf("ingress: in %s: %w", taskNS, err)
	}

	chains, err := nft.TableChains(s.Conn, taskTable)
	if err != nil {
		return fmt.Errorf("ingress: list chains of table %s in %s: %w", TaskTable, taskNS, err)
	}
	sets, err := tableSets(s.Conn, taskTable)
	if err != nil {
		return fmt.Errorf("ingress: list maps of table %s in %s: %w", TaskTable, taskNS, err)
	}
	if err := programTask(s.Conn, t, chains, sets); err != nil {
		return fmt.Errorf("ingress: build batch for %s: %w", taskNS, err)
	}
	if err := s.Conn.Flush(); err != nil {
		return flushErr("program", TaskTable, taskNS, err)
	}

	if have, err = readRouting(h); err != nil {
		return fmt.Errorf("ingress: in %s: %w", taskNS, err)
	}
	if err := pruneRouting(h, have, rules, routes); err != nil {
		return fmt.Errorf("ingress: in %s: %w", taskNS, err)
	}
	return nil
}

// RemoveTask deletes the task side from the task namespace at taskNS: the
// table TaskTable first (flows are no longer marked), then every policy
// rule and route in this package's ranges. Removing what does not exist
// succeeds; src_valid_mark is left as it is. It errs with ErrNamespace if
// taskNS cannot be used; on a kernel error, calling it again finishes.
func RemoveTask(taskNS string) error {
	unlock := nsLocks.Lock(taskNS)
	defer unlock()
	h, err := openLink(taskNS, "taskNS")
	if err != nil {
		return err
	}
	defer h.Close()
	s, err := openNft(taskNS, "taskNS")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := removeTable(s, taskTable, taskNS); err != nil {
		return err
	}
	have, err := readRouting(h)
	if err != nil {
		return fmt.Errorf("ingress: in %s: %w", taskNS, err)
	}
	if err := pruneRouting(h, have, nil, nil); err != nil {
		return fmt.Errorf("ingress: in %s: %w", taskNS, err)
	}
	return nil
}

// ReadTask returns the task side programmed in the task namespace at
// taskNS, interpreted from the kernel (nftables table, policy rules and
// routes), in the form ApplyTask's input takes once normalised: gateways
// sorted by index, ports sorted, empty lists nil. A namespace with no
// task side gives the zero TaskSide.
//
// A gateway is reported only when its map element, rule and route all
// exist and agree; anything else in this package's table or ranges (a
// half-applied call, someone else's entry) gives an error wrapping
// ErrUnrecognized, which ApplyTask repairs. It errs with ErrNamespace if
// taskNS cannot be used.
func ReadTask(taskNS string) (TaskSide, error) {
	unlock := nsLocks.Lock(taskNS)
	defer unlock()
	h, err := openLink(taskNS, "taskNS")
	if err != nil {
		return TaskSide{}, err
	}
	defer h.Close()
	s, err := openNft(taskNS, "taskNS")
	if err != nil {
		return TaskSide{}, err
	}
	defer s.Close()

	ifName, macs, present, err := readTaskTable(s.Conn)
	if err != nil {
		return TaskSide{}, fmt.Errorf("ingress: read table %s in %s: %w", TaskTable, taskNS, err)
	}
	have, err := readRouting(h)
	if err != nil {
		return TaskSide{}, fmt.Errorf("ingress: in %s: %w", taskNS, err)
	}
	if !present {
		if len(have.rules) > 0 || len(have.routes) > 0 {
			return TaskSide{}, fmt.Errorf("ingress: %s has policy rules or routes of the ingress but no table %s: %w", taskNS, TaskTable, ErrUnrecognized)
		}
		return TaskSide{}, nil
	}
	t := TaskSide{IfName: ifName}
	link, err := h.LinkByName(ifName)
	if err != nil {
		return TaskSide{}, fmt.Errorf("ingress: interface %s of the mark rule in %s: %w: %w", ifName, taskNS, err, ErrUnrecognized)
	}
	gws := map[int]netip.Addr{}
	udpRoute := false
	for _, r := range have.routes {
		rs := shapeOfRoute(r)
		switch {
		case rs.extra || rs.link != link.Attrs().Index:
			return TaskSide{}, fmt.Errorf("ingress: %s: route %v in table %d is not a default route on %s: %w", taskNS, r.Dst, r.Table, ifName, ErrUnrecognized)
		case rs.table == udpTable && !rs.gw.IsValid() && !udpRoute:
			udpRoute = true
		case rs.table != udpTable && rs.gw.IsValid() && !gws[rs.table-markBase].IsValid():
			gws[rs.table-markBase] = rs.gw
		default:
			return TaskSide{}, fmt.Errorf("ingress: %s: unexpected route in table %d: %w", taskNS, r.Table, ErrUnrecognized)
		}
	}
	gwRules := map[int]bool{}
	for _, r := range have.rules {
		rs := shapeOfRule(r)
		switch {
		case rs.pref == udpRulePref && rs == udpRule(rs.udpPort) && rs.udpPort != 0:
			t.UDPPorts = append(t.UDPPorts, rs.udpPort)
		case rs.pref != udpRulePref && rs == gatewayRule(rs.pref-prefBase) && !gwRules[rs.pref-prefBase]:
			gwRules[rs.pref-prefBase] = true
		default:
			return TaskSide{}, fmt.Errorf("ingress: %s: policy rule %d is not one ApplyTask writes: %w", taskNS, r.Priority, ErrUnrecognized)
		}
	}
	if udpRoute != (len(t.UDPPorts) > 0) {
		return TaskSide{}, fmt.Errorf("ingress: %s: UDP source rules and their table %d do not go together: %w", taskNS, udpTable, ErrUnrecognized)
	}
	for k, mac := range macs {
		if !gwRules[k] || !gws[k].IsValid() {
			return TaskSide{}, fmt.Errorf("ingress: %s: gateway %d is in map %s without its rule and route: %w", taskNS, k, gatewayMapName, ErrUnrecognized)
		}
		t.Gateways = append(t.Gateways, Gateway{Index: k, Addr: gws[k], MAC: mac})
	}
	if len(gwRules) != len(macs) || len(gws) != len(macs) {
		return TaskSide{}, fmt.Errorf("ingress: %s: policy rules or routes of gateways missing from map %s: %w", taskNS, gatewayMapName, ErrUnrecognized)
	}
	if err := t.validate(); err != nil {
		return TaskSide{}, fmt.Errorf("ingress: %s: %w: %w", taskNS, err, ErrUnrecognized)
	}
	return t.normalize(), nil
}
