package scheduler

import (
	"fmt"
	"maps"
	"slices"

	"github.com/shoalhq/shoal/proto/api"
)

// nodeOpt changes a test node.
type nodeOpt func(*api.Node)

// newNode returns a READY, ACTIVE worker named host-ID on linux/amd64
// with no resources declared.
func newNode(id string, opts ...nodeOpt) *api.Node {
	n := &api.Node{
		Id:   id,
		Spec: &api.NodeSpec{Annotations: &api.Annotations{}},
		Description: &api.NodeDescription{
			Hostname: "host-" + id,
			Platform: &api.Platform{Os: "linux", Architecture: "amd64"},
		},
		Status: &api.NodeStatus{State: api.NodeState_NODE_STATE_READY},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func labels(kv ...string) nodeOpt {
	return func(n *api.Node) {
		if n.Spec.Annotations.Labels == nil {
			n.Spec.Annotations.Labels = map[string]string{}
		}
		for i := 0; i < len(kv); i += 2 {
			n.Spec.Annotations.Labels[kv[i]] = kv[i+1]
		}
	}
}

func engineLabels(kv ...string) nodeOpt {
	return func(n *api.Node) {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		n.Description.EngineLabels = m
	}
}

func state(s api.NodeState) nodeOpt { return func(n *api.Node) { n.Status.State = s } }

func availability(a api.NodeAvailability) nodeOpt {
	return func(n *api.Node) { n.Spec.Availability = a }
}

func manager() nodeOpt { return func(n *api.Node) { n.Role = api.NodeRole_NODE_ROLE_MANAGER } }

func platform(os, arch string) nodeOpt {
	return func(n *api.Node) { n.Description.Platform = &api.Platform{Os: os, Architecture: arch} }
}

func resources(cpu, mem int64) nodeOpt {
	return func(n *api.Node) { n.Description.Resources = &api.Resources{NanoCpus: cpu, MemoryBytes: mem} }
}

func hostname(h string) nodeOpt { return func(n *api.Node) { n.Description.Hostname = h } }

// info wraps a node in a NodeInfo with nothing running.
func info(n *api.Node) *NodeInfo { return &NodeInfo{Node: n} }

// liveTask returns a RUNNING task of service on node.
func liveTask(id, service, node string) *api.Task {
	return &api.Task{
		Id:           id,
		ServiceId:    service,
		NodeId:       node,
		Spec:         &api.TaskSpec{},
		Status:       &api.TaskStatus{State: api.TaskState_TASK_STATE_RUNNING},
		DesiredState: api.TaskState_TASK_STATE_RUNNING,
	}
}

// reserving sets a task's reservations.
func reserving(t *api.Task, cpu, mem int64) *api.Task {
	t.Spec.Resources = &api.ResourceRequirements{Reservations: &api.Resources{NanoCpus: cpu, MemoryBytes: mem}}
	return t
}

// hostPortEndpoint publishes the ports in host mode over TCP.
func hostPortEndpoint(ports ...uint32) *api.Endpoint {
	ep := &api.Endpoint{Spec: &api.EndpointSpec{}}
	for _, p := range ports {
		ep.Spec.Ports = append(ep.Spec.Ports, &api.PortConfig{
			TargetPort: 80, PublishedPort: p, PublishMode: api.PortConfig_PUBLISH_MODE_HOST,
		})
	}
	return ep
}

// pendingTasks returns n pending tasks of service, IDs prefix-0000...
func pendingTasks(prefix, service string, n int) []*api.Task {
	out := make([]*api.Task, n)
	for i := range out {
		out[i] = &api.Task{
			Id:           fmt.Sprintf("%s-%05d", prefix, i),
			ServiceId:    service,
			Status:       &api.TaskStatus{State: api.TaskState_TASK_STATE_PENDING},
			DesiredState: api.TaskState_TASK_STATE_RUNNING,
		}
	}
	return out
}

// group returns a group of n pending tasks of service with spec.
func group(service string, spec *api.TaskSpec, n int) *Group {
	return &Group{ServiceID: service, SpecVersion: 1, Spec: spec, Tasks: pendingTasks(service, service, n)}
}

// nodesN returns n nodes node-000.. with opts applied to each.
func nodesN(n int, opts ...nodeOpt) []*api.Node {
	out := make([]*api.Node, n)
	for i := range out {
		out[i] = newNode(fmt.Sprintf("node-%03d", i), opts...)
	}
	return out
}

// perNode counts a result's placements by node ID.
func perNode(r *Result) map[string]int {
	out := map[string]int{}
	for _, d := range r.Decisions {
		if d.NodeID != "" {
			out[d.NodeID]++
		}
	}
	return out
}

// reasons returns the distinct reasons of a result's unplaced tasks.
func reasons(r *Result) []string {
	set := map[string]bool{}
	for _, d := range r.Decisions {
		if d.NodeID == "" {
			set[d.Reason] = true
		}
	}
	return sortedKeys(set)
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
