package manager

import (
	"bytes"
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// rootRotationOnce finishes a root CA rotation once every node that is
// up reports, in its heartbeats, that it trusts both roots and holds a
// certificate from the new one: the new root then replaces the old, and
// the heartbeats tell nodes to trust it alone. Nodes that are down trust
// the old root only and must be joined again (their certificates from
// the old root are refused after the switch).
func (m *Manager) rootRotationOnce(ctx context.Context) error {
	c := m.cluster()
	if c == nil || len(c.GetRootCa().GetNextCert()) == 0 {
		return nil
	}
	bundle := ca.BundleDigest(controlapi.TrustBundle(c))
	signing := controlapi.SigningDigest(c)
	var nodes []*api.Node
	m.store.View(func(tx store.ReadTx) { nodes = tx.FindNodes(store.All()) })
	for _, n := range nodes {
		if n.GetStatus().GetState() == api.NodeState_NODE_STATE_DOWN {
			continue
		}
		r, ok := m.dispatcher.Reported(n.Id)
		if !ok || !bytes.Equal(r.TrustedRoots, bundle) || r.CertIssuer != signing {
			return nil
		}
	}
	next := proto.Clone(c).(*api.Cluster)
	if err := controlapi.FinishRootRotation(next); err != nil {
		return err
	}
	err := m.store.Update(ctx, func(tx store.Tx) error {
		if cur := tx.GetCluster(c.Id); cur == nil || cur.GetMeta().GetVersion() != c.GetMeta().GetVersion() {
			return nil // changed meanwhile: the next pass looks again
		}
		return tx.UpdateCluster(next)
	})
	if err == nil {
		m.log.Info("root CA rotated: every node has a certificate from the new root", "root", signing)
	}
	return err
}
