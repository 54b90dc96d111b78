package controlapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// The cluster's CA as the store keeps it (api.Cluster.root_ca): the
// helpers here are the one place that turns it into certificates, join
// tokens and the removed-node list, for this API and the manager's
// membership and renewal services alike.

// gossipKeySize is the size of a gossip key (AES-256).
const gossipKeySize = 32

// NewClusterCA returns the stored form of root: its certificate and key
// and fresh worker and manager token state.
func NewClusterCA(root *ca.RootCA) (*api.RootCA, error) {
	rc := &api.RootCA{Cert: root.CertPEM, Key: root.KeyPEM()}
	for _, role := range []ca.Role{ca.RoleWorker, ca.RoleManager} {
		if err := RotateJoinToken(rc, root, role); err != nil {
			return nil, err
		}
	}
	return rc, nil
}

// NewGossipKey returns a fresh gossip key.
func NewGossipKey() []byte {
	k := make([]byte, gossipKeySize)
	if _, err := rand.Read(k); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never fails on Linux
	}
	return k
}

// RotateJoinToken gives role's token a new nonce in rc (a clone the
// caller owns): the old token stops admitting nodes.
func RotateJoinToken(rc *api.RootCA, root *ca.RootCA, role ca.Role) error {
	return setJoinToken(rc, root, role, ca.NewNonce())
}

// setJoinToken gives role's token in rc the nonce, and the hash of the
// secret root derives from it.
func setJoinToken(rc *api.RootCA, root *ca.RootCA, role ca.Role, nonce []byte) error {
	tok, err := root.JoinToken(role, nonce)
	if err != nil {
		return err
	}
	if role == ca.RoleManager {
		rc.ManagerTokenNonce, rc.ManagerTokenHash = nonce, ca.HashSecret(tok.Secret)
	} else {
		rc.WorkerTokenNonce, rc.WorkerTokenHash = nonce, ca.HashSecret(tok.Secret)
	}
	return nil
}

// rootCache keeps the roots parsed last (the current one and, during a
// rotation, the next): parsing on every call would cost a key parse per
// join, renewal or heartbeat.
var rootCache struct {
	sync.Mutex
	roots map[string]*ca.RootCA // by certificate and key
}

// parseRoot parses a root and its key, through rootCache.
func parseRoot(cert, key []byte) (*ca.RootCA, error) {
	k := string(cert) + "\x00" + string(key)
	rootCache.Lock()
	defer rootCache.Unlock()
	if r, ok := rootCache.roots[k]; ok {
		return r, nil
	}
	r, err := ca.ParseRootCA(cert, key)
	if err != nil {
		return nil, err
	}
	if len(rootCache.roots) >= 4 {
		clear(rootCache.roots)
	}
	if rootCache.roots == nil {
		rootCache.roots = map[string]*ca.RootCA{}
	}
	rootCache.roots[k] = r
	return r, nil
}

// ClusterRoot returns the cluster's root CA with its key, or an error
// saying the cluster has none.
func ClusterRoot(c *api.Cluster) (*ca.RootCA, error) {
	rc := c.GetRootCa()
	if len(rc.GetCert()) == 0 || len(rc.GetKey()) == 0 {
		return nil, fmt.Errorf("cluster %s has no root CA", c.GetId())
	}
	root, err := parseRoot(rc.Cert, rc.Key)
	if err != nil {
		return nil, fmt.Errorf("cluster root CA: %w", err)
	}
	return root, nil
}

// JoinTokens computes the cluster's current join tokens.
func JoinTokens(c *api.Cluster) (*api.JoinTokens, error) {
	root, err := ClusterRoot(c)
	if err != nil {
		return nil, err
	}
	w, err := root.JoinToken(ca.RoleWorker, c.GetRootCa().GetWorkerTokenNonce())
	if err != nil {
		return nil, err
	}
	m, err := root.JoinToken(ca.RoleManager, c.GetRootCa().GetManagerTokenNonce())
	if err != nil {
		return nil, err
	}
	return &api.JoinTokens{Worker: w.String(), Manager: m.String()}, nil
}

// TokenRole returns the role a presented join token admits with, or false
// when it admits none (wrong CA digest, wrong or rotated secret).
func TokenRole(c *api.Cluster, tok ca.Token) (ca.Role, bool) {
	root, err := ClusterRoot(c)
	if err != nil || tok.Digest != root.Digest() {
		return "", false
	}
	rc := c.GetRootCa()
	switch {
	case ca.SecretMatches(tok.Secret, rc.GetManagerTokenHash()):
		return ca.RoleManager, true
	case ca.SecretMatches(tok.Secret, rc.GetWorkerTokenHash()):
		return ca.RoleWorker, true
	}
	return "", false
}

