package scheduler

import (
	"fmt"
	"slices"
	"strings"

	"github.com/shoalhq/shoal/proto/api"
)

// Filter is one feasibility check of the pipeline, in the manner of
// swarmkit: Check says whether a node can take one more task of a spec,
// given what runs on it; Explain says why a number of nodes could not,
// in words a user reads in the task's error ("insufficient memory on 3
// nodes"). Filters are small values without state of their own beyond
// what Pipeline gives them.
type Filter interface {
	Check(s *Spec, n *NodeInfo) bool
	Explain(nodes int) string
}

// Pipeline returns the filters that apply to s, in the order they are
// checked: ReadyFilter, PlatformFilter (when s has platforms), one
// ConstraintFilter per constraint, then the filters that depend on what
// runs on the node: CPUFilter and MemoryFilter (when s reserves them),
// HostPortFilter (when s binds host ports) and MaxReplicasFilter (when s
// caps replicas per node). A node is counted, in an explanation, under the
// first filter it fails.
func Pipeline(s *Spec) []Filter {
	fs := []Filter{ReadyFilter{}}
	if len(s.Platforms) > 0 {
		fs = append(fs, PlatformFilter{})
	}
	for _, c := range s.Constraints {
		fs = append(fs, ConstraintFilter{Constraint: c})
	}
	if s.CPU > 0 {
		fs = append(fs, CPUFilter{})
	}
	if s.Memory > 0 {
		fs = append(fs, MemoryFilter{})
	}
	if len(s.HostPorts) > 0 {
		fs = append(fs, HostPortFilter{})
	}
	if s.MaxReplicas > 0 {
		fs = append(fs, MaxReplicasFilter{Max: s.MaxReplicas})
	}
	return fs
}

// CheckNode runs every filter of s's pipeline on n and returns "" when n
// can take one more task of s, or else the reason in the form of a
// scheduling failure on that one node ("no suitable node (insufficient
// memory on 1 node)").
func CheckNode(s *Spec, n *NodeInfo) string {
	for _, f := range Pipeline(s) {
		if !f.Check(s, n) {
			return noSuitableNode([]string{f.Explain(1)})
		}
	}
	return ""
}

// nodes renders a count of nodes: "1 node", "3 nodes".
func nodes(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}

// noSuitableNode wraps explanations in the reason a task carries.
func noSuitableNode(parts []string) string {
	return "no suitable node (" + strings.Join(parts, "; ") + ")"
}

