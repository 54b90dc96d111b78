package controlapi

import (
	"context"
	"sort"
	"time"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// GetNode returns the node that node_id designates: an exact ID, else an
// exact name (spec name, else hostname), else a unique ID prefix.
// NotFound when nothing matches, InvalidArgument when several do.
func (s *Server) GetNode(ctx context.Context, req *api.GetNodeRequest) (*api.GetNodeResponse, error) {
	var n *api.Node
	var err error
	s.store.View(func(tx store.ReadTx) {
		n, err = nodeFinder(tx).resolve(req.GetNodeId())
	})
	if err != nil {
		return nil, ToStatus(err)
	}
	return &api.GetNodeResponse{Node: clone(n)}, nil
}

// ListNodes returns the nodes, sorted by ID, whose observed role is one of
// roles (all when empty) and whose spec labels match every labels filter
// (KEY: the label is set; KEY=VALUE: it has that value).
func (s *Server) ListNodes(ctx context.Context, req *api.ListNodesRequest) (*api.ListNodesResponse, error) {
	filters, err := parseLabelFilters(req.GetLabels())
	if err != nil {
		return nil, ToStatus(err)
	}
	for i, r := range req.GetRoles() {
		if _, ok := api.NodeRole_name[int32(r)]; !ok {
			return nil, invalidf("roles[%d]: unknown role %d: use NODE_ROLE_WORKER or NODE_ROLE_MANAGER", i, r)
		}
	}
	var nodes []*api.Node
	s.store.View(func(tx store.ReadTx) {
		if len(req.GetRoles()) == 0 {
			nodes = tx.FindNodes(store.All())
			return
		}
		seen := map[api.NodeRole]bool{}
		for _, r := range req.GetRoles() {
			if !seen[r] {
				seen[r] = true
				nodes = append(nodes, tx.FindNodes(store.ByRole(r))...)
			}
		}
	})
	out := make([]*api.Node, 0, len(nodes))
	for _, n := range nodes {
		if matchLabels(n.GetSpec().GetAnnotations().GetLabels(), filters) {
			out = append(out, clone(n))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return &api.ListNodesResponse{Nodes: out}, nil
}

// UpdateNode replaces a node's spec with the one given, as given: the
// node must exist, version must be its current Meta.Version and the spec
// must be valid (see ValidateNodeSpec). Changing desired_role asks for a
// promotion or demotion, which another component carries out. A demotion
// (desired_role from manager to worker, of a node that is a manager or a
// Raft member) is refused with FailedPrecondition when the node is the
// last manager, or when the managers left, counting as reachable those
// RaftInfo does not report UNREACHABLE, would be fewer than a quorum of
// what remains; managers already being demoted count as gone.
func (s *Server) UpdateNode(ctx context.Context, req *api.UpdateNodeRequest) (*api.UpdateNodeResponse, error) {
	if err := ValidateNodeSpec(req.GetSpec()); err != nil {
		return nil, ToStatus(err)
	}
	members := s.members()
	var id string
	err := s.store.Update(ctx, func(tx store.Tx) error {
		cur, err := nodeFinder(tx).resolve(req.GetNodeId())
		if err != nil {
			return err
		}
		id = cur.GetId()
		if err := checkVersion("node", id, cur.GetMeta().GetVersion(), req.GetVersion()); err != nil {
			return err
		}
		if desiredRole(cur) == api.NodeRole_NODE_ROLE_MANAGER &&
			req.GetSpec().GetDesiredRole() == api.NodeRole_NODE_ROLE_WORKER {
			if err := CheckManagerRemoval(tx, cur, req.GetNodeId(), "demote", members); err != nil {
				return err
			}
		}
		n := clone(cur)
		n.Spec = clone(req.GetSpec())
		return tx.UpdateNode(n)
	})
	if err != nil {
		return nil, writeErr("update node "+req.GetNodeId(), err)
	}
	var n *api.Node
	s.store.View(func(tx store.ReadTx) { n = tx.GetNode(id) })
	if n == nil {
		return nil, notFoundf("node %s not found (it was removed after the update)", req.GetNodeId())
	}
	return &api.UpdateNodeResponse{Node: clone(n)}, nil
}

// CheckManagerRemoval refuses to take node out of the managers (demotion,
// or the node leaving the cluster; verb names which in messages) when it
// is the last manager or when the managers that stay would have no
// reachable quorum. members is the Raft configuration; empty means the
// store's manager nodes, all taken as reachable. A node that is not a
// manager yet passes.
func CheckManagerRemoval(tx store.ReadTx, node *api.Node, ref, verb string, members []*api.RaftMember) error {
	type manager struct {
		id        string
		reachable bool
	}
	var managers []manager
	if len(members) > 0 {
		for _, m := range members {
			if m.GetNonvoter() {
				continue // catching up: not part of the quorum yet
			}
			managers = append(managers, manager{
				id:        m.GetNodeId(),
				reachable: m.GetReachability() != api.Reachability_REACHABILITY_UNREACHABLE,
			})
		}
	} else {
		for _, n := range tx.FindNodes(store.ByRole(api.NodeRole_NODE_ROLE_MANAGER)) {
			managers = append(managers, manager{id: n.GetId(), reachable: true})
		}
	}
	isManager := node.GetRole() == api.NodeRole_NODE_ROLE_MANAGER
	for _, m := range managers {
		if m.id == node.GetId() {
			isManager = true
		}
	}
	if !isManager {
		// A promotion not carried out yet: cancelling it is always fine.
		return nil
	}
	// Managers staying: not this node, and not being demoted already.
	var staying, reachable int
	for _, m := range managers {
		if m.id == node.GetId() {
			continue
		}
		if other := tx.GetNode(m.id); other != nil && desiredRole(other) == api.NodeRole_NODE_ROLE_WORKER {
			continue
		}
		staying++
		if m.reachable {
			reachable++
		}
	}
	if staying == 0 {
		return preconditionf("node %s is the last manager of the cluster: promote another node first (`shoal node promote NODE`), then %s this one", ref, verb)
	}
	if quorum := staying/2 + 1; reachable < quorum {
		return preconditionf("cannot %s node %s: %d manager(s) would remain and only %d of them are reachable, fewer than the quorum of %d, so the cluster would stop accepting changes; bring the unreachable managers back (or remove them) first, or promote another node",
			verb, ref, staying, reachable, quorum)
	}
	return nil
}

// RemoveNode deletes a node from the cluster and lists it as removed, so
// its certificate is refused from the moment the write commits. It refuses (with
// FailedPrecondition) a node whose observed or desired role is manager,
// and a node whose status is not DOWN unless force is set. In the same
// transaction it sets desired state SHUTDOWN on the node's tasks whose
// desired state is below it, so the orchestrator replaces them.
func (s *Server) RemoveNode(ctx context.Context, req *api.RemoveNodeRequest) (*api.RemoveNodeResponse, error) {
	ref := req.GetNodeId()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		n, err := nodeFinder(tx).resolve(ref)
		if err != nil {
			return err
		}
		if n.GetRole() == api.NodeRole_NODE_ROLE_MANAGER ||
			n.GetSpec().GetDesiredRole() == api.NodeRole_NODE_ROLE_MANAGER {
			return preconditionf("node %s is a manager: demote it first with `shoal node demote %s`", ref, ref)
		}
		if n.GetStatus().GetState() != api.NodeState_NODE_STATE_DOWN && !req.GetForce() {
			return preconditionf("node %s is not down; stop it first or use --force", ref)
		}
		if err := tx.DeleteNode(n.GetId()); err != nil {
			return err
		}
		if err := DenyNodeTx(tx, n.GetId(), time.Now()); err != nil {
			return err
		}
		for _, t := range tx.FindTasks(store.ByNodeID(n.GetId())) {
			if t.GetDesiredState() >= api.TaskState_TASK_STATE_SHUTDOWN {
				continue
			}
			t = clone(t)
			t.DesiredState = api.TaskState_TASK_STATE_SHUTDOWN
			if err := tx.UpdateTask(t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, writeErr("remove node "+ref, err)
	}
	return &api.RemoveNodeResponse{}, nil
}

// desiredRole is the role a node is meant to have: its spec's
// desired_role, or its observed role when it has no spec yet.
func desiredRole(n *api.Node) api.NodeRole {
	if n.GetSpec() == nil {
		return n.GetRole()
	}
	return n.GetSpec().GetDesiredRole()
}

// ValidateNodeSpec checks a node spec and returns nil or a *FieldError:
// the spec is present, availability and desired_role are known values,
// and no label key is empty.
func ValidateNodeSpec(spec *api.NodeSpec) error {
	if spec == nil {
		return fieldErr("spec", "required: send the node's whole spec (read it with GetNode and change it)")
	}
	if err := knownEnum("availability", spec.GetAvailability()); err != nil {
		return err
	}
	if err := knownEnum("desired_role", spec.GetDesiredRole()); err != nil {
		return err
	}
	return validateLabels("annotations.labels", spec.GetAnnotations().GetLabels())
}