// CertLifetime is the lifetime of the certificates the cluster issues.
func CertLifetime(c *api.Cluster) time.Duration {
	if v := c.GetSpec().CertExpiry; v != nil {
		return time.Duration(*v)
	}
	return ca.DefaultCertLifetime
}

// IssueNodeCertificate signs a node's CSR as id/role, valid for the
// cluster's lifetime from now, and returns the chain (leaf, then the
// cross-signed new root during a rotation) and the roots to trust, PEM.
func IssueNodeCertificate(c *api.Cluster, csr []byte, id string, role ca.Role, now time.Time) (chain, roots []byte, err error) {
	signer, inter, err := ClusterSigner(c)
	if err != nil {
		return nil, nil, err
	}
	leaf, err := signer.Sign(csr, ca.Identity{ClusterID: c.GetId(), ID: id, Role: role}, CertLifetime(c), now)
	if err != nil {
		return nil, nil, err
	}
	return append(leaf, inter...), TrustBundle(c), nil
}

// ClusterSigner returns the root that issues certificates now (the new
// one during a rotation) and the intermediates to send with them (the
// cross-signed new root during a rotation, else none).
func ClusterSigner(c *api.Cluster) (*ca.RootCA, []byte, error) {
	rc := c.GetRootCa()
	if len(rc.GetNextCert()) == 0 {
		root, err := ClusterRoot(c)
		return root, nil, err
	}
	next, err := parseRoot(rc.GetNextCert(), rc.GetNextKey())
	if err != nil {
		return nil, nil, fmt.Errorf("the cluster's next root CA: %w", err)
	}
	return next, rc.GetCrossSigned(), nil
}

// TrustBundle is the roots every node must trust now (PEM): the root,
// and during a rotation the new root after it.
func TrustBundle(c *api.Cluster) []byte {
	rc := c.GetRootCa()
	return append(append([]byte(nil), rc.GetCert()...), rc.GetNextCert()...)
}

// SigningDigest is the digest of the root that issues certificates now.
func SigningDigest(c *api.Cluster) string {
	signer, _, err := ClusterSigner(c)
	if err != nil {
		return ""
	}
	return signer.Digest()
}

// ErrRootRotationInProgress means a root CA rotation was asked for while
// one is going.
var ErrRootRotationInProgress = errors.New("a root CA rotation is in progress: wait until every node has a certificate from the new root (`shoal cluster ca` shows it)")

// StartRootRotation begins replacing the root in c (a clone the caller
// owns) with next (which must hold its key): nodes are told to trust
// both roots and renew from next, whose certificate the current root
// cross-signs.
func StartRootRotation(c *api.Cluster, next *ca.RootCA) error {
	if len(c.GetRootCa().GetNextCert()) != 0 {
		return ErrRootRotationInProgress
	}
	root, err := ClusterRoot(c)
	if err != nil {
		return err
	}
	if !next.CanSign() {
		return ca.ErrNoSigner
	}
	if next.Digest() == root.Digest() {
		return errors.New("the new root CA is the current one: give another certificate and key")
	}
	cross, err := root.CrossSign(next)
	if err != nil {
		return err
	}
	rc := clone(c.GetRootCa())
	rc.NextCert, rc.NextKey, rc.CrossSigned = next.CertPEM, next.KeyPEM(), cross
	c.RootCa = rc
	return nil
}

// FinishRootRotation makes the new root the only one in c (a clone the
// caller owns). The join tokens keep their nonces; their secrets, derived
// from the new key, change, and so do their CA digests.
func FinishRootRotation(c *api.Cluster) error {
	rc := c.GetRootCa()
	if len(rc.GetNextCert()) == 0 {
		return nil
	}
	next, err := ca.ParseRootCA(rc.GetNextCert(), rc.GetNextKey())
	if err != nil {
		return err
	}
	out := &api.RootCA{Cert: next.CertPEM, Key: next.KeyPEM()}
	if err := setJoinToken(out, next, ca.RoleWorker, rc.WorkerTokenNonce); err != nil {
		return err
	}
	if err := setJoinToken(out, next, ca.RoleManager, rc.ManagerTokenNonce); err != nil {
		return err
	}
	c.RootCa = out
	return nil
}

// RoleOf maps a node role to a certificate's.
func RoleOf(r api.NodeRole) ca.Role {
	if r == api.NodeRole_NODE_ROLE_MANAGER {
		return ca.RoleManager
	}
	return ca.RoleWorker
}

// DenyNode records, in c (a clone the caller owns), that node id was
// removed at now: its certificates are refused until every one it may
// hold has expired. Entries already expired are dropped.
func DenyNode(c *api.Cluster, id string, now time.Time) {
	// A certificate issued just before the removal lives this long;
	// the CA backdates by a few minutes, which this covers too.
	expires := now.Add(CertLifetime(c) + time.Hour).UnixNano()
	kept := c.RemovedNodes[:0]
	for _, r := range c.RemovedNodes {
		if r.GetExpires() > now.UnixNano() && r.GetNodeId() != id {
			kept = append(kept, r)
		}
	}
	c.RemovedNodes = append(kept, &api.RemovedNode{NodeId: id, Expires: expires})
}

