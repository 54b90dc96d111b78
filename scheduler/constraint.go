package scheduler

// This file holds the placement-constraint syntax. It is the grammar of
// manager/controlapi's ParseConstraint (which validates specs at create
// time and which the scheduler may not import): keep the two consistent.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shoalhq/shoal/proto/api"
)

// Sentinel errors of spec preparation. NewSpec wraps them with the
// offending text; test them with errors.Is.
var (
	// ErrInvalidConstraint means a placement constraint does not parse.
	// The control API refuses such specs, so seeing it means the spec
	// reached the store by another path.
	ErrInvalidConstraint = errors.New("invalid placement constraint")
	// ErrInvalidPreference means a placement preference is not
	// spread=node.labels.NAME or spread=engine.labels.NAME.
	ErrInvalidPreference = errors.New("invalid placement preference")
	// ErrDuplicateHostPort means one task publishes the same host-mode
	// port and protocol twice, which no node can ever satisfy.
	ErrDuplicateHostPort = errors.New("host-mode port published twice")
)

// Op is a constraint's comparison.
type Op int

// Constraint operators.
const (
	// Eq holds when the node's attribute equals the value.
	Eq Op = iota + 1
	// NotEq holds when the node's attribute differs from the value (a
	// label the node does not have differs from every value).
	NotEq
)

// String returns "==" or "!=".
func (o Op) String() string {
	switch o {
	case Eq:
		return "=="
	case NotEq:
		return "!="
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Constraint attribute keys. A label key is one of the label prefixes
// followed by the label's name, e.g. node.labels.zone.
const (
	KeyNodeID           = "node.id"
	KeyNodeHostname     = "node.hostname"
	KeyNodeRole         = "node.role"
	KeyNodePlatformOS   = "node.platform.os"
	KeyNodePlatformArch = "node.platform.arch"
	// NodeLabelPrefix starts keys naming a node's spec labels.
	NodeLabelPrefix = "node.labels."
	// EngineLabelPrefix starts keys naming the labels a node reports of
	// itself (NodeDescription.engine_labels).
	EngineLabelPrefix = "engine.labels."
)

// constraintKeys lists the keys a constraint may use, for messages.
const constraintKeys = "node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.NAME, engine.labels.NAME"

// Constraint is one parsed placement constraint: KEY==VALUE or
// KEY!=VALUE. Key and Value are trimmed of surrounding spaces.
type Constraint struct {
	Key   string
	Op    Op
	Value string
}

// String renders the constraint in the syntax ParseConstraint reads.
func (c Constraint) String() string { return c.Key + c.Op.String() + c.Value }

// Label returns the label name and true when the constraint is on a node
// label (node.labels.NAME) or engine label (engine.labels.NAME), with
// engine telling which.
func (c Constraint) Label() (name string, engine bool, ok bool) {
	if n, found := strings.CutPrefix(c.Key, NodeLabelPrefix); found {
		return n, false, true
	}
	if n, found := strings.CutPrefix(c.Key, EngineLabelPrefix); found {
		return n, true, true
	}
	return "", false, false
}

// Match reports whether node n satisfies the constraint. node.hostname,
// node.role (manager or worker, the node's observed role),
// node.platform.os and node.platform.arch compare case-insensitively, as
// in Swarm; node.id and labels compare exactly (as the orchestrator's
// matcher does). A label the node does not have never equals a value and
// always satisfies !=. A constraint with an unknown key matches no node.
func (c Constraint) Match(n *api.Node) bool {
	var have string
	switch c.Key {
	case KeyNodeID:
		return (n.GetId() == c.Value) == (c.Op == Eq)
	case KeyNodeHostname:
		have = n.GetDescription().GetHostname()
	case KeyNodeRole:
		have = roleName(n.GetRole())
	case KeyNodePlatformOS:
		have = n.GetDescription().GetPlatform().GetOs()
	case KeyNodePlatformArch:
		have = n.GetDescription().GetPlatform().GetArchitecture()
	default:
		name, engine, ok := c.Label()
		if !ok {
			return false
		}
		labels := n.GetSpec().GetAnnotations().GetLabels()
		if engine {
			labels = n.GetDescription().GetEngineLabels()
		}
		v, present := labels[name]
		return (present && v == c.Value) == (c.Op == Eq)
	}
	eq := have != "" && strings.EqualFold(have, c.Value)
	return eq == (c.Op == Eq)
}

// roleName is the constraint value of a node role.
func roleName(r api.NodeRole) string {
	if r == api.NodeRole_NODE_ROLE_MANAGER {
		return "manager"
	}
	return "worker"
}

// ParseConstraint parses "KEY==VALUE" or "KEY!=VALUE". KEY is one of
// node.id, node.hostname, node.role, node.platform.os, node.platform.arch,
// node.labels.NAME or engine.labels.NAME; the value of node.role is
// manager or worker; VALUE is not empty. Errors wrap ErrInvalidConstraint
// and say what to write instead.
func ParseConstraint(s string) (Constraint, error) {
	c, err := parseConstraint(s)
	if err != nil {
		return Constraint{}, fmt.Errorf("%w: %w", ErrInvalidConstraint, err)
	}
	return c, nil
}

func parseConstraint(s string) (Constraint, error) {
	eq := strings.Index(s, "==")
	ne := strings.Index(s, "!=")
	var c Constraint
	var at int
	switch {
	case eq < 0 && ne < 0:
		if strings.Contains(s, "=") {
			return Constraint{}, fmt.Errorf("%q: use == or != to compare, e.g. node.labels.zone==eu", s)
		}
		return Constraint{}, fmt.Errorf("%q has no operator: write KEY==VALUE or KEY!=VALUE, e.g. node.role==worker", s)
	case ne < 0 || (eq >= 0 && eq < ne):
		c.Op, at = Eq, eq
	default:
		c.Op, at = NotEq, ne
	}
	c.Key = strings.TrimSpace(s[:at])
	c.Value = strings.TrimSpace(s[at+2:])
	if c.Key == "" {
		return Constraint{}, fmt.Errorf("%q has no key before %s: the key is one of %s", s, c.Op, constraintKeys)
	}
	if c.Value == "" {
		return Constraint{}, fmt.Errorf("%q has no value after %s", s, c.Op)
	}
	if strings.Contains(c.Value, "==") || strings.Contains(c.Value, "!=") {
		return Constraint{}, fmt.Errorf("%q has more than one operator: write one constraint per entry", s)
	}
	if err := checkConstraintKey(c); err != nil {
		return Constraint{}, fmt.Errorf("%q: %w", s, err)
	}
	return c, nil
}

// checkConstraintKey checks the key, and the value where the key
// restricts it.
func checkConstraintKey(c Constraint) error {
	switch c.Key {
	case KeyNodeID, KeyNodeHostname, KeyNodePlatformOS, KeyNodePlatformArch:
		return nil
	case KeyNodeRole:
		if c.Value != "manager" && c.Value != "worker" {
			return fmt.Errorf("node.role is manager or worker, got %q", c.Value)
		}
		return nil
	}
	if name, _, ok := c.Label(); ok {
		if name == "" {
			return errors.New("the label name is missing: write e.g. node.labels.zone")
		}
		return nil
	}
	return fmt.Errorf("unknown key %q: the key is one of %s", c.Key, constraintKeys)
}
