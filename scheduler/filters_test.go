package scheduler

import (
	"reflect"
	"strings"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

// filterCase is one node checked by one filter.
type filterCase struct {
	name string
	spec *Spec
	node *NodeInfo
	want bool
}

func runFilterCases(t *testing.T, f Filter, cases []filterCase) {
	t.Helper()
	for _, tc := range cases {
		if got := f.Check(tc.spec, tc.node); got != tc.want {
			t.Errorf("%T %s: Check = %v, want %v", f, tc.name, got, tc.want)
		}
	}
}

func TestReadyFilter(t *testing.T) {
	s := &Spec{ServiceID: "svc"}
	runFilterCases(t, ReadyFilter{}, []filterCase{
		{"ready active", s, info(newNode("n")), true},
		{"down", s, info(newNode("n", state(api.NodeState_NODE_STATE_DOWN))), false},
		{"unknown", s, info(newNode("n", state(api.NodeState_NODE_STATE_UNKNOWN))), false},
		{"disconnected", s, info(newNode("n", state(api.NodeState_NODE_STATE_DISCONNECTED))), false},
		{"paused", s, info(newNode("n", availability(api.NodeAvailability_NODE_AVAILABILITY_PAUSE))), false},
		{"drained", s, info(newNode("n", availability(api.NodeAvailability_NODE_AVAILABILITY_DRAIN))), false},
		{"no spec", s, info(&api.Node{Id: "n", Status: &api.NodeStatus{State: api.NodeState_NODE_STATE_READY}}), true},
		{"no status", s, info(&api.Node{Id: "n"}), false},
	})
	if got := (ReadyFilter{}).Explain(1); got != "1 node not available" {
		t.Errorf("Explain(1) = %q", got)
	}
	if got := (ReadyFilter{}).Explain(3); got != "3 nodes not available" {
		t.Errorf("Explain(3) = %q", got)
	}
}

func TestPlatformFilter(t *testing.T) {
	pl := func(ps ...*api.Platform) *Spec { return &Spec{Platforms: ps} }
	linuxAMD := &api.Platform{Os: "linux", Architecture: "amd64"}
	anyWindows := &api.Platform{Os: "windows"}
	anyARM := &api.Platform{Architecture: "arm64"}
	runFilterCases(t, PlatformFilter{}, []filterCase{
		{"no platforms", pl(), info(newNode("n", platform("plan9", "mips"))), true},
		{"exact", pl(linuxAMD), info(newNode("n")), true},
		{"case", pl(linuxAMD), info(newNode("n", platform("Linux", "AMD64"))), true},
		{"x86_64 alias", pl(linuxAMD), info(newNode("n", platform("linux", "x86_64"))), true},
		{"aarch64 alias", pl(anyARM), info(newNode("n", platform("linux", "aarch64"))), true},
		{"wrong arch", pl(linuxAMD), info(newNode("n", platform("linux", "arm64"))), false},
		{"wrong os", pl(linuxAMD), info(newNode("n", platform("windows", "amd64"))), false},
		{"second of two", pl(linuxAMD, anyWindows), info(newNode("n", platform("windows", "arm64"))), true},
		{"no platform reported", pl(linuxAMD), info(&api.Node{Id: "n", Description: &api.NodeDescription{}}), false},
	})
	if got := (PlatformFilter{}).Explain(2); got != "unsupported platform on 2 nodes" {
		t.Errorf("Explain(2) = %q", got)
	}
}

func TestConstraintFilter(t *testing.T) {
	c, _ := ParseConstraint("node.labels.zone==eu")
	f := ConstraintFilter{Constraint: c}
	s := &Spec{Constraints: []Constraint{c}}
	runFilterCases(t, f, []filterCase{
		{"label equal", s, info(newNode("n", labels("zone", "eu"))), true},
		{"label differs", s, info(newNode("n", labels("zone", "us"))), false},
		{"label absent", s, info(newNode("n")), false},
	})
	ne, _ := ParseConstraint("node.labels.zone!=eu")
	runFilterCases(t, ConstraintFilter{Constraint: ne}, []filterCase{
		{"!= label equal", s, info(newNode("n", labels("zone", "eu"))), false},
		{"!= label differs", s, info(newNode("n", labels("zone", "us"))), true},
		{"!= label absent", s, info(newNode("n")), true},
	})
	if got := f.Explain(2); got != "constraint node.labels.zone==eu not met on 2 nodes" {
		t.Errorf("Explain(2) = %q", got)
	}
	if got := f.Explain(1); got != "constraint node.labels.zone==eu not met on 1 node" {
		t.Errorf("Explain(1) = %q", got)
	}
}

func TestResourceFilters(t *testing.T) {
	const gb = int64(1) << 30
	s := &Spec{ServiceID: "svc", CPU: 1e9, Memory: gb}
	big := newNode("big", resources(4e9, 4*gb))
	full := &NodeInfo{Node: big, Tasks: 4, ReservedCPU: 3.5e9, ReservedMemory: 3 * gb}
	almost := &NodeInfo{Node: big, Tasks: 3, ReservedCPU: 3e9, ReservedMemory: 3 * gb}
	runFilterCases(t, CPUFilter{}, []filterCase{
		{"free", s, info(big), true},
		{"exactly one left", s, almost, true},
		{"half a core left", s, full, false},
		{"no resources declared", s, info(newNode("bare")), false},
		{"nothing reserved", &Spec{}, info(newNode("bare")), true},
	})
	runFilterCases(t, MemoryFilter{}, []filterCase{
		{"free", s, info(big), true},
		{"exactly one left", s, full, true},
		{"full", s, &NodeInfo{Node: big, ReservedMemory: 3*gb + 1}, false},
		{"no resources declared", s, info(newNode("bare")), false},
		{"nothing reserved", &Spec{}, info(newNode("bare")), true},
	})
	if got := (CPUFilter{}).Explain(3); got != "insufficient CPU on 3 nodes" {
		t.Errorf("CPU Explain(3) = %q", got)
	}
	if got := (MemoryFilter{}).Explain(3); got != "insufficient memory on 3 nodes" {
		t.Errorf("memory Explain(3) = %q", got)
	}
	// room counts how many more fit.
	u := usageOf(s, almost)
	if got := (CPUFilter{}).room(s, big, &u, 10); got != 1 {
		t.Errorf("CPU room on a node with one core left = %d, want 1", got)
	}
	u = usageOf(s, info(big))
	if got := (MemoryFilter{}).room(s, big, &u, 10); got != 4 {
		t.Errorf("memory room on an empty 4 GB node = %d, want 4", got)
	}
	if got := (MemoryFilter{}).room(s, big, &u, 2); got != 2 {
		t.Errorf("memory room capped at 2 = %d", got)
	}
}

func TestHostPortFilter(t *testing.T) {
	s := &Spec{ServiceID: "svc", HostPorts: HostPorts(hostPortEndpoint(8080, 9090))}
	udp := HostPort{Protocol: api.PortConfig_PROTOCOL_UDP, Port: 8080}
	tcp := HostPort{Protocol: api.PortConfig_PROTOCOL_TCP, Port: 8080}
	runFilterCases(t, HostPortFilter{}, []filterCase{
		{"free", s, info(newNode("n")), true},
		{"same port other protocol", s, &NodeInfo{Node: newNode("n"), HostPorts: map[HostPort]int{udp: 1}}, true},
		{"same port and protocol", s, &NodeInfo{Node: newNode("n"), HostPorts: map[HostPort]int{tcp: 1}}, false},
		{"no host ports", &Spec{}, &NodeInfo{Node: newNode("n"), HostPorts: map[HostPort]int{tcp: 1}}, true},
	})
	if got := (HostPortFilter{}).Explain(2); got != "host-mode port already in use on 2 nodes" {
		t.Errorf("Explain(2) = %q", got)
	}
	// A port placed in the same round counts too, and a node takes one.
	u := usage{extraPorts: []HostPort{{Port: 9090}}}
	if got := (HostPortFilter{}).room(s, nil, &u, 5); got != 0 {
		t.Errorf("room with a port placed this round = %d, want 0", got)
	}
	u = usage{}
	if got := (HostPortFilter{}).room(s, nil, &u, 5); got != 1 {
		t.Errorf("room on a free node = %d, want 1", got)
	}
}

func TestHostPorts(t *testing.T) {
	ep := &api.Endpoint{
		Spec: &api.EndpointSpec{Ports: []*api.PortConfig{{PublishedPort: 1, PublishMode: api.PortConfig_PUBLISH_MODE_HOST}}},
		Ports: []*api.PortConfig{
			{PublishedPort: 80, PublishMode: api.PortConfig_PUBLISH_MODE_HOST, Protocol: api.PortConfig_PROTOCOL_UDP},
			{PublishedPort: 443, PublishMode: api.PortConfig_PUBLISH_MODE_INGRESS},
			{PublishedPort: 0, PublishMode: api.PortConfig_PUBLISH_MODE_HOST},
		},
	}
	want := []HostPort{{Protocol: api.PortConfig_PROTOCOL_UDP, Port: 80}}
	if got := HostPorts(ep); !reflect.DeepEqual(got, want) {
		t.Errorf("HostPorts (allocated) = %v, want %v", got, want)
	}
	ep.Ports = nil
	if got := HostPorts(ep); len(got) != 1 || got[0].Port != 1 {
		t.Errorf("HostPorts (spec only) = %v", got)
	}
	if got := HostPorts(nil); got != nil {
		t.Errorf("HostPorts(nil) = %v", got)
	}
	if got := want[0].String(); got != "80/udp" {
		t.Errorf("String = %q", got)
	}
}

func TestMaxReplicasFilter(t *testing.T) {
	s := &Spec{ServiceID: "svc", MaxReplicas: 2}
	f := MaxReplicasFilter{Max: 2}
	runFilterCases(t, f, []filterCase{
		{"none", s, info(newNode("n")), true},
		{"one", s, &NodeInfo{Node: newNode("n"), ServiceTasks: map[string]int{"svc": 1}}, true},
		{"two", s, &NodeInfo{Node: newNode("n"), ServiceTasks: map[string]int{"svc": 2}}, false},
		{"other service", s, &NodeInfo{Node: newNode("n"), ServiceTasks: map[string]int{"other": 5}}, true},
	})
	if got := f.Explain(3); got != "max replicas per node (2) reached on 3 nodes" {
		t.Errorf("Explain(3) = %q", got)
	}
}

func TestPipelineOrder(t *testing.T) {
	s, err := NewSpec("svc", &api.TaskSpec{
		Placement: &api.Placement{
			Constraints: []string{"node.labels.a==1", "node.role==worker"},
			MaxReplicas: 1,
			Platforms:   []*api.Platform{{Os: "linux"}},
		},
		Resources: &api.ResourceRequirements{Reservations: &api.Resources{NanoCpus: 1, MemoryBytes: 1}},
	}, hostPortEndpoint(80))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range Pipeline(s) {
		names = append(names, reflect.TypeOf(f).Name())
	}
	want := "ReadyFilter PlatformFilter ConstraintFilter ConstraintFilter CPUFilter MemoryFilter HostPortFilter MaxReplicasFilter"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("Pipeline = %s, want %s", got, want)
	}
	if got := len(Pipeline(&Spec{})); got != 1 {
		t.Errorf("a spec asking nothing has %d filters, want 1 (ready)", got)
	}
}