// IsRemoved reports whether c lists node id as removed.
func IsRemoved(c *api.Cluster, id string) bool {
	for _, r := range c.GetRemovedNodes() {
		if r.GetNodeId() == id {
			return true
		}
	}
	return false
}

// DenyNodeTx records the removal of node id in the cluster object within
// tx (every removal of a node goes through it, in the transaction that
// deletes the node).
func DenyNodeTx(tx store.Tx, id string, now time.Time) error {
	cs := tx.FindClusters(store.All())
	if len(cs) == 0 {
		return nil
	}
	c := clone(cs[0])
	DenyNode(c, id, now)
	return tx.UpdateCluster(c)
}

// maxClientName bounds an admin client's name.
const maxClientName = 64

// IssueClientCertificate signs an admin client's CSR: the certificate
// names the client and role admin, with the cluster's certificate
// lifetime.
func (s *Server) IssueClientCertificate(ctx context.Context, req *api.IssueClientCertificateRequest) (*api.IssueClientCertificateResponse, error) {
	if !nameRE.MatchString(req.GetName()) {
		return nil, invalidf("name %q: use 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit", req.GetName(), maxClientName-1)
	}
	var c *api.Cluster
	s.store.View(func(tx store.ReadTx) {
		if cs := tx.FindClusters(store.All()); len(cs) > 0 {
			c = cs[0]
		}
	})
	if c == nil {
		return nil, preconditionf("the cluster is not initialized yet")
	}
	signer, inter, err := ClusterSigner(c)
	if err != nil {
		return nil, err
	}
	leaf, err := signer.Sign(req.GetCsr(), ca.Identity{ClusterID: c.GetId(), ID: req.GetName(), Role: ca.RoleAdmin}, CertLifetime(c), time.Now())
	if err != nil {
		return nil, invalidf("%v", err)
	}
	return &api.IssueClientCertificateResponse{Certificate: append(leaf, inter...), RootCa: TrustBundle(c)}, nil
}

// redactCluster returns a clone of c without its secrets (the CA key,
// token state and gossip keys) and with the join tokens computed, when
// withTokens.
func redactCluster(c *api.Cluster, withTokens bool) (*api.Cluster, error) {
	if c == nil {
		return nil, nil
	}
	out := clone(c)
	if withTokens {
		toks, err := JoinTokens(c)
		if err != nil {
			return nil, err
		}
		out.JoinTokens = toks
	}
	if out.RootCa != nil {
		out.RootCa = &api.RootCA{Cert: out.RootCa.Cert, NextCert: out.RootCa.NextCert, CrossSigned: out.RootCa.CrossSigned}
	}
	out.GossipKeys = nil
	return out, nil
}

// ErrRotationInProgress means a gossip key rotation was asked for while
// one is still going.
var ErrRotationInProgress = errors.New("a gossip key rotation is in progress: wait until every node has the new key (`shoal cluster info` shows the step)")

// StartGossipKeyRotation begins a rotation in c (a clone the caller
// owns): a new key is installed beside the old one, which stays primary.
func StartGossipKeyRotation(c *api.Cluster) error {
	if c.GetGossipKeyStep() != api.GossipKeyStep_GOSSIP_KEY_STEP_STEADY || len(c.GossipKeys) == 0 {
		return ErrRotationInProgress
	}
	c.GossipKeys = [][]byte{c.GossipKeys[0], NewGossipKey()}
	c.GossipKeyStep = api.GossipKeyStep_GOSSIP_KEY_STEP_INSTALL
	return nil
}

// NextGossipKeyStep moves a rotation in c (a clone the caller owns) one
// step on, once every node has the keys of the current step: install
// [old, new] → use [new, old] → steady [new] (completed at now). It
// reports whether it changed anything.
func NextGossipKeyStep(c *api.Cluster, now time.Time) bool {
	keys := c.GetGossipKeys()
	switch c.GetGossipKeyStep() {
	case api.GossipKeyStep_GOSSIP_KEY_STEP_INSTALL:
		if len(keys) != 2 {
			return false
		}
		c.GossipKeys = [][]byte{keys[1], keys[0]}
		c.GossipKeyStep = api.GossipKeyStep_GOSSIP_KEY_STEP_USE
	case api.GossipKeyStep_GOSSIP_KEY_STEP_USE:
		if len(keys) != 2 {
			return false
		}
		c.GossipKeys = [][]byte{keys[0]}
		c.GossipKeyStep = api.GossipKeyStep_GOSSIP_KEY_STEP_STEADY
		c.GossipKeyChanged = now.UnixNano()
	default:
		return false
	}
	return true
}
