package bridge

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/shoalhq/shoal/overlay/internal/nft"
)

// natChain is the chain of TableName that masquerades outbound traffic.
const natChain = "postrouting"

// nftConn returns an nftables connection whose sockets open inside the
// namespace at path ("" = the caller's own) and the function that releases
// it.
func nftConn(path string) (*nftables.Conn, func(), error) {
	if path == "" {
		c, err := nftables.New()
		if err != nil {
			return nil, nil, fmt.Errorf("bridge: nftables connection: %w", err)
		}
		return c, func() {}, nil
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: Config.HostNS %q cannot be opened: %w", ErrInvalid, path, err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		_ = unix.Close(fd)
		return nil, nil, fmt.Errorf("bridge: nftables connection in namespace %s: %w", path, err)
	}
	return c, func() { _ = unix.Close(fd) }, nil
}

// natTable is the table this package owns.
func natTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
}

// masqueradeExprs is the rule
//
//	ip saddr SUBNET oifname != "BRIDGE" masquerade
//
// traffic from the tasks that leaves through another interface than the
// bridge takes the address of that interface; traffic between tasks on
// the bridge (bridged, or routed back out of it) keeps its source.
func masqueradeExprs(subnet netip.Prefix, bridge string) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}, // ip saddr
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: net.CIDRMask(subnet.Bits(), 32), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: subnet.Addr().AsSlice()},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: nft.IfName(bridge)},
		&expr.Masq{},
	}
}

// ensureNAT makes TableName in the namespace at path hold exactly the nat
// postrouting chain with the masquerade rule, in one atomic batch: add the
// table (so that it exists), delete it with whatever it held, and add it
// again with its content. Calling it again converges; a changed subnet or
// bridge replaces the rule.
func ensureNAT(path string, subnet netip.Prefix, bridge string) error {
	c, release, err := nftConn(path)
	if err != nil {
		return err
	}
	defer release()
	t := natTable()
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	ch := c.AddChain(&nftables.Chain{
		Name:     natChain,
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: masqueradeExprs(subnet, bridge)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("bridge: write nftables table ip %s (masquerade %v) in the host namespace %q: %w", TableName, subnet, path, err)
	}
	return nil
}

// removeNAT deletes TableName in the namespace at path; a missing table is
// not an error.
func removeNAT(path string) error {
	c, release, err := nftConn(path)
	if err != nil {
		return err
	}
	defer release()
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("bridge: list nftables tables in the host namespace %q: %w", path, err)
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName }) {
		return nil
	}
	c.DelTable(natTable())
	if err := c.Flush(); err != nil {
		return fmt.Errorf("bridge: delete nftables table ip %s in the host namespace %q: %w", TableName, path, err)
	}
	return nil
}
