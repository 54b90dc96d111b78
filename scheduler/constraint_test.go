package scheduler

import (
	"errors"
	"strings"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

// The parse cases are those of manager/controlapi's TestParseConstraint:
// the two parsers read one grammar.
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
		if !errors.Is(err, ErrInvalidConstraint) {
			t.Errorf("ParseConstraint(%q) = %v, want it to wrap ErrInvalidConstraint", tc.in, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseConstraint(%q) = %q, want it to say %q", tc.in, err, tc.want)
		}
	}
}

func TestConstraintMatch(t *testing.T) {
	n := newNode("abc123",
		hostname("Web-1"), manager(), platform("Linux", "ARM64"),
		labels("zone", "eu", "Tier", "Front"), engineLabels("ssd", "true"))
	for _, tc := range []struct {
		c    string
		want bool
	}{
		{"node.id==abc123", true},
		{"node.id==ABC123", false}, // IDs compare exactly
		{"node.id!=abc123", false},
		{"node.id==other", false},
		{"node.hostname==web-1", true}, // case-insensitive, like Swarm
		{"node.hostname!=WEB-1", false},
		{"node.hostname==web-2", false},
		{"node.role==manager", true},
		{"node.role==worker", false},
		{"node.role!=worker", true},
		{"node.platform.os==linux", true},
		{"node.platform.os==windows", false},
		{"node.platform.arch==arm64", true},
		{"node.platform.arch!=arm64", false},
		{"node.labels.zone==eu", true},
		{"node.labels.zone==EU", false}, // labels compare exactly
		{"node.labels.zone!=us", true},
		{"node.labels.Tier==Front", true},
		{"node.labels.tier==Front", false}, // the name is exact too
		{"node.labels.rack==1", false},     // absent: never equal
		{"node.labels.rack!=1", true},      // absent: always different
		{"engine.labels.ssd==true", true},
		{"engine.labels.zone==eu", false}, // node labels are not engine labels
		{"engine.labels.gpu!=yes", true},
	} {
		c, err := ParseConstraint(tc.c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Match(n); got != tc.want {
			t.Errorf("%s on %s: got %v, want %v", tc.c, n.Id, got, tc.want)
		}
	}

	// A worker with no description: hostname and platform are empty and
	// equal nothing.
	bare := &api.Node{Id: "bare"}
	for _, tc := range []struct {
		c    string
		want bool
	}{
		{"node.role==worker", true},
		{"node.hostname==x", false},
		{"node.hostname!=x", true},
		{"node.platform.os==linux", false},
		{"node.labels.zone!=eu", true},
	} {
		c, _ := ParseConstraint(tc.c)
		if got := c.Match(bare); got != tc.want {
			t.Errorf("%s on a bare node: got %v, want %v", tc.c, got, tc.want)
		}
	}
	if (Constraint{Key: "node.zone", Op: Eq, Value: "x"}).Match(n) {
		t.Error("a constraint with an unknown key matched")
	}
}

func TestNewSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec *api.TaskSpec
		ep   *api.Endpoint
		err  error
	}{
		{"constraint", &api.TaskSpec{Placement: &api.Placement{Constraints: []string{"zone=eu"}}}, nil, ErrInvalidConstraint},
		{"preference", &api.TaskSpec{Placement: &api.Placement{Preferences: []*api.PlacementPreference{{Spread: "zone"}}}}, nil, ErrInvalidPreference},
		{"empty label", &api.TaskSpec{Placement: &api.Placement{Preferences: []*api.PlacementPreference{{Spread: "node.labels."}}}}, nil, ErrInvalidPreference},
		{"port twice", &api.TaskSpec{}, hostPortEndpoint(80, 80), ErrDuplicateHostPort},
	} {
		if _, err := NewSpec("svc", tc.spec, tc.ep); !errors.Is(err, tc.err) {
			t.Errorf("%s: NewSpec = %v, want %v", tc.name, err, tc.err)
		}
	}
	s, err := NewSpec("svc", &api.TaskSpec{
		Placement: &api.Placement{
			Constraints: []string{"node.labels.zone==eu"},
			Preferences: []*api.PlacementPreference{{Spread: "node.labels.rack"}, {Spread: "engine.labels.dc"}},
			MaxReplicas: 2,
		},
		Resources: &api.ResourceRequirements{Reservations: &api.Resources{NanoCpus: 5, MemoryBytes: 7}},
	}, hostPortEndpoint(80, 81))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Constraints) != 1 || s.Constraints[0].Value != "eu" || len(s.Spread) != 2 ||
		s.Spread[1] != (SpreadKey{Label: "dc", Engine: true}) || s.CPU != 5 || s.Memory != 7 ||
		s.MaxReplicas != 2 || len(s.HostPorts) != 2 || s.HostPorts[1].String() != "81/tcp" {
		t.Errorf("NewSpec = %+v", s)
	}
}
