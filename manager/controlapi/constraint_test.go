package controlapi

import (
	"strings"
	"testing"
)

func TestParseConstraint(t *testing.T) {
	good := []struct {
		in   string
		want Constraint
	}{
		{"node.id==abc", Constraint{"node.id", Eq, "abc"}},
		{"node.hostname!=host1", Constraint{"node.hostname", NotEq, "host1"}},
		{"node.role==manager", Constraint{"node.role", Eq, "manager"}},
		{"node.role != worker", Constraint{"node.role", NotEq, "worker"}},
		{"node.platform.os==linux", Constraint{"node.platform.os", Eq, "linux"}},
		{"node.platform.arch==arm64", Constraint{"node.platform.arch", Eq, "arm64"}},
		{"node.labels.zone==eu-west", Constraint{"node.labels.zone", Eq, "eu-west"}},
		{"engine.labels.ssd!=true", Constraint{"engine.labels.ssd", NotEq, "true"}},
		{"  node.labels.a.b == x=y ", Constraint{"node.labels.a.b", Eq, "x=y"}},
	}
	for _, tc := range good {
		got, err := ParseConstraint(tc.in)
		if err != nil {
			t.Errorf("ParseConstraint(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseConstraint(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if back, err := ParseConstraint(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q: %+v, %v", got.String(), back, err)
		}
	}

	bad := []struct{ in, want string }{
		{"", "no operator"},
		{"node.role", "no operator"},
		{"node.role=worker", "use == or !="},
		{"==worker", "no key"},
		{"node.role==", "no value"},
		{"node.role==manager==worker", "more than one operator"},
		{"node.role==boss", "manager or worker"},
		{"node.labels.==x", "label name is missing"},
		{"engine.labels.!=x", "label name is missing"},
		{"node.zone==eu", "unknown key"},
		{"labels.zone==eu", "node.labels.NAME"},
	}
	for _, tc := range bad {
		_, err := ParseConstraint(tc.in)
		if err == nil {
			t.Errorf("ParseConstraint(%q): want an error", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConstraint(%q) = %q, want it to say %q", tc.in, err, tc.want)
		}
	}
}

func TestConstraintLabel(t *testing.T) {
	for _, tc := range []struct {
		key    string
		name   string
		engine bool
		ok     bool
	}{
		{"node.labels.zone", "zone", false, true},
		{"engine.labels.ssd", "ssd", true, true},
		{"node.role", "", false, false},
	} {
		name, engine, ok := Constraint{Key: tc.key}.Label()
		if name != tc.name || engine != tc.engine || ok != tc.ok {
			t.Errorf("Label(%s) = %q %v %v", tc.key, name, engine, ok)
		}
	}
}
