package manager

// What the leader's key rotations (gossipkeys.go, rootrotation.go) share:
// the loop, the check that every live node has a step, and the write.

import (
	"context"
	"errors"
	"time"

	"github.com/shoalhq/shoal/manager/dispatcher"
	"github.com/shoalhq/shoal/manager/raft"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// rotationCheck is how often the leader looks at its key rotations.
const rotationCheck = time.Second

// rotateKeys runs on the leader: the gossip key's rotation
// (gossipKeysOnce) and the root CA's (rootRotationOnce), each moved on
// when every node that is up reports, in its heartbeats, that it has the
// current step. Level-triggered: each pass looks at the cluster object
// and the nodes' last reports only.
func (m *Manager) rotateKeys(ctx context.Context) {
	t := time.NewTicker(rotationCheck)
	defer t.Stop()
	for {
		if err := m.gossipKeysOnce(ctx, time.Now()); err != nil && !errors.Is(err, raft.ErrNotLeader) && ctx.Err() == nil {
			m.log.Warn("gossip key rotation", "err", err)
		}
		if err := m.rootRotationOnce(ctx); err != nil && !errors.Is(err, raft.ErrNotLeader) && ctx.Err() == nil {
			m.log.Warn("root CA rotation", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// everyLiveNode reports whether has holds for the last heartbeat of
// every node that is not down (a node with no heartbeat to this leader
// yet does not have anything).
func (m *Manager) everyLiveNode(has func(dispatcher.Report) bool) bool {
	var nodes []*api.Node
	m.store.View(func(tx store.ReadTx) { nodes = tx.FindNodes(store.All()) })
	for _, n := range nodes {
		if n.GetStatus().GetState() == api.NodeState_NODE_STATE_DOWN {
			continue
		}
		if r, ok := m.dispatcher.Reported(n.Id); !ok || !has(r) {
			return false
		}
	}
	return true
}

// replaceCluster writes next in place of cur, unless the cluster changed
// since cur was read (then nothing is written and the next pass looks
// again). written says whether next was written.
func (m *Manager) replaceCluster(ctx context.Context, cur, next *api.Cluster) (written bool, err error) {
	err = m.store.Update(ctx, func(tx store.Tx) error {
		if now := tx.GetCluster(cur.Id); now == nil || now.GetMeta().GetVersion() != cur.GetMeta().GetVersion() {
			return nil
		}
		written = true
		return tx.UpdateCluster(next)
	})
	return written && err == nil, err
}
