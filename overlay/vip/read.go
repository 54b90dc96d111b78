package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/internal/nft"
)

// ErrUnrecognized is returned (wrapped) by Read when the VIP table holds a
// rule, chain or map that Apply does not write (damaged, or written by
// someone else). Apply rewrites such a table.
var ErrUnrecognized = errors.New("the VIP table holds rules this package does not write; Apply rewrites them")

// Read returns the services programmed in the namespace at nsPath,
// interpreted from the kernel's rules (not from memory): what a new
// connection to each VIP would do now. Services are sorted by VIP, their
// backends sorted, a service with no backends (connections refused) has nil
// Backends. A namespace with no VIP table, or an empty one, gives nil.
//
// Chains that no base chain reaches are ignored. It returns an error
// wrapping ErrUnrecognized if a reachable rule is not one Apply writes,
// and ErrNamespace if nsPath cannot be used. It waits for an Apply or
// Remove of the same nsPath running in this process.
func Read(nsPath string) ([]Service, error) {
	unlock := nsLocks.Lock(nsPath)
	defer unlock()
	s, err := open(nsPath)
	if err != nil {
		return nil, err
	}
	defer s.Close()

	chains, err := tableChains(s.Conn)
	if err != nil {
		return nil, fmt.Errorf("vip: list chains of table %s in %s: %w", TableName, nsPath, err)
	}
	r := reader{conn: s.Conn, chains: map[string]*nftables.Chain{}}
	for _, c := range chains {
		r.chains[c.Name] = c
	}
	services, err := r.services()
	if err != nil {
		return nil, fmt.Errorf("vip: read table %s in %s: %w", TableName, nsPath, err)
	}
	return services, nil
}

// reader interprets the chains of the VIP table.
type reader struct {
	conn   *nftables.Conn
	chains map[string]*nftables.Chain
}

func (r *reader) services() ([]Service, error) {
	var out []Service
	seen := map[netip.Addr]bool{}
	add := func(s Service) error {
		if seen[s.VIP] {
			return fmt.Errorf("VIP %s is programmed twice: %w", s.VIP, ErrUnrecognized)
		}
		seen[s.VIP] = true
		out = append(out, s)
		return nil
	}

	natRules, err := r.baseRules(natBase)
	if err != nil {
		return nil, err
	}
	for _, rule := range natRules {
		vip, target, err := parseJump(rule.Exprs)
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", natChainName, err)
		}
		backends, err := r.serviceBackends(target)
		if err != nil {
			return nil, err
		}
		if err := add(Service{VIP: vip, Backends: backends}); err != nil {
			return nil, err
		}
	}

	rejectRules, err := r.baseRules(rejectBase)
	if err != nil {
		return nil, err
	}
	refused, err := parseRejects(rejectRules)
	if err != nil {
		return nil, err
	}
	for _, vip := range refused {
		if err := add(Service{VIP: vip}); err != nil {
			return nil, err
		}
	}
	return normalize(out), nil
}

// baseRules returns the rules of one base chain, none if the chain is
// absent, and an error if it exists with another hook or type.
func (r *reader) baseRules(b nft.BaseChain) ([]*nftables.Rule, error) {
	c := r.chains[b.Name]
	if c == nil {
		return nil, nil
	}
	if !b.Matches(c) {
		return nil, fmt.Errorf("chain %s is not a %s chain on hook output priority %d: %w", b.Name, b.Type, b.Priority, ErrUnrecognized)
	}
	return r.rules(b.Name)
}

// rules returns the rules of the named chain.
func (r *reader) rules(name string) ([]*nftables.Rule, error) {
	c := r.chains[name]
	if c == nil {
		return nil, fmt.Errorf("chain %s is referenced but missing: %w", name, ErrUnrecognized)
	}
	rules, err := r.conn.GetRules(table, c)
	if err != nil {
		return nil, fmt.Errorf("list rules of chain %s: %w", name, err)
	}
	return rules, nil
}

