package controlapi

import (
	"context"
	"sort"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// ListTasks returns the tasks, sorted by ID, that match every non-empty
// filter: service_ids and node_ids are exact IDs (resolve names with
// GetService or GetNode first), desired_states are task states. Empty
// filters select all tasks. The most selective index the filters allow
// is used (service, then node, then desired state) rather than a scan.
// Registry passwords in the task specs are blanked.
func (s *Server) ListTasks(ctx context.Context, req *api.ListTasksRequest) (*api.ListTasksResponse, error) {
	for i, st := range req.GetDesiredStates() {
		if _, ok := api.TaskState_name[int32(st)]; !ok {
			return nil, invalidf("desired_states[%d]: unknown task state %d", i, st)
		}
	}
	services := set(req.GetServiceIds())
	nodes := set(req.GetNodeIds())
	states := set(req.GetDesiredStates())

	var out []*api.Task
	s.store.View(func(tx store.ReadTx) {
		var candidates []*api.Task
		switch {
		case len(services) > 0:
			for id := range services {
				candidates = append(candidates, tx.FindTasks(store.ByServiceID(id))...)
			}
		case len(nodes) > 0:
			for id := range nodes {
				candidates = append(candidates, tx.FindTasks(store.ByNodeID(id))...)
			}
		case len(states) > 0:
			for st := range states {
				candidates = append(candidates, tx.FindTasks(store.ByDesiredState(st))...)
			}
		default:
			candidates = tx.FindTasks(store.All())
		}
		out = make([]*api.Task, 0, len(candidates))
		for _, t := range candidates {
			if (len(services) == 0 || services[t.GetServiceId()]) &&
				(len(nodes) == 0 || nodes[t.GetNodeId()]) &&
				(len(states) == 0 || states[t.GetDesiredState()]) {
				out = append(out, redactTask(t))
			}
		}
	})
	// Each index returns its tasks sorted; several index lookups need a
	// merge. A task is in at most one lookup per selector, so there are
	// no duplicates to drop.
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return &api.ListTasksResponse{Tasks: out}, nil
}

// set makes a membership set of a filter's values.
func set[T comparable](values []T) map[T]bool {
	m := make(map[T]bool, len(values))
	for _, v := range values {
		m[v] = true
	}
	return m
}
