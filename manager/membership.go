package manager

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// ensureCluster writes the Cluster object and this node's Node object if
// they do not exist yet (leader only), and returns the cluster.
func (m *Manager) ensureCluster(ctx context.Context) (*api.Cluster, error) {
	var cluster *api.Cluster
	err := m.retryConflicts(ctx, func(tx store.Tx) error {
		cs := tx.FindClusters(store.All())
		if len(cs) > 0 {
			cluster = cs[0]
		} else {
			cluster = &api.Cluster{
				Id:         store.NewID(),
				Spec:       &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}},
				JoinTokens: &api.JoinTokens{Worker: ca.NewJoinToken(), Manager: ca.NewJoinToken()},
				// Fixed at creation: networks carved from the pool keep
				// their subnets.
				DefaultAddressPool: m.cfg.DefaultAddressPool,
				SubnetSize:         m.cfg.SubnetSize,
			}
			if err := tx.CreateCluster(cluster); err != nil {
				return err
			}
		}
		if tx.GetNode(m.cfg.NodeID) == nil {
			return tx.CreateNode(&api.Node{
				Id: m.cfg.NodeID,
				Spec: &api.NodeSpec{
					DesiredRole:  api.NodeRole_NODE_ROLE_MANAGER,
					Availability: m.cfg.Availability,
				},
				Description:   m.cfg.Description,
				Role:          api.NodeRole_NODE_ROLE_MANAGER,
				Status:        &api.NodeStatus{State: api.NodeState_NODE_STATE_READY, Addr: m.cfg.Addr},
				ManagerStatus: &api.ManagerStatus{Addr: m.cfg.Addr, Leader: true, Reachability: api.Reachability_REACHABILITY_REACHABLE},
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create cluster object: %w", err)
	}
	return cluster, nil
}

// membershipServer admits nodes that present a join token.
type membershipServer struct {
	api.UnimplementedMembershipServer
	m *Manager
}

// Join admits a node (on the leader; a follower forwards the call).
func (s *membershipServer) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	m := s.m
	if !m.raft.IsLeader() {
		c, err := m.leaderConn()
		if err != nil {
			return nil, edgeError(err)
		}
		return api.NewMembershipClient(c).Join(ctx, req)
	}
	if req.NodeId == "" || req.Addr == "" {
		return nil, status.Error(codes.InvalidArgument, "join: node_id and addr are required")
	}
	if err := ca.CheckTokenFormat(req.Token); err != nil {
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	var cluster *api.Cluster
	m.store.View(func(tx store.ReadTx) {
		if cs := tx.FindClusters(store.All()); len(cs) > 0 {
			cluster = cs[0]
		}
	})
	if cluster == nil || cluster.JoinTokens == nil {
		return nil, status.Error(codes.Unavailable, "join: the cluster is not initialised yet; retry")
	}
	var role api.NodeRole
	switch {
	case ca.TokenMatches(req.Token, cluster.JoinTokens.Manager):
		role = api.NodeRole_NODE_ROLE_MANAGER
	case ca.TokenMatches(req.Token, cluster.JoinTokens.Worker):
		role = api.NodeRole_NODE_ROLE_WORKER
	default:
		return nil, status.Error(codes.PermissionDenied, "join: the token is not valid for this cluster (it may have been rotated): get a current one with `shoal cluster join-token worker|manager` on a manager")
	}
	if role == api.NodeRole_NODE_ROLE_MANAGER {
		if err := m.addManager(ctx, req.NodeId, req.Addr); err != nil {
			if errors.Is(err, errCatchUp) {
				return nil, status.Error(codes.FailedPrecondition, err.Error())
			}
			return nil, edgeError(err)
		}
	}
	var ms *api.ManagerStatus
	if role == api.NodeRole_NODE_ROLE_MANAGER {
		ms = &api.ManagerStatus{Addr: req.Addr, Reachability: api.Reachability_REACHABILITY_REACHABLE}
	}
	err := m.retryConflicts(ctx, func(tx store.Tx) error {
		cur := tx.GetNode(req.NodeId)
		if cur == nil {
			return tx.CreateNode(&api.Node{
				Id:            req.NodeId,
				Spec:          &api.NodeSpec{DesiredRole: role, Availability: req.Availability},
				Description:   req.Description,
				Role:          role,
				Status:        &api.NodeStatus{State: api.NodeState_NODE_STATE_READY, Addr: req.Addr},
				ManagerStatus: ms,
			})
		}
		n := proto.Clone(cur).(*api.Node)
		n.Description = req.Description
		n.Status = &api.NodeStatus{State: api.NodeState_NODE_STATE_READY, Addr: req.Addr}
		if ms != nil {
			n.Role = role
			n.ManagerStatus = ms
		}
		return tx.UpdateNode(n)
	})
	if err != nil {
		return nil, edgeError(err)
	}
	m.log.Info("node joined", "node", req.NodeId, "addr", req.Addr, "role", role.String())
	resp := &api.JoinResponse{NodeId: req.NodeId, ClusterId: cluster.Id, Role: role}
	for _, mem := range m.raft.Members() {
		resp.Managers = append(resp.Managers, &api.Peer{NodeId: mem.NodeId, Addr: mem.Addr})
	}
	return resp, nil
}

// Leave takes a node out of the cluster (on the leader; a follower
// forwards): a manager leaves the Raft group first, refused when that
// would cost the quorum; then the node object is deleted, so the node's
// next heartbeat learns it was removed. A leader asked to remove itself
// hands leadership over and answers Unavailable: retry, and the new
// leader completes it.
func (s *membershipServer) Leave(ctx context.Context, req *api.LeaveRequest) (*api.LeaveResponse, error) {
	m := s.m
	if !m.raft.IsLeader() {
		c, err := m.leaderConn()
		if err != nil {
			return nil, edgeError(err)
		}
		return api.NewMembershipClient(c).Leave(ctx, req)
	}
	var node *api.Node
	var check error
	members := m.raft.Members()
	m.store.View(func(tx store.ReadTx) {
		node = tx.GetNode(req.NodeId)
		if node != nil {
			check = controlapi.CheckManagerRemoval(tx, node, req.NodeId, "remove", members)
		}
	})
	if node == nil {
		return nil, status.Errorf(codes.NotFound, "node %s is not in the cluster", req.NodeId)
	}
	if m.raft.IsMember(req.NodeId) {
		if check != nil {
			return nil, controlapi.ToStatus(check)
		}
		if req.NodeId == m.cfg.NodeID {
			if err := m.raft.TransferLeadership(); err != nil {
				return nil, edgeError(err)
			}
			return nil, status.Error(codes.Unavailable, "leave: this manager handed leadership over; retry to complete the leave")
		}
		if err := m.raft.RemoveServer(ctx, req.NodeId); err != nil {
			return nil, edgeError(err)
		}
	}
	err := m.retryConflicts(ctx, func(tx store.Tx) error {
		if tx.GetNode(req.NodeId) == nil {
			return nil
		}
		return tx.DeleteNode(req.NodeId)
	})
	if err != nil {
		return nil, edgeError(err)
	}
	m.log.Info("node left the cluster", "node", req.NodeId)
	return &api.LeaveResponse{}, nil
}
