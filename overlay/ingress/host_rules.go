package ingress

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/internal/nft"
)

// Names of what ApplyHost creates. Everything is inside HostTable, so
// deleting that table removes it all.
const (
	// HostTable is the nftables table (family ip) holding the routing mesh
	// of a host namespace.
	HostTable = "shoal_ingress"

	meshPreroutingName = "mesh_prerouting" // type nat, hook prerouting, priority dstnat
	meshOutputName     = "mesh_output"     // type nat, hook output, priority -100
	publishedMapName   = "published"       // inet_proto . inet_service : verdict
	servicePrefix      = "svc_"            // svc_PROTO_PORT_TARGET: dnat or reject
	slotsPrefix        = "slots_"          // slots_PROTO_PORT: integer : ipv4_addr . inet_service
)

var hostTable = &nftables.Table{Name: HostTable, Family: nftables.TableFamilyIPv4}

var (
	meshPrerouting = nft.BaseChain{Name: meshPreroutingName, Type: nftables.ChainTypeNAT, Hook: nftables.ChainHookPrerouting, Priority: *nftables.ChainPriorityNATDest}
	meshOutput     = nft.BaseChain{Name: meshOutputName, Type: nftables.ChainTypeNAT, Hook: nftables.ChainHookOutput, Priority: -100}

	publishedShape = mapShape{verdict: true, concat: true,
		key: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService), data: nftables.TypeVerdict}
	slotsShape = mapShape{key: nftables.TypeInteger,
		data: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)}
)

func serviceChainName(s Published) string {
	return fmt.Sprintf("%s%s_%d_%d", servicePrefix, s.Protocol, s.Port, s.TargetPort)
}

func slotsMapName(s Published) string {
	return fmt.Sprintf("%s%s_%d", slotsPrefix, s.Protocol, s.Port)
}

// publishedKey is the key of a service in the published map: the
// protocol, then the port in network order, each padded to 4 bytes as
// concatenations are.
func publishedKey(proto byte, port uint16) []byte {
	return []byte{proto, 0, 0, 0, byte(port >> 8), byte(port), 0, 0}
}

// slotValue is the data of a slot: the backend address, then the target
// port in network order padded to 4 bytes, read by the DNAT from
// registers 1 and reg32x1.
func slotValue(addr netip.Addr, port uint16) []byte {
	a := addr.As4()
	return []byte{a[0], a[1], a[2], a[3], byte(port >> 8), byte(port), 0, 0}
}

