package ingress

import (
	"bytes"
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/internal/nft"
)

// Names of what ApplyTask creates in the task's nftables. Everything is in
// TaskTable.
const (
	// TaskTable is the nftables table (family ip) that marks, in a task
	// namespace, the flows each ingress node forwards.
	TaskTable = "shoal_ingret"

	gwPreroutingName = "gw_prerouting" // type filter, hook prerouting, priority mangle
	gwOutputName     = "gw_output"     // type route, hook output, priority mangle
	gatewayMapName   = "ingress_gw"    // ether_addr : mark
)

var taskTable = &nftables.Table{Name: TaskTable, Family: nftables.TableFamilyIPv4}

var (
	gwPrerouting = nft.BaseChain{Name: gwPreroutingName, Type: nftables.ChainTypeFilter, Hook: nftables.ChainHookPrerouting, Priority: *nftables.ChainPriorityMangle}
	gwOutput     = nft.BaseChain{Name: gwOutputName, Type: nftables.ChainTypeRoute, Hook: nftables.ChainHookOutput, Priority: *nftables.ChainPriorityMangle}
	gatewayShape = mapShape{key: nftables.TypeEtherAddr, data: nftables.TypeMark}
)

// programTask queues, on conn, the batch that turns the task table into
// exactly t (validated). chains and sets are what the table holds now.
func programTask(conn *nftables.Conn, t TaskSide, chains []*nftables.Chain, sets []*nftables.Set) error {
	conn.AddTable(taskTable)
	conn.FlushTable(taskTable)
	reuse := false
	for _, s := range sets {
		if s.Name == gatewayMapName && gatewayShape.matches(s) {
			reuse = true
			conn.FlushSet(s)
			continue
		}
		conn.DelSet(s)
	}
	for _, c := range chains {
		if c.Name == gwPreroutingName && gwPrerouting.Matches(c) || c.Name == gwOutputName && gwOutput.Matches(c) {
			continue
		}
		conn.DelChain(c)
	}
	pre := conn.AddChain(gwPrerouting.Chain(taskTable))
	out := conn.AddChain(gwOutput.Chain(taskTable))

	elements := make([]nftables.SetElement, len(t.Gateways))
	for i, g := range t.Gateways {
		elements[i] = nftables.SetElement{Key: []byte(g.MAC), Val: nft.NativeUint32(gatewayMark(g.Index))}
	}
	m := gatewayShape.set(taskTable, gatewayMapName, 1)
	switch {
	case !reuse:
		if err := conn.AddSet(m, elements); err != nil {
			return fmt.Errorf("create map %s: %w", gatewayMapName, err)
		}
	case len(elements) > 0:
		if err := conn.SetAddElements(m, elements); err != nil {
			return fmt.Errorf("fill map %s: %w", gatewayMapName, err)
		}
	}
	conn.AddRule(&nftables.Rule{Table: taskTable, Chain: pre, Exprs: markFlowExprs(t.IfName, m)})
	conn.AddRule(&nftables.Rule{Table: taskTable, Chain: pre, Exprs: restoreMarkExprs()})
	conn.AddRule(&nftables.Rule{Table: taskTable, Chain: out, Exprs: restoreMarkExprs()})
	return nil
}

// markFlowExprs is `iifname IFNAME ct direction original ct mark set
// ether saddr map @ingress_gw`: a packet from a node's bridge MAC marks
// its flow with that node's mark (every original-direction packet, so a
// client ip:port reused through another node takes the new mark).
func markFlowExprs(ifName string, m *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nft.IfName(ifName)},
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}}, // IP_CT_DIR_ORIGINAL
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: etherSaddrOffset, Len: 6},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
	}
}

// restoreMarkExprs is `ct mark and 0xf00 == 0x100 meta mark set ct mark`:
// every packet of a marked flow carries its node's mark, which the policy
// rules route by.
func restoreMarkExprs() []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: nft.NativeUint32(markKindMask), Xor: nft.NativeUint32(0)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nft.NativeUint32(markBase)},
		&expr.Ct{Key: expr.CtKeyMARK, Register: 1},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}

