package nft

import "github.com/google/nftables"

// BaseChain is the shape of a hooked chain with an accept policy: what a
// caller creates and what it expects to read back.
type BaseChain struct {
	// Name is the chain's name in its table.
	Name string
	// Type is the chain type (filter, nat, route).
	Type nftables.ChainType
	// Hook is the netfilter hook the chain is attached to.
	Hook *nftables.ChainHook
	// Priority is the chain's priority on its hook.
	Priority nftables.ChainPriority
}

// Chain returns the chain to add to table t: b's name, type, hook and
// priority, policy accept.
func (b BaseChain) Chain(t *nftables.Table) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Name:     b.Name,
		Table:    t,
		Type:     b.Type,
		Hooknum:  b.Hook,
		Priority: nftables.ChainPriorityRef(b.Priority),
		Policy:   &accept,
	}
}

// Matches reports whether c, a chain listed from the kernel, is b: same
// name, type, hook and priority. A regular (unhooked) chain never
// matches.
func (b BaseChain) Matches(c *nftables.Chain) bool {
	return c.Name == b.Name && c.Type == b.Type &&
		c.Hooknum != nil && b.Hook != nil && *c.Hooknum == *b.Hook &&
		c.Priority != nil && *c.Priority == b.Priority
}

// TableChains lists the chains of table t (matched by family and name);
// none, and no error, if the table is absent. Each chain's Table is set to
// t, ready for DelChain and GetRules.
func TableChains(conn *nftables.Conn, t *nftables.Table) ([]*nftables.Chain, error) {
	all, err := conn.ListChainsOfTableFamily(t.Family)
	if err != nil {
		return nil, err
	}
	var ours []*nftables.Chain
	for _, c := range all {
		if c.Table != nil && c.Table.Name == t.Name {
			c.Table = t
			ours = append(ours, c)
		}
	}
	return ours, nil
}

// DeleteTable deletes table t with everything in it, in one batch that it
// sends; an absent table is not an error. An error comes from the kernel
// and means the table was not deleted.
func DeleteTable(conn *nftables.Conn, t *nftables.Table) error {
	// Adding first makes the delete valid when the table is absent; both
	// happen in one batch.
	conn.AddTable(t)
	conn.DelTable(t)
	return conn.Flush()
}
