package scheduler

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/shoalhq/shoal/proto/api"
)

// HostPort is a port a task binds on its node's own address: a published
// port in host mode. Two live tasks on one node cannot share one.
type HostPort struct {
	Protocol api.PortConfig_Protocol
	Port     uint32
}

// String renders the port as 8080/tcp.
func (p HostPort) String() string {
	proto := strings.ToLower(strings.TrimPrefix(p.Protocol.String(), "PROTOCOL_"))
	return fmt.Sprintf("%d/%s", p.Port, proto)
}

// HostPorts returns the host-mode ports a task with endpoint ep binds on
// its node: the ports in PUBLISH_MODE_HOST with a published port (0 asks
// the node to pick one, which cannot conflict). It reads the allocated
// ep.Ports, or ep.Spec.Ports when nothing is allocated yet. The result is
// in the endpoint's order and may be nil.
func HostPorts(ep *api.Endpoint) []HostPort {
	ports := ep.GetPorts()
	if len(ports) == 0 {
		ports = ep.GetSpec().GetPorts()
	}
	var out []HostPort
	for _, p := range ports {
		if p.GetPublishMode() == api.PortConfig_PUBLISH_MODE_HOST && p.GetPublishedPort() != 0 {
			out = append(out, HostPort{Protocol: p.GetProtocol(), Port: p.GetPublishedPort()})
		}
	}
	return out
}

// IsLive reports whether a task holds a place on its node: it has a node,
// its desired state is at most RUNNING, and its observed state is between
// ASSIGNED and RUNNING. Pending tasks with a preset node (global services)
// are not live: they are what the scheduler places.
func IsLive(t *api.Task) bool {
	st := t.GetStatus().GetState()
	return t.GetNodeId() != "" &&
		t.GetDesiredState() <= api.TaskState_TASK_STATE_RUNNING &&
		st >= api.TaskState_TASK_STATE_ASSIGNED && st <= api.TaskState_TASK_STATE_RUNNING
}

// NodeInfo is one node and what already runs there: the counts of its
// live tasks (see IsLive), in total and per service, the resources they
// reserve and the host ports they bind. The scheduler only reads it;
// AddTask and RemoveTask let a caller keep one up to date.
type NodeInfo struct {
	Node *api.Node
	// Tasks is the number of live tasks on the node.
	Tasks int
	// ServiceTasks counts live tasks by service ID; nil when empty.
	ServiceTasks map[string]int
	// ReservedCPU is the sum of the live tasks' CPU reservations, in
	// billionths of a core.
	ReservedCPU int64
	// ReservedMemory is the sum of the live tasks' memory reservations, in
	// bytes.
	ReservedMemory int64
	// HostPorts counts the live tasks binding each host-mode port; nil
	// when none does.
	HostPorts map[HostPort]int
}

// AddTask counts t as live on the node. The caller decides liveness
// (IsLive) and that t belongs to this node.
func (n *NodeInfo) AddTask(t *api.Task) {
	n.Tasks++
	if n.ServiceTasks == nil {
		n.ServiceTasks = make(map[string]int, 1)
	}
	n.ServiceTasks[t.GetServiceId()]++
	r := t.GetSpec().GetResources().GetReservations()
	n.ReservedCPU += r.GetNanoCpus()
	n.ReservedMemory += r.GetMemoryBytes()
	for _, p := range HostPorts(t.GetEndpoint()) {
		if n.HostPorts == nil {
			n.HostPorts = make(map[HostPort]int, 1)
		}
		n.HostPorts[p]++
	}
}

// RemoveTask undoes AddTask of the same task (same service, spec and
// endpoint). Counts that reach zero are dropped from the maps.
func (n *NodeInfo) RemoveTask(t *api.Task) {
	n.Tasks--
	if sid := t.GetServiceId(); n.ServiceTasks[sid] <= 1 {
		delete(n.ServiceTasks, sid)
	} else {
		n.ServiceTasks[sid]--
	}
	r := t.GetSpec().GetResources().GetReservations()
	n.ReservedCPU -= r.GetNanoCpus()
	n.ReservedMemory -= r.GetMemoryBytes()
	for _, p := range HostPorts(t.GetEndpoint()) {
		if n.HostPorts[p] <= 1 {
			delete(n.HostPorts, p)
		} else {
			n.HostPorts[p]--
		}
	}
}

// Snapshot is the state the scheduler places against: every node with
// what runs on it, ordered by node ID. It is read-only once made, and may
// be shared by Planners.
type Snapshot struct {
	nodes []NodeInfo
}

// NewSnapshot makes a snapshot of nodes. It takes ownership of the slice
// (sorting it by node ID) but only reads the NodeInfos' maps and nodes,
// which the caller must not change while the snapshot is in use. Entries
// without a Node are dropped. Node IDs must be unique.
func NewSnapshot(nodes []NodeInfo) *Snapshot {
	nodes = slices.DeleteFunc(nodes, func(n NodeInfo) bool { return n.Node == nil })
	byID := func(a, b NodeInfo) int { return cmp.Compare(a.Node.GetId(), b.Node.GetId()) }
	if !slices.IsSortedFunc(nodes, byID) {
		slices.SortStableFunc(nodes, byID)
	}
	return &Snapshot{nodes: nodes}
}

// BuildSnapshot makes a snapshot of nodes with the live tasks (IsLive)
// among tasks counted on their nodes. Tasks on nodes not in the list are
// ignored.
func BuildSnapshot(nodes []*api.Node, tasks []*api.Task) *Snapshot {
	infos := make([]NodeInfo, len(nodes))
	for i, n := range nodes {
		infos[i].Node = n
	}
	s := NewSnapshot(infos)
	for _, t := range tasks {
		if !IsLive(t) {
			continue
		}
		if i, ok := s.index(t.GetNodeId()); ok {
			s.nodes[i].AddTask(t)
		}
	}
	return s
}

// Len is the number of nodes.
func (s *Snapshot) Len() int { return len(s.nodes) }

// Node returns the i-th node in ID order, 0 <= i < Len(). It is read-only.
func (s *Snapshot) Node(i int) *NodeInfo { return &s.nodes[i] }

// Find returns the node with the ID, read-only, or false.
func (s *Snapshot) Find(id string) (*NodeInfo, bool) {
	i, ok := s.index(id)
	if !ok {
		return nil, false
	}
	return &s.nodes[i], true
}

// index finds a node's position by binary search.
func (s *Snapshot) index(id string) (int, bool) {
	i := sort.Search(len(s.nodes), func(i int) bool { return s.nodes[i].Node.GetId() >= id })
	return i, i < len(s.nodes) && s.nodes[i].Node.GetId() == id
}
