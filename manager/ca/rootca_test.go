package ca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

// issue signs a fresh key as id under root, valid from now for life.
func issue(t *testing.T, root *RootCA, id Identity, now time.Time, life time.Duration) *Credentials {
	t.Helper()
	key, csr, err := NewKeyAndCSR("ignored-by-the-ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := root.Sign(csr, id, life, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCredentials(append(leaf, root.CertPEM...), key, root.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSignAndVerify(t *testing.T) {
	now := time.Now()
	root, err := NewRootCA(now)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewRootCA(now)
	id := Identity{ClusterID: "c1", ID: "node1", Role: RoleWorker}
	c := issue(t, root, id, now, time.Hour)
	if got := c.Identity(); got != id {
		t.Fatalf("identity %+v, want %+v (the CSR's subject must be ignored)", got, id)
	}
	roots := NewRoots("c1", root.Cert)
	chain := []*x509.Certificate{c.Leaf()}
	if got, err := roots.Verify(chain, now, x509.ExtKeyUsageClientAuth); err != nil || got != id {
		t.Fatalf("verify: %+v %v", got, err)
	}
	cases := []struct {
		name  string
		roots *Roots
		at    time.Time
	}{
		{"another CA", NewRoots("c1", other.Cert), now},
		{"another cluster ID", NewRoots("c2", root.Cert), now},
		{"expired", roots, now.Add(2 * time.Hour)},
		{"not yet valid", roots, now.Add(-time.Hour)},
	}
	for _, tc := range cases {
		if _, err := tc.roots.Verify(chain, tc.at, x509.ExtKeyUsageClientAuth); !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: got %v, want ErrUntrusted", tc.name, err)
		}
	}
	if _, err := roots.Verify(nil, now, x509.ExtKeyUsageClientAuth); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("empty chain: %v", err)
	}
	admin := issue(t, root, Identity{ClusterID: "c1", ID: "alice", Role: RoleAdmin}, now, time.Hour)
	if _, err := roots.Verify([]*x509.Certificate{admin.Leaf()}, now, x509.ExtKeyUsageServerAuth); !errors.Is(err, ErrUntrusted) {
		t.Errorf("an admin certificate must not serve: %v", err)
	}
	if _, err := root.Sign([]byte("not a csr"), id, time.Hour, now); !errors.Is(err, ErrBadCSR) {
		t.Errorf("bad CSR: %v", err)
	}
	if _, err := ParseRootCA(root.CertPEM, other.KeyPEM()); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("mismatched key: %v", err)
	}
}

// A certificate from a new root, sent with the new root cross-signed by
// the old one, is accepted by parties that trust either root, and a
// joining node pinning the old root finds it in a chain that carries it.
func TestCrossSignedRoot(t *testing.T) {
	now := time.Now()
	oldRoot, _ := NewRootCA(now)
	newRoot, _ := NewRootCA(now)
	cross, err := oldRoot.CrossSign(newRoot)
	if err != nil {
		t.Fatal(err)
	}
	crossCerts, err := ParseCertificates(cross)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{ClusterID: "c1", ID: "m1", Role: RoleManager}
	c := issue(t, newRoot, id, now, time.Hour)
	leaf := c.Leaf()
	chain := []*x509.Certificate{leaf, crossCerts[0]}
	for name, roots := range map[string]*Roots{
		"old root only": NewRoots("c1", oldRoot.Cert),
		"new root only": NewRoots("c1", newRoot.Cert),
		"both":          NewRoots("c1", oldRoot.Cert, newRoot.Cert),
	} {
		if _, err := roots.Verify(chain, now, x509.ExtKeyUsageServerAuth); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := NewRoots("c1", oldRoot.Cert).Verify(chain[:1], now, x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("without the cross-signed root, a party trusting only the old root accepted the new root's certificate")
	}
	if got := IssuerIn(leaf, []*x509.Certificate{oldRoot.Cert, newRoot.Cert}); got != newRoot.Digest() {
		t.Errorf("issuer %s, want the new root %s", got, newRoot.Digest())
	}
	served := append(chain, oldRoot.Cert)
	if _, _, err := PinnedRoot(tls.ConnectionState{PeerCertificates: served}, oldRoot.Digest(), now); err != nil {
		t.Errorf("a join pinning the old root: %v", err)
	}
}
