package orchestrator

import (
	"github.com/shoalhq/shoal/proto/api"
	"github.com/shoalhq/shoal/scheduler"
)

// constraints is a service's parsed placement constraints. A constraint
// that does not parse (the control API refuses those, so only a spec
// written around it has one) matches no node.
type constraints struct {
	list []scheduler.Constraint
	bad  bool
}

func parseConstraints(exprs []string) constraints {
	var c constraints
	for _, e := range exprs {
		p, err := scheduler.ParseConstraint(e)
		if err != nil {
			c.bad = true
			continue
		}
		c.list = append(c.list, p)
	}
	return c
}

// match reports whether the node satisfies every constraint, with the
// scheduler's semantics (scheduler.Constraint.Match), so the nodes that
// get a global task are the ones placement accepts.
func (c constraints) match(n *api.Node) bool {
	if c.bad {
		return false
	}
	for _, k := range c.list {
		if !k.Match(n) {
			return false
		}
	}
	return true
}
