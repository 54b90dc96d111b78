package ca

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// CrossSign returns next's root certificate re-issued by r (PEM): the same
// subject, key and key ID, signed by r's key. A party that trusts only r
// accepts a chain leaf → cross-signed next → r, so certificates the new
// root issues work everywhere while a rotation reaches every node.
func (r *RootCA) CrossSign(next *RootCA) ([]byte, error) {
	if r.signer == nil {
		return nil, ErrNoSigner
	}
	n := next.Cert
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               n.Subject,
		SubjectKeyId:          n.SubjectKeyId,
		NotBefore:             n.NotBefore,
		NotAfter:              n.NotAfter,
		KeyUsage:              n.KeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if tmpl.NotAfter.After(r.Cert.NotAfter) {
		tmpl.NotAfter = r.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.Cert, n.PublicKey, r.signer)
	if err != nil {
		return nil, fmt.Errorf("cross-sign the new root: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// IssuerIn returns the digest (DigestOf) of the root in roots whose key
// signed leaf, or "" when none did.
func IssuerIn(leaf *x509.Certificate, roots []*x509.Certificate) string {
	for _, r := range roots {
		if leaf.CheckSignatureFrom(r) == nil {
			return DigestOf(r)
		}
	}
	return ""
}

// BundleDigest is the SHA-256 of a roots bundle as sent (PEM): what a
// node reports it trusts.
func BundleDigest(pemBundle []byte) []byte {
	sum := sha256.Sum256(pemBundle)
	return sum[:]
}
