package manager

import (
	"bytes"
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/manager/raft"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// DefaultGossipKeyInterval is how often the leader rotates the gossip key.
const DefaultGossipKeyInterval = 12 * time.Hour

// gossipKeyCheck is how often the leader looks at a rotation.
const gossipKeyCheck = time.Second

// rotateKeys runs on the leader: the gossip key's rotation
// (gossipKeysOnce) and the root CA's (rootRotationOnce), each moved on
// when every node that is up reports, in its heartbeats, that it has the
// current step. Level-triggered: each pass looks at the cluster object
// and the nodes' last reports only.
func (m *Manager) rotateKeys(ctx context.Context) {
	t := time.NewTicker(gossipKeyCheck)
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

// gossipKeysOnce starts a rotation of the gossip key every
// GossipKeyInterval, and moves a rotation on one step (install, use,
// steady) once every node that is up reports the keys of the current
// step. Nodes that are down get the current keys with their first
// heartbeat back.
func (m *Manager) gossipKeysOnce(ctx context.Context, now time.Time) error {
	c := m.cluster()
	if c == nil {
		return nil
	}
	interval := m.cfg.GossipKeyInterval
	if interval <= 0 {
		interval = DefaultGossipKeyInterval
	}
	next := proto.Clone(c).(*api.Cluster)
	switch {
	case c.GetGossipKeyStep() == api.GossipKeyStep_GOSSIP_KEY_STEP_STEADY:
		if now.Sub(time.Unix(0, c.GetGossipKeyChanged())) < interval {
			return nil
		}
		if err := controlapi.StartGossipKeyRotation(next); err != nil {
			return err
		}
	case m.everyNodeHas(api.GossipKeyringDigest(c.GetGossipKeys())):
		if !controlapi.NextGossipKeyStep(next, now) {
			return nil
		}
	default:
		return nil
	}
	err := m.store.Update(ctx, func(tx store.Tx) error {
		if cur := tx.GetCluster(c.Id); cur == nil || cur.GetMeta().GetVersion() != c.GetMeta().GetVersion() {
			return nil // changed meanwhile: the next pass looks again
		}
		return tx.UpdateCluster(next)
	})
	if err == nil {
		m.log.Info("gossip key rotation", "step", next.GetGossipKeyStep().String(), "keys", len(next.GetGossipKeys()))
	}
	return err
}

// everyNodeHas reports whether every node that is not down last reported
// the gossip keyring digest.
func (m *Manager) everyNodeHas(digest []byte) bool {
	var nodes []*api.Node
	m.store.View(func(tx store.ReadTx) { nodes = tx.FindNodes(store.All()) })
	for _, n := range nodes {
		if n.GetStatus().GetState() == api.NodeState_NODE_STATE_DOWN {
			continue
		}
		r, ok := m.dispatcher.Reported(n.Id)
		if !ok || !bytes.Equal(r.GossipKeyring, digest) {
			return false
		}
	}
	return true
}
