package manager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/authz"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// errNoCluster means the cluster object does not exist yet.
var errNoCluster = errors.New("the cluster is not initialised yet; retry")

// ensureCluster writes the Cluster object and this node's Node object if
// they do not exist yet (leader only), and returns the cluster. A new
// cluster gets the ID and root CA of Config (the ones this node's own
// certificate was issued under), fresh join tokens and a gossip key.
func (m *Manager) ensureCluster(ctx context.Context) (*api.Cluster, error) {
	var cluster *api.Cluster
	err := m.retryConflicts(ctx, func(tx store.Tx) error {
		cs := tx.FindClusters(store.All())
		if len(cs) > 0 {
			cluster = cs[0]
		} else {
			if m.cfg.ClusterID == "" || m.cfg.RootCA == nil || !m.cfg.RootCA.CanSign() {
				return errors.New("bootstrap: Config.ClusterID and Config.RootCA (with its key) are required to create a cluster")
			}
			rc, err := controlapi.NewClusterCA(m.cfg.RootCA)
			if err != nil {
				return err
			}
			cluster = &api.Cluster{
				Id:     m.cfg.ClusterID,
				Spec:   &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}, CertExpiry: m.cfg.CertExpiry},
				RootCa: rc,
				// Fixed at creation: networks carved from the pool keep
				// their subnets.
				DefaultAddressPool: m.cfg.DefaultAddressPool,
				SubnetSize:         m.cfg.SubnetSize,
				GossipKeys:         [][]byte{controlapi.NewGossipKey()},
				GossipKeyChanged:   time.Now().UnixNano(),
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

// Join admits a node (on the leader; a follower forwards the call): the
// token's CA digest and secret decide the role, the CA names the node
// with a fresh ID (never one the caller picks) and signs its CSR. A
// manager is not in the Raft group yet: with its certificate it calls
// JoinRaft.
func (s *membershipServer) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	m := s.m
	if !m.raft.IsLeader() {
		c, err := m.leaderConn()
		if err != nil {
			return nil, edgeError(err)
		}
		return api.NewMembershipClient(c).Join(ctx, req)
	}
	if req.Addr == "" {
		return nil, status.Error(codes.InvalidArgument, "join: addr is required")
	}
	tok, err := ca.ParseToken(req.Token)
	if err != nil {
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	cluster := m.cluster()
	if cluster == nil {
		return nil, status.Error(codes.Unavailable, "join: "+errNoCluster.Error())
	}
	certRole, ok := controlapi.TokenRole(cluster, tok)
	if !ok {
		return nil, status.Error(codes.PermissionDenied, "join: the token is not valid for this cluster (it may have been rotated): get a current one with `shoal cluster join-token worker|manager` on a manager")
	}
	if _, err := ca.ParseCSR(req.Csr); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "join: %v", err)
	}
	role := api.NodeRole_NODE_ROLE_WORKER
	if certRole == ca.RoleManager {
		role = api.NodeRole_NODE_ROLE_MANAGER
	}
	id := store.NewID()
	chain, roots, err := controlapi.IssueNodeCertificate(cluster, req.Csr, id, certRole, time.Now())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "join: %v", err)
	}
	err = m.retryConflicts(ctx, func(tx store.Tx) error {
		// The observed role stays worker until a manager is in the Raft
		// group (JoinRaft, then the role reconciler).
		return tx.CreateNode(&api.Node{
			Id:          id,
			Spec:        &api.NodeSpec{DesiredRole: role, Availability: req.Availability},
			Description: req.Description,
			Role:        api.NodeRole_NODE_ROLE_WORKER,
			Status:      &api.NodeStatus{State: api.NodeState_NODE_STATE_READY, Addr: req.Addr},
		})
	})
	if err != nil {
		return nil, edgeError(err)
	}
	m.log.Info("node joined", "node", id, "addr", req.Addr, "role", role.String())
	return &api.JoinResponse{NodeId: id, ClusterId: cluster.Id, Role: role, Managers: m.peerList(), Certificate: chain, RootCa: roots, GossipKeys: cluster.GetGossipKeys()}, nil
}

// JoinRaft makes the calling manager a Raft voter at its address once it
// has caught up (on the leader; a follower forwards). The caller is named
// by its certificate; its desired role must be manager (the authorizer
// has already lowered a demoted node's role).
func (s *membershipServer) JoinRaft(ctx context.Context, req *api.JoinRaftRequest) (*api.JoinRaftResponse, error) {
	m := s.m
	caller, ok := authz.CallerFrom(ctx)
	if !m.raft.IsLeader() {
		c, err := m.leaderConn()
		if err != nil {
			return nil, edgeError(err)
		}
		// Forwarded with this manager's certificate: name the caller.
		if !ok || caller.NodeID() == "" {
			return nil, status.Error(codes.PermissionDenied, "join raft: no calling node")
		}
		return api.NewMembershipClient(c).JoinRaft(metadata.AppendToOutgoingContext(ctx, forwardedForKey, caller.NodeID()), req)
	}
	id := forwardedFor(ctx, caller)
	if id == "" || req.Addr == "" {
		return nil, status.Error(codes.InvalidArgument, "join raft: a calling manager and its addr are required")
	}
	var node *api.Node
	m.store.View(func(tx store.ReadTx) { node = tx.GetNode(id) })
	if node == nil || node.GetSpec().GetDesiredRole() != api.NodeRole_NODE_ROLE_MANAGER {
		return nil, status.Errorf(codes.PermissionDenied, "join raft: node %s is not meant to be a manager", id)
	}
	if err := m.addManager(ctx, id, req.Addr); err != nil {
		if errors.Is(err, errCatchUp) {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		return nil, edgeError(err)
	}
	for _, mem := range m.raft.Members() {
		if mem.NodeId == id {
			m.syncManagerStatus(ctx, node, mem, true)
		}
	}
	return &api.JoinRaftResponse{Managers: m.peerList()}, nil
}

// forwardedForKey is the metadata key naming the node a manager forwards
// a JoinRaft for.
const forwardedForKey = "shoal-forwarded-for"

// forwardedFor is the node a call is made for: the caller itself, or,
// when a manager forwards, the node it names.
func forwardedFor(ctx context.Context, caller authz.Caller) string {
	if caller.Kind == api.CallerManager {
		if v := metadata.ValueFromIncomingContext(ctx, forwardedForKey); len(v) == 1 {
			return v[0]
		}
	}
	return caller.NodeID()
}

// peerList is the managers as a join answer lists them.
func (m *Manager) peerList() []*api.Peer {
	var out []*api.Peer
	for _, mem := range m.raft.Members() {
		out = append(out, &api.Peer{NodeId: mem.NodeId, Addr: mem.Addr})
	}
	return out
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
		if err := tx.DeleteNode(req.NodeId); err != nil {
			return err
		}
		return controlapi.DenyNodeTx(tx, req.NodeId, time.Now())
	})
	if err != nil {
		return nil, edgeError(err)
	}
	m.log.Info("node left the cluster", "node", req.NodeId)
	return &api.LeaveResponse{}, nil
}
