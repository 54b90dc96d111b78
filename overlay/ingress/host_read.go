package ingress

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/internal/nft"
)

// ReadHost returns the ports published in the host namespace at hostNS,
// interpreted from the kernel's rules and maps (not from memory): what a
// new flow to each port would do now. The result is sorted by protocol
// then port, each service's backends sorted, a service with no backends
// (refused) has nil Backends: the form ApplyHost's input takes once
// normalised. A namespace with no mesh table, or an empty one, gives nil.
//
// It errs with ErrUnrecognized (wrapped) if the table holds something
// ApplyHost does not write, and with ErrNamespace if hostNS cannot be
// used. It waits for an ApplyHost or RemoveHost of the same hostNS
// running in this process.
func ReadHost(hostNS string) ([]Published, error) {
	unlock := nsLocks.Lock(hostNS)
	defer unlock()
	s, err := openNft(hostNS, "hostNS")
	if err != nil {
		return nil, err
	}
	defer s.Close()

	chains, err := nft.TableChains(s.Conn, hostTable)
	if err != nil {
		return nil, fmt.Errorf("ingress: list chains of table %s in %s: %w", HostTable, hostNS, err)
	}
	sets, err := tableSets(s.Conn, hostTable)
	if err != nil {
		return nil, fmt.Errorf("ingress: list maps of table %s in %s: %w", HostTable, hostNS, err)
	}
	r := hostReader{conn: s.Conn, chains: map[string]*nftables.Chain{}, sets: map[string]*nftables.Set{}}
	for _, c := range chains {
		r.chains[c.Name] = c
	}
	for _, m := range sets {
		r.sets[m.Name] = m
	}
	services, err := r.services()
	if err != nil {
		return nil, fmt.Errorf("ingress: read table %s in %s: %w", HostTable, hostNS, err)
	}
	return services, nil
}

// hostReader interprets the chains and maps of the host table.
type hostReader struct {
	conn   *nftables.Conn
	chains map[string]*nftables.Chain
	sets   map[string]*nftables.Set
}

func (r *hostReader) services() ([]Published, error) {
	if len(r.chains) == 0 && len(r.sets) == 0 {
		return nil, nil
	}
	for _, b := range []nft.BaseChain{meshPrerouting, meshOutput} {
		if err := r.checkDispatch(b); err != nil {
			return nil, err
		}
	}
	pm := r.sets[publishedMapName]
	if pm == nil || !publishedShape.matches(pm) {
		return nil, fmt.Errorf("map %s is missing or not a verdict map: %w", publishedMapName, ErrUnrecognized)
	}
	elements, err := r.conn.GetSetElements(pm)
	if err != nil {
		return nil, fmt.Errorf("elements of map %s: %w", publishedMapName, err)
	}
	var out []Published
	for _, e := range elements {
		s, err := r.service(e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := validateServices(out); err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrUnrecognized)
	}
	return normalizeServices(out), nil
}

// checkDispatch checks that base chain b exists with its one dispatch
// rule.
func (r *hostReader) checkDispatch(b nft.BaseChain) error {
	c := r.chains[b.Name]
	if c == nil || !b.Matches(c) {
		return fmt.Errorf("chain %s is missing or not a %s chain on hook %d priority %d: %w", b.Name, b.Type, *b.Hook, b.Priority, ErrUnrecognized)
	}
	rules, err := r.conn.GetRules(hostTable, c)
	if err != nil {
		return fmt.Errorf("list rules of chain %s: %w", b.Name, err)
	}
	if len(rules) != 1 || !isDispatch(rules[0].Exprs) {
		return fmt.Errorf("chain %s: want one rule `fib daddr type local meta l4proto . th dport vmap @%s`, have %d rules: %w", b.Name, publishedMapName, len(rules), ErrUnrecognized)
	}
	return nil
}

