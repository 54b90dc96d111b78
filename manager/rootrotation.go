package manager

import (
	"bytes"
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/manager/dispatcher"
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
	moved := m.everyLiveNode(func(r dispatcher.Report) bool {
		return bytes.Equal(r.TrustedRoots, bundle) && r.CertIssuer == signing
	})
	if !moved {
		return nil
	}
	next := proto.Clone(c).(*api.Cluster)
	if err := controlapi.FinishRootRotation(next); err != nil {
		return err
	}
	written, err := m.replaceCluster(ctx, c, next)
	if written {
		m.log.Info("root CA rotated: every node has a certificate from the new root", "root", signing)
	}
	return err
}
