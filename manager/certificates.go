package manager

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/authz"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// cluster returns the cluster object, nil before the cluster exists.
func (m *Manager) cluster() *api.Cluster {
	var c *api.Cluster
	m.store.View(func(tx store.ReadTx) {
		if cs := tx.FindClusters(store.All()); len(cs) > 0 {
			c = cs[0]
		}
	})
	return c
}

// StreamingNodes is how many nodes have an assignment stream open on
// this manager (only a leader serves them).
func (m *Manager) StreamingNodes() int { return m.dispatcher.StreamingNodes() }

// JoinTokens returns the cluster's current join tokens.
func (m *Manager) JoinTokens() (*api.JoinTokens, error) {
	c := m.cluster()
	if c == nil {
		return nil, errNoCluster
	}
	return controlapi.JoinTokens(c)
}

// Check implements authz.Membership from this manager's store: a node
// the cluster lists as removed is refused; a node whose desired role is
// worker holds the worker role whatever its certificate says (a demoted
// manager loses its rights when the demotion commits, not when its
// certificate is replaced).
func (m *Manager) Check(id ca.Identity) (ca.Role, error) {
	var removed bool
	var node *api.Node
	m.store.View(func(tx store.ReadTx) {
		if cs := tx.FindClusters(store.All()); len(cs) > 0 {
			removed = controlapi.IsRemoved(cs[0], id.ID)
		}
		node = tx.GetNode(id.ID)
	})
	if removed {
		return "", authz.ErrRemoved
	}
	if id.Role == ca.RoleManager && node != nil && node.GetSpec().GetDesiredRole() != api.NodeRole_NODE_ROLE_MANAGER {
		return ca.RoleWorker, nil
	}
	return id.Role, nil
}

// nodeCAServer renews nodes' certificates on any manager.
type nodeCAServer struct {
	api.UnimplementedNodeCAServer
	m *Manager
}

// NodeCA returns the certificate renewal service.
func (m *Manager) NodeCA() api.NodeCAServer { return &nodeCAServer{m: m} }

// RenewCertificate signs the caller's CSR with its node ID and the role
// the cluster wants it to have (its desired role).
func (s *nodeCAServer) RenewCertificate(ctx context.Context, req *api.RenewCertificateRequest) (*api.RenewCertificateResponse, error) {
	caller, ok := authz.CallerFrom(ctx)
	if !ok || caller.NodeID() == "" {
		return nil, status.Error(codes.PermissionDenied, "only nodes renew certificates here; admin clients get theirs with `shoal cluster ca issue-client`")
	}
	var node *api.Node
	var c *api.Cluster
	s.m.store.View(func(tx store.ReadTx) {
		node = tx.GetNode(caller.NodeID())
		if cs := tx.FindClusters(store.All()); len(cs) > 0 {
			c = cs[0]
		}
	})
	if c == nil {
		return nil, status.Error(codes.Unavailable, errNoCluster.Error())
	}
	if node == nil {
		// Not applied here yet, or removed: the leader knows.
		return nil, status.Errorf(codes.Unavailable, "node %s is not known to this manager yet; retry", caller.NodeID())
	}
	role := node.GetSpec().GetDesiredRole()
	chain, roots, err := controlapi.IssueNodeCertificate(c, req.GetCsr(), node.Id, controlapi.RoleOf(role), time.Now())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "renew certificate of node %s: %v", node.Id, err)
	}
	return &api.RenewCertificateResponse{Certificate: chain, RootCa: roots, Role: role}, nil
}

// cutRemovedNodes closes the connections of every node removed from the
// store, on every manager, for as long as ctx lasts: the deny list refuses
// their new calls, this ends the calls and streams they have open.
func (m *Manager) cutRemovedNodes(ctx context.Context) {
	if m.cfg.CutNode == nil {
		return
	}
	isNodeRemoval := func(e store.Event) bool {
		_, ok := e.Object.(*api.Node)
		return ok && e.Kind == store.EventRemove
	}
	for ctx.Err() == nil {
		var removed []string
		ch, cancel := m.store.ViewAndWatch(isNodeRemoval, func(tx store.ReadTx) {
			if cs := tx.FindClusters(store.All()); len(cs) > 0 {
				for _, r := range cs[0].GetRemovedNodes() {
					removed = append(removed, r.GetNodeId())
				}
			}
		})
		// Level-triggered: at start and after a lost watch, every listed
		// node is cut (a no-op for nodes with no connection).
		for _, id := range removed {
			m.cfg.CutNode(id)
		}
		for open := true; open; {
			select {
			case <-ctx.Done():
				cancel()
				return
			case e, ok := <-ch:
				if !ok {
					open = false
					break
				}
				id := e.Object.(*api.Node).GetId()
				if n := m.cfg.CutNode(id); n > 0 {
					m.log.Info("closed the connections of a removed node", "node", id, "connections", n)
				}
			}
		}
		cancel()
	}
}