func isDispatch(exprs []expr.Any) bool {
	if len(exprs) != 5 {
		return false
	}
	fib, ok1 := exprs[0].(*expr.Fib)
	cmp, ok2 := exprs[1].(*expr.Cmp)
	meta, ok3 := exprs[2].(*expr.Meta)
	pl, ok4 := exprs[3].(*expr.Payload)
	lk, ok5 := exprs[4].(*expr.Lookup)
	return ok1 && ok2 && ok3 && ok4 && ok5 &&
		fib.FlagDADDR && !fib.FlagSADDR && !fib.FlagIIF && !fib.FlagOIF && !fib.FlagMARK && fib.ResultADDRTYPE &&
		cmp.Op == expr.CmpOpEq && cmp.Register == fib.Register && bytes.Equal(cmp.Data, nft.NativeUint32(rtnLocal)) &&
		meta.Key == expr.MetaKeyL4PROTO && !meta.SourceRegister && meta.Register == 1 &&
		pl.OperationType == expr.PayloadLoad && pl.Base == expr.PayloadBaseTransportHeader &&
		pl.Offset == thDportOffset && pl.Len == 2 && pl.DestRegister == reg32x1 &&
		lk.SourceRegister == 1 && lk.IsDestRegSet && lk.DestRegister == 0 && !lk.Invert &&
		lk.SetName == publishedMapName
}

// service interprets one element of the published map and the chain and
// slots it leads to.
func (r *hostReader) service(e nftables.SetElement) (Published, error) {
	if len(e.Key) != 8 || e.Key[0] != 6 && e.Key[0] != 17 || e.Key[1]|e.Key[2]|e.Key[3]|e.Key[6]|e.Key[7] != 0 {
		return Published{}, fmt.Errorf("map %s: key %x is not a tcp or udp port: %w", publishedMapName, e.Key, ErrUnrecognized)
	}
	s := Published{Protocol: TCP, Port: uint16(e.Key[4])<<8 | uint16(e.Key[5])}
	if e.Key[0] == 17 {
		s.Protocol = UDP
	}
	kind, chain, err := nft.ParseVerdict(e.Val)
	if err != nil {
		return Published{}, fmt.Errorf("map %s, %s/%d: %w: %w", publishedMapName, s.Protocol, s.Port, err, ErrUnrecognized)
	}
	proto, port, target, ok := parseServiceChainName(chain)
	if kind != expr.VerdictGoto || !ok || proto != s.Protocol || port != s.Port {
		return Published{}, fmt.Errorf("map %s: %s/%d goes to %q, not its service chain: %w", publishedMapName, s.Protocol, s.Port, chain, ErrUnrecognized)
	}
	s.TargetPort = target
	c := r.chains[chain]
	if c == nil || c.Hooknum != nil {
		return Published{}, fmt.Errorf("chain %s is missing or hooked: %w", chain, ErrUnrecognized)
	}
	rules, err := r.conn.GetRules(hostTable, c)
	if err != nil {
		return Published{}, fmt.Errorf("list rules of chain %s: %w", chain, err)
	}
	if len(rules) != 1 {
		return Published{}, fmt.Errorf("chain %s has %d rules, want 1: %w", chain, len(rules), ErrUnrecognized)
	}
	p, rest, ok := parseL4proto(rules[0].Exprs)
	if !ok || p != protoNumber(s.Protocol) {
		return Published{}, fmt.Errorf("chain %s: %w", chain, unrecognized("service rule", rules[0].Exprs))
	}
	if isReject(s.Protocol, rest) {
		return s, nil
	}
	modulus, setName, ok := parseDNAT(rest)
	if !ok || setName != slotsMapName(s) {
		return Published{}, fmt.Errorf("chain %s: %w", chain, unrecognized("service rule", rules[0].Exprs))
	}
	if s.Backends, err = r.slots(s, modulus); err != nil {
		return Published{}, fmt.Errorf("chain %s: %w", chain, err)
	}
	return s, nil
}

// parseServiceChainName splits svc_PROTO_PORT_TARGET.
func parseServiceChainName(name string) (proto string, port, target uint16, ok bool) {
	parts := strings.Split(strings.TrimPrefix(name, servicePrefix), "_")
	if !strings.HasPrefix(name, servicePrefix) || len(parts) != 3 || parts[0] != TCP && parts[0] != UDP {
		return "", 0, 0, false
	}
	p, err1 := strconv.ParseUint(parts[1], 10, 16)
	t, err2 := strconv.ParseUint(parts[2], 10, 16)
	if err1 != nil || err2 != nil || p == 0 || t == 0 {
		return "", 0, 0, false
	}
	return parts[0], uint16(p), uint16(t), true
}

