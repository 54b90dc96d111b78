package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Errors of certificate verification.
var (
	// ErrNoCertificate means the peer presented no certificate.
	ErrNoCertificate = errors.New("no certificate presented")
	// ErrUntrusted means a certificate does not chain to this cluster's
	// root CA, is expired or not yet valid, or names another cluster.
	ErrUntrusted = errors.New("certificate not trusted by this cluster")
)

// Roots is what a node trusts: the cluster's root certificates (more than
// one while the root is rotated) and the cluster ID they vouch for.
type Roots struct {
	ClusterID string
	pool      *x509.CertPool
	certs     []*x509.Certificate
}

// NewRoots trusts certs for clusterID.
func NewRoots(clusterID string, certs ...*x509.Certificate) *Roots {
	r := &Roots{ClusterID: clusterID, pool: x509.NewCertPool()}
	for _, c := range certs {
		r.pool.AddCert(c)
		r.certs = append(r.certs, c)
	}
	return r
}

// Certs returns the trusted root certificates.
func (r *Roots) Certs() []*x509.Certificate { return append([]*x509.Certificate(nil), r.certs...) }

// Verify checks that chain (leaf first, then intermediates) chains to one
// of the roots at now, is valid for usage, and names this cluster, and
// returns the leaf's identity. It errs with ErrNoCertificate for an empty
// chain and ErrUntrusted (wrapping the reason) otherwise.
func (r *Roots) Verify(chain []*x509.Certificate, now time.Time, usage x509.ExtKeyUsage) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, ErrNoCertificate
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         r.pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	}); err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return Identity{}, fmt.Errorf("%w: it is valid from %s to %s (now %s)", ErrUntrusted,
				leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		return Identity{}, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	if id.ClusterID != r.ClusterID {
		return Identity{}, fmt.Errorf("%w: it was issued for cluster %s, this is cluster %s", ErrUntrusted, id.ClusterID, r.ClusterID)
	}
	return id, nil
}
