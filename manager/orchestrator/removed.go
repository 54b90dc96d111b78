package orchestrator

import (
	"cmp"
	"slices"

	"github.com/shoalhq/shoal/proto/api"
)

// removedService settles the tasks of a service that is no longer in the
// store (the control API raises them to REMOVE when it removes the
// service; this makes sure). A task is deleted once it cannot be running:
// its status is terminal, its node is DOWN or gone, or it was never
// placed (no node, state below ASSIGNED). Every other task has its
// desired state raised to REMOVE, so that its agent stops it.
func (w *world) removedService() {
	for _, v := range w.tasks {
		if w.dead(v) || (v.t.GetNodeId() == "" && v.state < stateAssigned) {
			w.remove(v, w.newGroup(), ReasonServiceRemoved)
			continue
		}
		w.raise(v, stateRemove, w.newGroup(), ReasonServiceRemoved)
	}
}

// sortedNodes returns the nodes sorted by ID.
func sortedNodes(nodes []*api.Node) []*api.Node {
	out := slices.Clone(nodes)
	slices.SortFunc(out, func(a, b *api.Node) int { return cmp.Compare(a.GetId(), b.GetId()) })
	return out
}