// serviceBackends follows a service chain: its numgen rule, its vmap and
// the endpoint chain of every slot.
func (r *reader) serviceBackends(name string) ([]netip.Addr, error) {
	rules, err := r.rules(name)
	if err != nil {
		return nil, err
	}
	if len(rules) != 1 {
		return nil, fmt.Errorf("chain %s has %d rules, want 1: %w", name, len(rules), ErrUnrecognized)
	}
	modulus, setName, err := parseNumgenLookup(rules[0].Exprs)
	if err != nil {
		return nil, fmt.Errorf("chain %s: %w", name, err)
	}
	set, err := r.conn.GetSetByName(table, setName)
	if err != nil {
		return nil, fmt.Errorf("map %s of chain %s: %w", setName, name, err)
	}
	if !set.IsMap {
		return nil, fmt.Errorf("%s of chain %s is a set, not a verdict map: %w", setName, name, ErrUnrecognized)
	}
	elements, err := r.conn.GetSetElements(set)
	if err != nil {
		return nil, fmt.Errorf("elements of map %s of chain %s: %w", setName, name, err)
	}
	if len(elements) != int(modulus) {
		return nil, fmt.Errorf("chain %s: numgen mod %d over a map of %d elements: %w", name, modulus, len(elements), ErrUnrecognized)
	}
	slots := make([]string, modulus)
	for _, e := range elements {
		if len(e.Key) != 4 {
			return nil, fmt.Errorf("map %s: key of %d bytes: %w", setName, len(e.Key), ErrUnrecognized)
		}
		slot := nft.ReadNativeUint32(e.Key)
		if slot >= modulus || slots[slot] != "" {
			return nil, fmt.Errorf("map %s: key %d out of range or repeated (mod %d): %w", setName, slot, modulus, ErrUnrecognized)
		}
		target, err := parseGoto(e.Val)
		if err != nil {
			return nil, fmt.Errorf("map %s key %d: %w", setName, slot, err)
		}
		slots[slot] = target
	}
	backends := make([]netip.Addr, 0, len(slots))
	for _, target := range slots {
		b, err := r.endpointBackend(target)
		if err != nil {
			return nil, err
		}
		if slices.Contains(backends, b) {
			return nil, fmt.Errorf("chain %s: backend %s in two slots: %w", name, b, ErrUnrecognized)
		}
		backends = append(backends, b)
	}
	return backends, nil
}

// endpointBackend returns the address an endpoint chain DNATs to.
func (r *reader) endpointBackend(name string) (netip.Addr, error) {
	rules, err := r.rules(name)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(rules) != 1 {
		return netip.Addr{}, fmt.Errorf("chain %s has %d rules, want 1: %w", name, len(rules), ErrUnrecognized)
	}
	b, err := parseDNAT(rules[0].Exprs)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("chain %s: %w", name, err)
	}
	return b, nil
}

// parseJump reads `ip daddr VIP jump CHAIN`.
func parseJump(exprs []expr.Any) (netip.Addr, string, error) {
	vip, rest, err := parseDaddr(exprs)
	if err != nil {
		return netip.Addr{}, "", err
	}
	if len(rest) != 1 {
		return netip.Addr{}, "", unrecognized("jump rule", exprs)
	}
	v, ok := rest[0].(*expr.Verdict)
	if !ok || v.Kind != expr.VerdictJump || !strings.HasPrefix(v.Chain, servicePrefix) {
		return netip.Addr{}, "", unrecognized("jump rule", exprs)
	}
	return vip, v.Chain, nil
}

// parseNumgenLookup reads `numgen random mod N vmap SET`.
func parseNumgenLookup(exprs []expr.Any) (modulus uint32, set string, err error) {
	if len(exprs) != 2 {
		return 0, "", unrecognized("numgen rule", exprs)
	}
	ng, ok1 := exprs[0].(*expr.Numgen)
	lk, ok2 := exprs[1].(*expr.Lookup)
	if !ok1 || !ok2 || ng.Type != unix.NFT_NG_RANDOM || ng.Modulus == 0 || ng.Offset != 0 ||
		lk.SourceRegister != ng.Register || !lk.IsDestRegSet || lk.DestRegister != 0 || lk.Invert {
		return 0, "", unrecognized("numgen rule", exprs)
	}
	return ng.Modulus, lk.SetName, nil
}

