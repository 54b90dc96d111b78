package controlapi

// This file holds the placement-constraint syntax. The scheduler will
// share it; it depends on nothing but the standard library so that it can
// move to a package of its own.

import (
	"errors"
	"fmt"
	"strings"
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
func (c Constraint) String() string {
	return c.Key + c.Op.String() + c.Value
}

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

// ParseConstraint parses "KEY==VALUE" or "KEY!=VALUE". KEY is one of
// node.id, node.hostname, node.role, node.platform.os, node.platform.arch,
// node.labels.NAME or engine.labels.NAME; the value of node.role is
// manager or worker; VALUE is not empty. The error says what to write
// instead.
func ParseConstraint(s string) (Constraint, error) {
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