func TestExplainOrder(t *testing.T) {
	c, _ := ParseConstraint("node.labels.zone==eu")
	filters := []Filter{ReadyFilter{}, ConstraintFilter{Constraint: c}, MemoryFilter{}}
	got := explain(filters, []int{1, 2, 3})
	want := "no suitable node (insufficient memory on 3 nodes; constraint node.labels.zone==eu not met on 2 nodes; 1 node not available)"
	if got != want {
		t.Errorf("explain = %q\nwant      %q", got, want)
	}
	// Ties keep the pipeline order; filters with no failure are left out.
	got = explain(filters, []int{2, 0, 2})
	want = "no suitable node (2 nodes not available; insufficient memory on 2 nodes)"
	if got != want {
		t.Errorf("explain = %q\nwant      %q", got, want)
	}
	if got := explain(filters, []int{0, 0, 0}); got != "no suitable node (no nodes in the cluster)" {
		t.Errorf("explain with no nodes = %q", got)
	}
}

func TestCheckNode(t *testing.T) {
	s, _ := NewSpec("svc", &api.TaskSpec{Placement: &api.Placement{Constraints: []string{"node.labels.zone==eu"}}}, nil)
	if got := CheckNode(s, info(newNode("n", labels("zone", "eu")))); got != "" {
		t.Errorf("CheckNode on a fitting node = %q", got)
	}
	if got, want := CheckNode(s, info(newNode("n"))), "no suitable node (constraint node.labels.zone==eu not met on 1 node)"; got != want {
		t.Errorf("CheckNode = %q, want %q", got, want)
	}
	if got, want := CheckNode(s, info(newNode("n", state(api.NodeState_NODE_STATE_DOWN)))), "no suitable node (1 node not available)"; got != want {
		t.Errorf("CheckNode on a down node = %q, want %q", got, want)
	}
}
