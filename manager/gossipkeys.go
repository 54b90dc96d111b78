package manager

import (
	"bytes"
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/manager/dispatcher"
	"github.com/shoalhq/shoal/proto/api"
)

// DefaultGossipKeyInterval is how often the leader rotates the gossip key.
const DefaultGossipKeyInterval = 12 * time.Hour

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
	digest := api.GossipKeyringDigest(c.GetGossipKeys())
	switch {
	case c.GetGossipKeyStep() == api.GossipKeyStep_GOSSIP_KEY_STEP_STEADY:
		if now.Sub(time.Unix(0, c.GetGossipKeyChanged())) < interval {
			return nil
		}
		if err := controlapi.StartGossipKeyRotation(next); err != nil {
			return err
		}
	case m.everyLiveNode(func(r dispatcher.Report) bool { return bytes.Equal(r.GossipKeyring, digest) }):
		if !controlapi.NextGossipKeyStep(next, now) {
			return nil
		}
	default:
		return nil
	}
	written, err := m.replaceCluster(ctx, c, next)
	if written {
		m.log.Info("gossip key rotation", "step", next.GetGossipKeyStep().String(), "keys", len(next.GetGossipKeys()))
	}
	return err
}