// isReject reports whether exprs (after the l4proto match) are the
// refusal rejectExprs writes.
func isReject(protocol string, exprs []expr.Any) bool {
	if len(exprs) != 4 {
		return false
	}
	ct, ok0 := exprs[0].(*expr.Ct)
	bw, ok1 := exprs[1].(*expr.Bitwise)
	c, ok2 := exprs[2].(*expr.Cmp)
	rej, ok3 := exprs[3].(*expr.Reject)
	if !ok0 || !ok1 || !ok2 || !ok3 || ct.Key != expr.CtKeySTATE || ct.Register == 0 ||
		bw.SourceRegister != ct.Register || bw.Len != 4 || !bytes.Equal(bw.Mask, nft.NativeUint32(ctStateNew)) ||
		!bytes.Equal(bw.Xor, nft.NativeUint32(0)) ||
		c.Op != expr.CmpOpNeq || c.Register != bw.DestRegister || !bytes.Equal(c.Data, nft.NativeUint32(0)) {
		return false
	}
	if protocol == TCP {
		return rej.Type == unix.NFT_REJECT_TCP_RST
	}
	return rej.Type == unix.NFT_REJECT_ICMP_UNREACH && rej.Code == icmpPortUnreachable
}

// parseDNAT reads `numgen random mod N map @SET` feeding `dnat ip to`
// address and port.
func parseDNAT(exprs []expr.Any) (modulus uint32, set string, ok bool) {
	if len(exprs) != 3 {
		return 0, "", false
	}
	ng, ok1 := exprs[0].(*expr.Numgen)
	lk, ok2 := exprs[1].(*expr.Lookup)
	nat, ok3 := exprs[2].(*expr.NAT)
	if !ok1 || !ok2 || !ok3 || ng.Type != unix.NFT_NG_RANDOM || ng.Modulus == 0 || ng.Offset != 0 ||
		lk.SourceRegister != ng.Register || !lk.IsDestRegSet || lk.DestRegister != 1 || lk.Invert ||
		nat.Type != expr.NATTypeDestNAT || nat.Family != unix.NFPROTO_IPV4 || nat.RegAddrMin != 1 ||
		nat.RegProtoMin != reg32x1 || !nat.Specified ||
		// The kernel reports an unset maximum as the minimum.
		nat.RegAddrMax != 0 && nat.RegAddrMax != 1 || nat.RegProtoMax != 0 && nat.RegProtoMax != reg32x1 {
		return 0, "", false
	}
	return ng.Modulus, lk.SetName, true
}

// slots reads a service's slot map and returns its backends, checking
// that the map is exactly what fillSlots makes of them.
func (r *hostReader) slots(s Published, modulus uint32) ([]netip.Addr, error) {
	name := slotsMapName(s)
	m := r.sets[name]
	if m == nil || !slotsShape.matches(m) {
		return nil, fmt.Errorf("map %s is missing or has the wrong type: %w", name, ErrUnrecognized)
	}
	elements, err := r.conn.GetSetElements(m)
	if err != nil {
		return nil, fmt.Errorf("elements of map %s: %w", name, err)
	}
	if len(elements) != int(modulus) {
		return nil, fmt.Errorf("numgen mod %d over map %s of %d elements: %w", modulus, name, len(elements), ErrUnrecognized)
	}
	slots := make([]netip.Addr, modulus)
	for _, e := range elements {
		if len(e.Key) != 4 || len(e.Val) != 8 || e.Val[6]|e.Val[7] != 0 {
			return nil, fmt.Errorf("map %s: element %x : %x: %w", name, e.Key, e.Val, ErrUnrecognized)
		}
		slot := nft.ReadNativeUint32(e.Key)
		if slot >= modulus || slots[slot].IsValid() {
			return nil, fmt.Errorf("map %s: slot %d out of range or repeated (mod %d): %w", name, slot, modulus, ErrUnrecognized)
		}
		if port := uint16(e.Val[4])<<8 | uint16(e.Val[5]); port != s.TargetPort {
			return nil, fmt.Errorf("map %s: slot %d goes to port %d, its chain says %d: %w", name, slot, port, s.TargetPort, ErrUnrecognized)
		}
		slots[slot] = netip.AddrFrom4([4]byte(e.Val[:4]))
	}
	// The backends are the first distinct slots; the map must be their
	// round-robin fill.
	var backends []netip.Addr
	for _, a := range slots {
		if slices.Contains(backends, a) {
			break
		}
		backends = append(backends, a)
	}
	if !slices.IsSortedFunc(backends, netip.Addr.Compare) || !slices.Equal(fillSlots(backends), slots) {
		return nil, fmt.Errorf("map %s is not a round-robin fill of %d slots: %w", name, modulus, ErrUnrecognized)
	}
	return backends, nil
}
