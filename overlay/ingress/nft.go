package ingress

import (
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/internal/nft"
)

// Kernel constants not spelled out by x/sys/unix.
const (
	icmpPortUnreachable = 3      // ICMP_PORT_UNREACH, code of destination unreachable
	rtnLocal            = 2      // RTN_LOCAL, the fib address type of a local address
	thDportOffset       = 2      // offset of the destination port in TCP and UDP headers
	etherSaddrOffset    = 6      // offset of the source MAC in the Ethernet header
	ctStateNew          = 1 << 3 // NF_CT_STATE_BIT(IP_CT_NEW)
	// reg32x1 is the second 32-bit register of register 1 (NFT_REG32_01),
	// where the second field of a concatenation goes.
	reg32x1 = 9
)

// tableSets lists the named sets and maps of table t; none if the table is
// absent.
func tableSets(conn *nftables.Conn, t *nftables.Table) ([]*nftables.Set, error) {
	tables, err := conn.ListTablesOfFamily(t.Family)
	if err != nil {
		return nil, err
	}
	found := false
	for _, tt := range tables {
		found = found || tt.Name == t.Name
	}
	if !found {
		return nil, nil
	}
	sets, err := conn.GetSets(t)
	if err != nil {
		return nil, err
	}
	var named []*nftables.Set
	for _, s := range sets {
		if !s.Anonymous {
			s.Table = t
			named = append(named, s)
		}
	}
	return named, nil
}

// mapShape is what this package checks of a named map read back from the
// kernel before reusing it (flush and refill) rather than re-creating it.
// The library reads the key type of a verdict map wrongly, so a verdict
// map is checked by its flags only.
type mapShape struct {
	verdict  bool
	concat   bool
	key      nftables.SetDatatype
	data     nftables.SetDatatype
	keyBytes uint32
}

func (m mapShape) matches(s *nftables.Set) bool {
	if !s.IsMap || s.Anonymous || s.Constant || s.Interval || s.HasTimeout || s.Dynamic || s.Concatenation != m.concat {
		return false
	}
	if m.verdict {
		return true
	}
	return s.KeyType.GetNFTMagic() == m.key.GetNFTMagic() && s.KeyType.Bytes == m.key.Bytes &&
		s.DataType.GetNFTMagic() == m.data.GetNFTMagic() && s.DataType.Bytes == m.data.Bytes
}

// set returns the map to create, with an ID unique within the batch: the
// library would otherwise number it from a package-wide counter that is
// not safe for concurrent use.
func (m mapShape) set(t *nftables.Table, name string, id uint32) *nftables.Set {
	return &nftables.Set{
		Table:         t,
		ID:            id,
		Name:          name,
		IsMap:         true,
		Concatenation: m.concat,
		KeyType:       m.key,
		DataType:      m.data,
	}
}

// l4protoExprs matches packets of IP protocol proto.
func l4protoExprs(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

// parseL4proto reads the `meta l4proto P` prefix of a rule and returns P
// and the expressions after it.
func parseL4proto(exprs []expr.Any) (byte, []expr.Any, bool) {
	if len(exprs) < 2 {
		return 0, nil, false
	}
	m, ok1 := exprs[0].(*expr.Meta)
	c, ok2 := exprs[1].(*expr.Cmp)
	if !ok1 || !ok2 || m.Key != expr.MetaKeyL4PROTO || m.SourceRegister || c.Op != expr.CmpOpEq ||
		c.Register != m.Register || len(c.Data) != 1 {
		return 0, nil, false
	}
	return c.Data[0], exprs[2:], true
}

// unrecognized describes a rule this package cannot interpret.
func unrecognized(what string, exprs []expr.Any) error {
	return fmt.Errorf("unexpected %s [%s]: %w", what, nft.ExprTypes(exprs), ErrUnrecognized)
}

// flushErr describes a failed batch commit.
func flushErr(what, table, nsPath string, err error) error {
	if errors.Is(err, unix.ENOBUFS) {
		return fmt.Errorf("ingress: %s table %s in %s: acknowledgements lost, the batch may or may not be applied; apply again: %w", what, table, nsPath, err)
	}
	return fmt.Errorf("ingress: %s table %s in %s (nothing changed): %w", what, table, nsPath, err)
}

// removeTable deletes table t and everything in it; an absent table is
// not an error.
func removeTable(s *nft.Session, t *nftables.Table, nsPath string) error {
	if err := nft.DeleteTable(s.Conn, t); err != nil {
		return fmt.Errorf("ingress: delete table %s in %s: %w", t.Name, nsPath, err)
	}
	return nil
}
