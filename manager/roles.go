package manager

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/dispatcher"
	"github.com/shoalhq/shoal/manager/raft"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// roleReconcileInterval is how often the leader compares the nodes'
// desired roles and manager status with the Raft configuration.
const roleReconcileInterval = time.Second

func isNodeRemoved(err error) bool { return errors.Is(err, dispatcher.ErrNodeRemoved) }

// reconcileRoles runs on the leader: it adds promoted nodes to the Raft
// group once they report their Raft server up, removes demoted ones, and
// keeps each node's observed role and ManagerStatus in step with the Raft
// configuration. Level-triggered: every pass looks at the whole state.
func (m *Manager) reconcileRoles(ctx context.Context) {
	t := time.NewTicker(roleReconcileInterval)
	defer t.Stop()
	for {
		m.reconcileRolesOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Manager) reconcileRolesOnce(ctx context.Context) {
	members := map[string]*api.RaftMember{}
	for _, mem := range m.raft.Members() {
		members[mem.NodeId] = mem
	}
	var nodes []*api.Node
	m.store.View(func(tx store.ReadTx) { nodes = tx.FindNodes(store.All()) })
	for _, n := range nodes {
		if ctx.Err() != nil {
			return
		}
		desired := api.NodeRole_NODE_ROLE_WORKER
		if n.Spec != nil {
			desired = n.Spec.DesiredRole
		}
		mem, inRaft := members[n.Id]
		switch {
		case desired == api.NodeRole_NODE_ROLE_MANAGER && (!inRaft || mem.Nonvoter):
			if r, ok := m.dispatcher.ReportedRole(n.Id); ok && r == api.NodeRole_NODE_ROLE_MANAGER && n.Status != nil && n.Status.Addr != "" {
				if err := m.addManager(ctx, n.Id, n.Status.Addr); err != nil {
					m.log.Warn("promote: add manager to raft", "node", n.Id, "err", err)
					continue
				}
				m.log.Info("promoted node joined raft", "node", n.Id)
				mem = &api.RaftMember{NodeId: n.Id, Addr: n.Status.Addr, Reachability: api.Reachability_REACHABILITY_REACHABLE}
				inRaft = true
			}
		case desired == api.NodeRole_NODE_ROLE_WORKER && inRaft:
			if n.Id == m.cfg.NodeID {
				// Hand over; the next leader removes this manager.
				if err := m.raft.TransferLeadership(); err != nil {
					m.log.Warn("demote: hand over leadership", "err", err)
				}
				return
			}
			if err := m.raft.RemoveServer(ctx, n.Id); err != nil {
				m.log.Warn("demote: remove manager from raft", "node", n.Id, "err", err)
				continue
			}
			m.log.Info("demoted node left raft", "node", n.Id)
			inRaft = false
		}
		m.syncManagerStatus(ctx, n, mem, inRaft)
	}
}

// syncManagerStatus writes a node's observed role and manager status when
// they differ from the Raft configuration.
func (m *Manager) syncManagerStatus(ctx context.Context, n *api.Node, mem *api.RaftMember, inRaft bool) {
	role := api.NodeRole_NODE_ROLE_WORKER
	var ms *api.ManagerStatus
	if inRaft && mem != nil {
		role = api.NodeRole_NODE_ROLE_MANAGER
		ms = &api.ManagerStatus{Addr: mem.Addr, Leader: mem.NodeId == m.cfg.NodeID, Reachability: mem.Reachability}
	}
	if n.Role == role && proto.Equal(n.ManagerStatus, ms) {
		return
	}
	err := m.retryConflicts(ctx, func(tx store.Tx) error {
		cur := tx.GetNode(n.Id)
		if cur == nil {
			return nil
		}
		c := proto.Clone(cur).(*api.Node)
		c.Role = role
		c.ManagerStatus = ms
		return tx.UpdateNode(c)
	})
	if err != nil && !errors.Is(err, raft.ErrNotLeader) {
		m.log.Warn("update manager status", "node", n.Id, "err", err)
	}
}
