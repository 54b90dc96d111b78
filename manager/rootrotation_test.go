package manager

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// A root rotation: heartbeats hand out both roots and the new signer;
// nodes renew from the new root, and certificates of either root work
// meanwhile; once every node reports both roots and a new certificate,
// the new root replaces the old one, the join tokens pin it, and the old
// root's certificates are refused by nodes that trust only the new one.
func TestRootCARotation(t *testing.T) {
	tc := StartTestManagers(t, 1)
	leader := tc.WaitForLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, wcreds, err := tc.JoinNode(ctx, leader.Addr, api.NodeRole_NODE_ROLE_WORKER, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	oldAdmin := tc.Admin()
	oldDigest := tc.Root.Digest()
	cluster := func() *api.Cluster {
		var c *api.Cluster
		leader.Store().View(func(tx store.ReadTx) { c = tx.FindClusters(store.All())[0] })
		return c
	}
	cc := api.NewControlClient(client(t, leader))
	info, err := cc.GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: info.Cluster.Id, Version: info.Cluster.Meta.Version, RotateRootCa: true}); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if _, err := cc.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: info.Cluster.Id, Version: cluster().Meta.Version, RotateRootCa: true}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a second rotation during one: %v, want FailedPrecondition", err)
	}
	// follow does what a daemon does with a heartbeat answer: trust the
	// bundle, renew from the new signer, and report both.
	follow := func(id string, creds *ca.Credentials) *api.HeartbeatResponse {
		t.Helper()
		conn, err := Dialer(creds, ca.ExpectManager)(leader.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _, roots := creds.Material()
		req := &api.HeartbeatRequest{NodeId: id, TrustedRoots: ca.BundleDigest(roots), CertIssuer: creds.Issuer()}
		resp, err := api.NewDispatcherClient(conn).Heartbeat(ctx, req)
		if err != nil {
			t.Fatalf("heartbeat of %s: %v", id, err)
		}
		if err := creds.UpdateRoots(resp.RootCa); err != nil {
			t.Fatal(err)
		}
		if creds.Issuer() != resp.SigningCa {
			key, csr, _ := ca.NewKeyAndCSR(id)
			r, err := api.NewNodeCAClient(conn).RenewCertificate(ctx, &api.RenewCertificateRequest{Csr: csr})
			if err != nil {
				t.Fatalf("renew %s: %v", id, err)
			}
			if err := creds.Update(r.Certificate, key, r.RootCa); err != nil {
				t.Fatal(err)
			}
		}
		return resp
	}
	resp := follow(w, wcreds)
	if roots, _ := ca.ParseCertificates(resp.RootCa); len(roots) != 2 || resp.SigningCa == oldDigest {
		t.Fatalf("during the rotation heartbeats hand out %d roots, signer %s (old %s)", len(roots), resp.SigningCa, oldDigest)
	}
	newDigest := resp.SigningCa
	if wcreds.Issuer() != newDigest {
		t.Fatal("the worker did not get a certificate from the new root")
	}
	// The worker, now on the new root, and the old admin both still get
	// through to the leader, which trusts only the old root so far.
	if _, err := api.NewDispatcherClient(dialAs(t, wcreds, leader.Addr)).Heartbeat(ctx, &api.HeartbeatRequest{NodeId: w}); err != nil {
		t.Fatalf("new-root worker during the rotation: %v", err)
	}
	if _, err := api.NewControlClient(dialAs(t, oldAdmin, leader.Addr)).ListNodes(ctx, &api.ListNodesRequest{}); err != nil {
		t.Fatalf("old-root admin during the rotation: %v", err)
	}
	if err := leader.rootRotationOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if len(cluster().GetRootCa().GetNextCert()) == 0 {
		t.Fatal("the rotation finished while the manager node had not moved")
	}
	follow(leader.NodeID(), leader.Creds)
	follow(leader.NodeID(), leader.Creds) // report both
	follow(w, wcreds)
	if err := leader.rootRotationOnce(ctx); err != nil {
		t.Fatal(err)
	}
	c := cluster()
	root, err := ca.ParseCertificates(c.GetRootCa().GetCert())
	if err != nil || len(c.GetRootCa().GetNextCert()) != 0 || ca.DigestOf(root[0]) != newDigest {
		t.Fatalf("after every node moved: next %d bytes, root %v", len(c.GetRootCa().GetNextCert()), err)
	}
	toks, err := leader.JoinTokens()
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := ca.ParseToken(toks.Worker); tok.Digest != newDigest || toks.Worker == tc.Tokens.Worker {
		t.Fatalf("join tokens after the rotation pin %s, want %s", tok.Digest, newDigest)
	}
	// Nodes now trust the new root alone: the old admin is refused, a
	// join with the new token works.
	follow(leader.NodeID(), leader.Creds)
	if roots := leader.Creds.Roots().Certs(); len(roots) != 1 || ca.DigestOf(roots[0]) != newDigest {
		t.Fatalf("the manager trusts %d roots after the rotation", len(roots))
	}
	if _, err := api.NewControlClient(dialAs(t, oldAdmin, leader.Addr)).ListNodes(ctx, &api.ListNodesRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("old-root admin after the rotation: %v, want Unauthenticated", err)
	}
	if _, _, err := JoinCluster(ctx, leader.Addr, toks.Worker, "", &api.JoinRequest{Addr: "127.0.0.1:11"}); err != nil {
		t.Fatalf("join with the new token: %v", err)
	}
}
