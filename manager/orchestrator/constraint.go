package orchestrator

import (
	"strings"

	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/proto/api"
)

// constraints is a service's parsed placement constraints. A constraint
// that does not parse (the control API refuses those, so only a spec
// written around it has one) matches no node.
type constraints struct {
	list []controlapi.Constraint
	bad  bool
}

func parseConstraints(exprs []string) constraints {
	var c constraints
	for _, e := range exprs {
		p, err := controlapi.ParseConstraint(e)
		if err != nil {
			c.bad = true
			continue
		}
		c.list = append(c.list, p)
	}
	return c
}

// match reports whether the node satisfies every constraint, in the
// syntax of controlapi.ParseConstraint: node.id and labels compare
// exactly; node.hostname, node.role (manager or worker, the node's
// observed role), node.platform.os and node.platform.arch compare without
// regard to case. A label the node does not have equals no value.
func (c constraints) match(n *api.Node) bool {
	if c.bad {
		return false
	}
	for _, k := range c.list {
		val, ok, fold := nodeAttr(n, k)
		eq := ok && (val == k.Value || (fold && strings.EqualFold(val, k.Value)))
		if (k.Op == controlapi.Eq) != eq {
			return false
		}
	}
	return true
}

// nodeAttr returns the node's value for the constraint's key, whether it
// has one, and whether it compares without regard to case.
func nodeAttr(n *api.Node, k controlapi.Constraint) (val string, ok, fold bool) {
	switch k.Key {
	case controlapi.KeyNodeID:
		return n.GetId(), true, false
	case controlapi.KeyNodeHostname:
		return n.GetDescription().GetHostname(), true, true
	case controlapi.KeyNodeRole:
		if n.GetRole() == api.NodeRole_NODE_ROLE_MANAGER {
			return "manager", true, true
		}
		return "worker", true, true
	case controlapi.KeyNodePlatformOS:
		return n.GetDescription().GetPlatform().GetOs(), true, true
	case controlapi.KeyNodePlatformArch:
		return n.GetDescription().GetPlatform().GetArchitecture(), true, true
	}
	name, engine, isLabel := k.Label()
	if !isLabel {
		return "", false, false
	}
	labels := n.GetSpec().GetAnnotations().GetLabels()
	if engine {
		labels = n.GetDescription().GetEngineLabels()
	}
	val, ok = labels[name]
	return val, ok, false
}
