package ca

import (
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