// parseDNAT reads `dnat to ADDR` (address only).
func parseDNAT(exprs []expr.Any) (netip.Addr, error) {
	if len(exprs) != 2 {
		return netip.Addr{}, unrecognized("dnat rule", exprs)
	}
	imm, ok1 := exprs[0].(*expr.Immediate)
	nat, ok2 := exprs[1].(*expr.NAT)
	if !ok1 || !ok2 || len(imm.Data) != 4 || nat.Type != expr.NATTypeDestNAT ||
		nat.Family != unix.NFPROTO_IPV4 || nat.RegAddrMin != imm.Register ||
		(nat.RegAddrMax != 0 && nat.RegAddrMax != imm.Register) || nat.RegProtoMin != 0 {
		return netip.Addr{}, unrecognized("dnat rule", exprs)
	}
	return netip.AddrFrom4([4]byte(imm.Data)), nil
}

// parseRejects reads the reject chain and returns the VIPs it refuses.
// Each VIP must have both rules: TCP reset, then ICMP port unreachable.
func parseRejects(rules []*nftables.Rule) ([]netip.Addr, error) {
	const tcpRule, otherRule = 1, 2
	kinds := map[netip.Addr]int{}
	var order []netip.Addr
	for _, rule := range rules {
		vip, rest, err := parseDaddr(rule.Exprs)
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", rejectChainName, err)
		}
		kind := 0
		switch {
		case len(rest) == 3:
			meta, ok1 := rest[0].(*expr.Meta)
			cmp, ok2 := rest[1].(*expr.Cmp)
			rej, ok3 := rest[2].(*expr.Reject)
			if ok1 && ok2 && ok3 && meta.Key == expr.MetaKeyL4PROTO && !meta.SourceRegister &&
				cmp.Op == expr.CmpOpEq && cmp.Register == meta.Register &&
				slices.Equal(cmp.Data, []byte{unix.IPPROTO_TCP}) && rej.Type == unix.NFT_REJECT_TCP_RST {
				kind = tcpRule
			}
		case len(rest) == 1:
			if rej, ok := rest[0].(*expr.Reject); ok && rej.Type == unix.NFT_REJECT_ICMP_UNREACH && rej.Code == icmpPortUnreachable {
				kind = otherRule
			}
		}
		if kind == 0 || kinds[vip]&kind != 0 {
			return nil, fmt.Errorf("chain %s: %w", rejectChainName, unrecognized("reject rule", rule.Exprs))
		}
		if kinds[vip] == 0 {
			order = append(order, vip)
		}
		kinds[vip] |= kind
	}
	for _, vip := range order {
		if kinds[vip] != tcpRule|otherRule {
			return nil, fmt.Errorf("chain %s: VIP %s is refused for some protocols only: %w", rejectChainName, vip, ErrUnrecognized)
		}
	}
	return order, nil
}

// parseDaddr reads the `ip daddr ADDR` prefix of a rule and returns the
// address and the expressions after it.
func parseDaddr(exprs []expr.Any) (netip.Addr, []expr.Any, error) {
	if len(exprs) < 2 {
		return netip.Addr{}, nil, unrecognized("rule", exprs)
	}
	p, ok1 := exprs[0].(*expr.Payload)
	c, ok2 := exprs[1].(*expr.Cmp)
	if !ok1 || !ok2 || p.OperationType != expr.PayloadLoad || p.Base != expr.PayloadBaseNetworkHeader ||
		p.Offset != ipv4DaddrOffset || p.Len != 4 || c.Op != expr.CmpOpEq || c.Register != p.DestRegister ||
		len(c.Data) != 4 {
		return netip.Addr{}, nil, unrecognized("rule", exprs)
	}
	return netip.AddrFrom4([4]byte(c.Data)), exprs[2:], nil
}

// parseGoto decodes the data of a verdict map element (nft.ParseVerdict)
// and returns the chain of a goto to an endpoint chain.
func parseGoto(b []byte) (string, error) {
	kind, name, err := nft.ParseVerdict(b)
	if err != nil {
		return "", fmt.Errorf("%w: %w", err, ErrUnrecognized)
	}
	if kind != expr.VerdictGoto {
		return "", fmt.Errorf("map element is not a goto: %w", ErrUnrecognized)
	}
	if !strings.HasPrefix(name, endpointPrefix) {
		return "", fmt.Errorf("map element goes to chain %q, not an endpoint chain: %w", name, ErrUnrecognized)
	}
	return name, nil
}

// unrecognized describes a rule Read cannot interpret.
func unrecognized(what string, exprs []expr.Any) error {
	return fmt.Errorf("unexpected %s [%s]: %w", what, nft.ExprTypes(exprs), ErrUnrecognized)
}