// readTaskTable interprets the task table: the interface its marking rule
// matches and the gateway map (MAC by gateway index). present is false
// when the table holds nothing.
func readTaskTable(conn *nftables.Conn) (ifName string, macs map[int]net.HardwareAddr, present bool, err error) {
	chains, err := nft.TableChains(conn, taskTable)
	if err != nil {
		return "", nil, false, fmt.Errorf("list chains of table %s: %w", TaskTable, err)
	}
	sets, err := tableSets(conn, taskTable)
	if err != nil {
		return "", nil, false, fmt.Errorf("list maps of table %s: %w", TaskTable, err)
	}
	if len(chains) == 0 && len(sets) == 0 {
		return "", nil, false, nil
	}
	byName := map[string]*nftables.Chain{}
	for _, c := range chains {
		byName[c.Name] = c
	}
	rulesOf := func(b nft.BaseChain) ([]*nftables.Rule, error) {
		c := byName[b.Name]
		if c == nil || !b.Matches(c) {
			return nil, fmt.Errorf("chain %s is missing or not a %s chain on hook %d priority %d: %w", b.Name, b.Type, *b.Hook, b.Priority, ErrUnrecognized)
		}
		return conn.GetRules(taskTable, c)
	}
	pre, err := rulesOf(gwPrerouting)
	if err != nil {
		return "", nil, true, err
	}
	out, err := rulesOf(gwOutput)
	if err != nil {
		return "", nil, true, err
	}
	if len(pre) != 2 || len(out) != 1 || !isRestoreMark(pre[1].Exprs) || !isRestoreMark(out[0].Exprs) {
		return "", nil, true, fmt.Errorf("chains %s and %s do not hold the mark rules: %w", gwPreroutingName, gwOutputName, ErrUnrecognized)
	}
	if ifName, err = parseMarkFlow(pre[0].Exprs); err != nil {
		return "", nil, true, fmt.Errorf("chain %s: %w", gwPreroutingName, err)
	}

	var m *nftables.Set
	for _, s := range sets {
		if s.Name == gatewayMapName && gatewayShape.matches(s) {
			m = s
		}
	}
	if m == nil || len(sets) != 1 || len(chains) != 2 {
		return "", nil, true, fmt.Errorf("table %s holds %d chains and %d maps, want 2 and the map %s: %w", TaskTable, len(chains), len(sets), gatewayMapName, ErrUnrecognized)
	}
	elements, err := conn.GetSetElements(m)
	if err != nil {
		return "", nil, true, fmt.Errorf("elements of map %s: %w", gatewayMapName, err)
	}
	macs = map[int]net.HardwareAddr{}
	for _, e := range elements {
		if len(e.Key) != 6 || len(e.Val) != 4 {
			return "", nil, true, fmt.Errorf("map %s: element %x : %x: %w", gatewayMapName, e.Key, e.Val, ErrUnrecognized)
		}
		k := int(nft.ReadNativeUint32(e.Val)) - markBase
		if k < 1 || k > MaxGateways || macs[k] != nil {
			return "", nil, true, fmt.Errorf("map %s: mark %#x out of range or repeated: %w", gatewayMapName, nft.ReadNativeUint32(e.Val), ErrUnrecognized)
		}
		macs[k] = net.HardwareAddr(e.Key)
	}
	return ifName, macs, true, nil
}

// parseMarkFlow reads the rule markFlowExprs writes and returns its
// interface name.
func parseMarkFlow(exprs []expr.Any) (string, error) {
	if len(exprs) != 7 {
		return "", unrecognized("mark rule", exprs)
	}
	m0, ok0 := exprs[0].(*expr.Meta)
	c1, ok1 := exprs[1].(*expr.Cmp)
	ct2, ok2 := exprs[2].(*expr.Ct)
	c3, ok3 := exprs[3].(*expr.Cmp)
	p4, ok4 := exprs[4].(*expr.Payload)
	l5, ok5 := exprs[5].(*expr.Lookup)
	ct6, ok6 := exprs[6].(*expr.Ct)
	// The library does not decode a ct expression's source register: a
	// `ct mark set` reads back with Register 0, which no load has.
	if !(ok0 && ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		m0.Key != expr.MetaKeyIIFNAME || m0.SourceRegister || c1.Op != expr.CmpOpEq || c1.Register != m0.Register ||
		len(c1.Data) != unix.IFNAMSIZ ||
		ct2.Key != expr.CtKeyDIRECTION || c3.Register != ct2.Register || !bytes.Equal(c3.Data, []byte{0}) ||
		p4.Base != expr.PayloadBaseLLHeader || p4.Offset != etherSaddrOffset || p4.Len != 6 ||
		l5.SourceRegister != p4.DestRegister || !l5.IsDestRegSet || l5.Invert || l5.SetName != gatewayMapName ||
		ct6.Key != expr.CtKeyMARK || ct6.Register != 0 {
		return "", unrecognized("mark rule", exprs)
	}
	name := string(bytes.TrimRight(c1.Data, "\x00"))
	if !bytes.Equal(nft.IfName(name), c1.Data) || name == "" {
		return "", unrecognized("mark rule", exprs)
	}
	return name, nil
}

// isRestoreMark reports whether exprs are what restoreMarkExprs writes.
func isRestoreMark(exprs []expr.Any) bool {
	if len(exprs) != 5 {
		return false
	}
	ct0, ok0 := exprs[0].(*expr.Ct)
	bw, ok1 := exprs[1].(*expr.Bitwise)
	c2, ok2 := exprs[2].(*expr.Cmp)
	ct3, ok3 := exprs[3].(*expr.Ct)
	m4, ok4 := exprs[4].(*expr.Meta)
	return ok0 && ok1 && ok2 && ok3 && ok4 &&
		ct0.Key == expr.CtKeyMARK && ct0.Register != 0 &&
		bw.SourceRegister == ct0.Register && bw.Len == 4 && bytes.Equal(bw.Mask, nft.NativeUint32(markKindMask)) &&
		bytes.Equal(bw.Xor, nft.NativeUint32(0)) &&
		c2.Op == expr.CmpOpEq && c2.Register == bw.DestRegister && bytes.Equal(c2.Data, nft.NativeUint32(markBase)) &&
		ct3.Key == expr.CtKeyMARK && ct3.Register != 0 &&
		m4.Key == expr.MetaKeyMARK && m4.SourceRegister && m4.Register == ct3.Register
}