// programHost queues, on conn, the batch that turns the host table into
// exactly services (validated and normalised). chains and sets are what
// the table holds now. Nothing is sent: the caller flushes the batch.
func programHost(conn *nftables.Conn, services []Published, chains []*nftables.Chain, sets []*nftables.Set) error {
	wantChains := map[string]bool{meshPreroutingName: true, meshOutputName: true}
	wantSets := map[string]bool{publishedMapName: true}
	for _, s := range services {
		wantChains[serviceChainName(s)] = true
		if len(s.Backends) > 0 {
			wantSets[slotsMapName(s)] = true
		}
	}
	reuse := map[string]bool{} // existing maps of the right shape: flushed and refilled

	// The table may not exist yet: adding an existing table is a no-op.
	conn.AddTable(hostTable)
	// Drop every rule, then every element of the maps kept (or the whole
	// map): this releases every reference to a chain or map, so any of
	// them can then be deleted in this batch.
	conn.FlushTable(hostTable)
	for _, s := range sets {
		ok := wantSets[s.Name] && (s.Name == publishedMapName && publishedShape.matches(s) ||
			s.Name != publishedMapName && slotsShape.matches(s))
		if ok {
			reuse[s.Name] = true
			conn.FlushSet(s)
		}
	}
	for _, s := range sets {
		if !reuse[s.Name] {
			conn.DelSet(s)
		}
	}
	for _, c := range chains {
		switch {
		case !wantChains[c.Name],
			c.Name == meshPreroutingName && !meshPrerouting.Matches(c),
			c.Name == meshOutputName && !meshOutput.Matches(c),
			c.Name != meshPreroutingName && c.Name != meshOutputName && c.Hooknum != nil:
			// Gone, or the right name with the wrong kind (a leftover).
			conn.DelChain(c)
		}
	}

	pre := conn.AddChain(meshPrerouting.Chain(hostTable))
	out := conn.AddChain(meshOutput.Chain(hostTable))
	var setID uint32
	var published []nftables.SetElement
	type serviceRule struct {
		chain *nftables.Chain
		exprs []expr.Any
	}
	var rules []serviceRule
	for _, s := range services {
		svc := conn.AddChain(&nftables.Chain{Name: serviceChainName(s), Table: hostTable})
		published = append(published, nftables.SetElement{
			Key:         publishedKey(protoNumber(s.Protocol), s.Port),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: svc.Name},
		})
		if len(s.Backends) == 0 {
			rules = append(rules, serviceRule{svc, rejectExprs(s.Protocol)})
			continue
		}
		slots := fillSlots(s.Backends)
		elements := make([]nftables.SetElement, len(slots))
		for i, b := range slots {
			// Native byte order: numgen writes its result in host order.
			elements[i] = nftables.SetElement{Key: nft.NativeUint32(uint32(i)), Val: slotValue(b, s.TargetPort)}
		}
		setID++
		m, err := fillMap(conn, slotsShape, slotsMapName(s), setID, reuse, elements)
		if err != nil {
			return err
		}
		rules = append(rules, serviceRule{svc, dnatExprs(s.Protocol, len(slots), m)})
	}
	setID++
	pm, err := fillMap(conn, publishedShape, publishedMapName, setID, reuse, published)
	if err != nil {
		return err
	}
	for _, r := range rules {
		conn.AddRule(&nftables.Rule{Table: hostTable, Chain: r.chain, Exprs: r.exprs})
	}
	conn.AddRule(&nftables.Rule{Table: hostTable, Chain: pre, Exprs: dispatchExprs(pm)})
	conn.AddRule(&nftables.Rule{Table: hostTable, Chain: out, Exprs: dispatchExprs(pm)})
	return nil
}

// fillMap queues the elements of a named map: into the existing map
// (already flushed) when reuse lists it, else into a new one.
func fillMap(conn *nftables.Conn, shape mapShape, name string, id uint32, reuse map[string]bool, elements []nftables.SetElement) (*nftables.Set, error) {
	m := shape.set(hostTable, name, id)
	if reuse[name] {
		if len(elements) == 0 {
			return m, nil
		}
		if err := conn.SetAddElements(m, elements); err != nil {
			return nil, fmt.Errorf("fill map %s: %w", name, err)
		}
		return m, nil
	}
	if err := conn.AddSet(m, elements); err != nil {
		return nil, fmt.Errorf("create map %s: %w", name, err)
	}
	return m, nil
}

// dispatchExprs is `fib daddr type local meta l4proto . th dport vmap
// @published`: a flow to a published port on any local address goes to
// its service chain.
func dispatchExprs(published *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nft.NativeUint32(rtnLocal)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: reg32x1, Base: expr.PayloadBaseTransportHeader, Offset: thDportOffset, Len: 2},
		&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: published.Name, SetID: published.ID},
	}
}

// dnatExprs is `meta l4proto P dnat ip to numgen random mod N map @SLOTS`:
// the slot gives the backend's address and target port.
func dnatExprs(protocol string, slots int, m *nftables.Set) []expr.Any {
	return append(l4protoExprs(protoNumber(protocol)),
		&expr.Numgen{Register: 1, Modulus: uint32(slots), Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: reg32x1, Specified: true},
	)
}

// rejectExprs is `meta l4proto P ct state new reject`: it refuses a flow
// of a service with no backends, with a TCP reset, or an ICMP port
// unreachable for UDP. A nat chain sees only the first packet of a flow,
// which is all a refusal needs: the flow's conntrack entry is never
// confirmed, so a retry is refused again.
//
// The ct match is always true there; it is what turns conntrack on in the
// namespace (as the nat expression of a service with backends does). The
// nat hooks skip untracked packets: with only refusals in a namespace
// where nothing else tracks connections, they would never run.
func rejectExprs(protocol string) []expr.Any {
	r := &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreachable}
	if protocol == TCP {
		r = &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}
	}
	return append(l4protoExprs(protoNumber(protocol)),
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: nft.NativeUint32(ctStateNew), Xor: nft.NativeUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: nft.NativeUint32(0)},
		r)
}
