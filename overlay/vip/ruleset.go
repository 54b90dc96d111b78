package vip

import (
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/internal/nft"
)

// Names of what this package creates. Everything is inside TableName, so
// deleting that table removes it all.
const (
	// TableName is the nftables table (family ip) holding every VIP rule
	// of a namespace.
	TableName = "shoal_vip"

	natChainName    = "vip_nat"    // type nat, hook output, priority -100
	rejectChainName = "vip_reject" // type filter, hook output, priority 0
	servicePrefix   = "svc_"       // svc_VIP: numgen → vmap
	endpointPrefix  = "ep_"        // ep_VIP_BACKEND: dnat to BACKEND
)

// Kernel constants not spelled out by x/sys/unix.
const (
	icmpPortUnreachable = 3  // ICMP_PORT_UNREACH, code of destination unreachable
	ipv4DaddrOffset     = 16 // offset of the destination address in the IPv4 header
)

var table = &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}

// The two hooked chains.
var (
	natBase    = nft.BaseChain{Name: natChainName, Type: nftables.ChainTypeNAT, Hook: nftables.ChainHookOutput, Priority: -100}
	rejectBase = nft.BaseChain{Name: rejectChainName, Type: nftables.ChainTypeFilter, Hook: nftables.ChainHookOutput, Priority: 0}
)

func serviceChainName(vip netip.Addr) string { return servicePrefix + vip.String() }

func endpointChainName(vip, backend netip.Addr) string {
	return endpointPrefix + vip.String() + "_" + backend.String()
}

func regularChain(name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: table}
}

// program queues, on conn, the batch that turns the table into exactly
// services (already validated and normalised). existing are the chains
// the table holds now. Nothing is sent: the caller flushes the batch.
func program(conn *nftables.Conn, services []Service, existing []*nftables.Chain) error {
	want := map[string]bool{natChainName: true, rejectChainName: true}
	for _, s := range services {
		if len(s.Backends) == 0 {
			continue
		}
		want[serviceChainName(s.VIP)] = true
		for _, b := range s.Backends {
			want[endpointChainName(s.VIP, b)] = true
		}
	}

	// The table may not exist yet: adding an existing table is a no-op.
	conn.AddTable(table)
	// Drop every rule first: this releases every jump and goto, so any
	// chain can then be deleted in any order within this batch.
	conn.FlushTable(table)
	for _, c := range existing {
		switch {
		case !want[c.Name]:
			conn.DelChain(c)
		case c.Name == natChainName && !natBase.Matches(c),
			c.Name == rejectChainName && !rejectBase.Matches(c),
			c.Name != natChainName && c.Name != rejectChainName && c.Hooknum != nil:
			// Right name, wrong kind (a leftover): re-create it.
			conn.DelChain(c)
		}
	}

	nat := conn.AddChain(natBase.Chain(table))
	reject := conn.AddChain(rejectBase.Chain(table))
	var setID uint32
	for _, s := range services {
		if len(s.Backends) == 0 {
			addRejectRules(conn, reject, s.VIP)
			continue
		}
		setID++
		if err := addServiceRules(conn, nat, s, setID); err != nil {
			return err
		}
	}
	return nil
}

// addServiceRules queues the chains and rules of a service with backends:
// the jump from the nat chain, the service chain and one endpoint chain
// per backend.
func addServiceRules(conn *nftables.Conn, nat *nftables.Chain, s Service, setID uint32) error {
	svc := conn.AddChain(regularChain(serviceChainName(s.VIP)))
	elements := make([]nftables.SetElement, len(s.Backends))
	for i, b := range s.Backends {
		ep := conn.AddChain(regularChain(endpointChainName(s.VIP, b)))
		conn.AddRule(&nftables.Rule{Table: table, Chain: ep, Exprs: dnatExprs(b)})
		elements[i] = nftables.SetElement{
			// Native byte order: numgen writes its result in host order.
			Key:         nft.NativeUint32(uint32(i)),
			VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: ep.Name},
		}
	}
	// ID and Name are set here because the library would number anonymous
	// sets from a package-wide counter that is not safe for concurrent
	// use; an ID unique within the batch is all the kernel needs, and it
	// names the map itself from the "%d".
	vmap := &nftables.Set{
		Table:     table,
		ID:        setID,
		Name:      "__map%d",
		Anonymous: true,
		Constant:  true,
		IsMap:     true,
		KeyType:   nftables.TypeInteger,
		DataType:  nftables.TypeVerdict,
	}
	if err := conn.AddSet(vmap, elements); err != nil {
		return err
	}
	conn.AddRule(&nftables.Rule{Table: table, Chain: svc, Exprs: []expr.Any{
		&expr.Numgen{Register: 1, Modulus: uint32(len(s.Backends)), Type: unix.NFT_NG_RANDOM},
		&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: vmap.Name, SetID: vmap.ID},
	}})
	conn.AddRule(&nftables.Rule{Table: table, Chain: nat,
		Exprs: append(daddrExprs(s.VIP), &expr.Verdict{Kind: expr.VerdictJump, Chain: svc.Name})})
	return nil
}

// addRejectRules queues the rules that refuse connections to a VIP with no
// backends: a TCP reset for TCP, an ICMP port unreachable for the rest.
func addRejectRules(conn *nftables.Conn, reject *nftables.Chain, vip netip.Addr) {
	tcp := append(daddrExprs(vip),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
	)
	other := append(daddrExprs(vip),
		&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreachable})
	conn.AddRule(&nftables.Rule{Table: table, Chain: reject, Exprs: tcp})
	conn.AddRule(&nftables.Rule{Table: table, Chain: reject, Exprs: other})
}

// daddrExprs matches packets whose IPv4 destination is addr.
func daddrExprs(addr netip.Addr) []expr.Any {
	a := addr.As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: ipv4DaddrOffset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	}
}

// dnatExprs rewrites the destination address to backend, keeping the port.
func dnatExprs(backend netip.Addr) []expr.Any {
	a := backend.As4()
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: a[:]},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}
}