// explain builds the reason from failure counts per filter: the filters
// that failed, most failures first, ties in pipeline order.
func explain(filters []Filter, fails []int) string {
	order := make([]int, 0, len(filters))
	for i, n := range fails {
		if n > 0 {
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return noSuitableNode([]string{"no nodes in the cluster"})
	}
	slices.SortStableFunc(order, func(a, b int) int { return fails[b] - fails[a] })
	parts := make([]string, len(order))
	for i, f := range order {
		parts[i] = filters[f].Explain(fails[f])
	}
	return noSuitableNode(parts)
}

// usage is what runs on a node as a capacity filter sees it: a
// snapshot's counts plus what a Planner placed there since.
type usage struct {
	service    int
	cpu        int64
	memory     int64
	ports      map[HostPort]int
	extraPorts []HostPort
}

// usageOf is the usage a NodeInfo records, for tasks of s.
func usageOf(s *Spec, n *NodeInfo) usage {
	return usage{
		service: n.ServiceTasks[s.ServiceID],
		cpu:     n.ReservedCPU,
		memory:  n.ReservedMemory,
		ports:   n.HostPorts,
	}
}

// portUsed reports whether a live or placed task binds p.
func (u *usage) portUsed(p HostPort) bool {
	return u.ports[p] > 0 || slices.Contains(u.extraPorts, p)
}

// capacityFilter is a filter whose verdict depends on what runs on the
// node. room says how many more tasks of s the node can take, capped at
// limit (limit >= 1); Check is room(..., 1) > 0.
type capacityFilter interface {
	Filter
	room(s *Spec, node *api.Node, u *usage, limit int) int
}

// ReadyFilter passes nodes that are READY and ACTIVE (neither paused nor
// drained).
type ReadyFilter struct{}

// Check implements Filter.
func (ReadyFilter) Check(_ *Spec, n *NodeInfo) bool {
	return n.Node.GetStatus().GetState() == api.NodeState_NODE_STATE_READY &&
		n.Node.GetSpec().GetAvailability() == api.NodeAvailability_NODE_AVAILABILITY_ACTIVE
}

// Explain implements Filter: "3 nodes not available".
func (ReadyFilter) Explain(n int) string { return nodes(n) + " not available" }

// PlatformFilter passes nodes whose platform is one of the spec's
// platforms, when the spec names any. An empty os or architecture in the
// spec matches any; names compare case-insensitively, and x86_64 is
// amd64, aarch64 is arm64. A node that reports no platform does not pass.
type PlatformFilter struct{}

// Check implements Filter.
func (PlatformFilter) Check(s *Spec, n *NodeInfo) bool {
	if len(s.Platforms) == 0 {
		return true
	}
	np := n.Node.GetDescription().GetPlatform()
	if np == nil {
		return false
	}
	for _, p := range s.Platforms {
		osOK := p.GetOs() == "" || strings.EqualFold(p.GetOs(), np.GetOs())
		archOK := p.GetArchitecture() == "" || normArch(p.GetArchitecture()) == normArch(np.GetArchitecture())
		if osOK && archOK {
			return true
		}
	}
	return false
}

// Explain implements Filter: "unsupported platform on 3 nodes".
func (PlatformFilter) Explain(n int) string { return "unsupported platform on " + nodes(n) }

// normArch folds architecture aliases.
func normArch(a string) string {
	a = strings.ToLower(a)
	switch a {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

// ConstraintFilter passes nodes that satisfy one placement constraint
// (see Constraint.Match).
type ConstraintFilter struct {
	Constraint Constraint
}

// Check implements Filter.
func (f ConstraintFilter) Check(_ *Spec, n *NodeInfo) bool { return f.Constraint.Match(n.Node) }

// Explain implements Filter: "constraint node.labels.zone==eu not met on 2
// nodes".
func (f ConstraintFilter) Explain(n int) string {
	return "constraint " + f.Constraint.String() + " not met on " + nodes(n)
}

// CPUFilter passes nodes whose CPU (NodeDescription.resources) minus the
// reservations of their live tasks holds the spec's CPU reservation. A
// node that declares no CPU has none to give.
type CPUFilter struct{}

// Check implements Filter.
func (f CPUFilter) Check(s *Spec, n *NodeInfo) bool {
	u := usageOf(s, n)
	return f.room(s, n.Node, &u, 1) > 0
}

// Explain implements Filter: "insufficient CPU on 3 nodes".
func (CPUFilter) Explain(n int) string { return "insufficient CPU on " + nodes(n) }

func (CPUFilter) room(s *Spec, node *api.Node, u *usage, limit int) int {
	return fit(node.GetDescription().GetResources().GetNanoCpus()-u.cpu, s.CPU, limit)
}

// MemoryFilter passes nodes whose memory minus the reservations of their
// live tasks holds the spec's memory reservation. A node that declares no
// memory has none to give.
type MemoryFilter struct{}

// Check implements Filter.
func (f MemoryFilter) Check(s *Spec, n *NodeInfo) bool {
	u := usageOf(s, n)
	return f.room(s, n.Node, &u, 1) > 0
}

// Explain implements Filter: "insufficient memory on 3 nodes".
func (MemoryFilter) Explain(n int) string { return "insufficient memory on " + nodes(n) }

func (MemoryFilter) room(s *Spec, node *api.Node, u *usage, limit int) int {
	return fit(node.GetDescription().GetResources().GetMemoryBytes()-u.memory, s.Memory, limit)
}

// fit is how many reservations of want fit in free, at most limit.
func fit(free, want int64, limit int) int {
	if want <= 0 {
		return limit
	}
	if free < want {
		return 0
	}
	if n := free / want; n < int64(limit) {
		return int(n)
	}
	return limit
}

// HostPortFilter passes nodes where none of the spec's host-mode ports is
// bound by a live task, nor by a task placed in the same round; so a node
// takes at most one task of a spec that binds host ports.
type HostPortFilter struct{}

// Check implements Filter.
func (f HostPortFilter) Check(s *Spec, n *NodeInfo) bool {
	u := usageOf(s, n)
	return f.room(s, n.Node, &u, 1) > 0
}

// Explain implements Filter: "host-mode port already in use on 3 nodes".
func (HostPortFilter) Explain(n int) string { return "host-mode port already in use on " + nodes(n) }

func (HostPortFilter) room(s *Spec, _ *api.Node, u *usage, limit int) int {
	if len(s.HostPorts) == 0 {
		return limit
	}
	for _, p := range s.HostPorts {
		if u.portUsed(p) {
			return 0
		}
	}
	return 1
}

// MaxReplicasFilter passes nodes that run fewer than Max live tasks of
// the spec's service, counting those placed in the same round.
type MaxReplicasFilter struct {
	Max uint64
}

// Check implements Filter.
func (f MaxReplicasFilter) Check(s *Spec, n *NodeInfo) bool {
	u := usageOf(s, n)
	return f.room(s, n.Node, &u, 1) > 0
}

// Explain implements Filter: "max replicas per node (2) reached on 3
// nodes".
func (f MaxReplicasFilter) Explain(n int) string {
	return fmt.Sprintf("max replicas per node (%d) reached on %s", f.Max, nodes(n))
}

func (f MaxReplicasFilter) room(_ *Spec, _ *api.Node, u *usage, limit int) int {
	if f.Max == 0 {
		return limit
	}
	if uint64(u.service) >= f.Max {
		return 0
	}
	if left := f.Max - uint64(u.service); left < uint64(limit) {
		return int(left)
	}
	return limit
}
