package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Lifetimes of certificates.
const (
	// RootLifetime is how long a generated root CA is valid.
	RootLifetime = 20 * 365 * 24 * time.Hour
	// DefaultCertLifetime is a node or client certificate's lifetime when
	// the cluster spec sets none.
	DefaultCertLifetime = 90 * 24 * time.Hour
	// MinCertLifetime is the shortest lifetime the cluster accepts.
	MinCertLifetime = time.Hour
	// backdate is how far before "now" a certificate starts to be valid,
	// so a node whose clock is a little behind accepts it at once.
	backdate = 5 * time.Minute
)

// Errors of the CA.
var (
	// ErrBadCSR means a certificate signing request could not be parsed
	// or its signature does not match its key.
	ErrBadCSR = errors.New("invalid certificate signing request")
	// ErrBadKey means a private key could not be parsed or is not an
	// ECDSA P-256 key.
	ErrBadKey = errors.New("invalid private key: expected an ECDSA P-256 key in PEM")
	// ErrKeyMismatch means a root certificate and a key do not belong
	// together.
	ErrKeyMismatch = errors.New("the CA key does not match the CA certificate")
	// ErrNotCA means a certificate given as a root cannot sign
	// certificates.
	ErrNotCA = errors.New("the certificate is not a CA certificate (basic constraints CA:TRUE and key usage cert sign are needed)")
	// ErrNoSigner means the RootCA was loaded without its key.
	ErrNoSigner = errors.New("this root CA has no private key here: only managers can sign")
)

// RootCA is the cluster's root certificate and, on managers, its key.
type RootCA struct {
	// Cert is the root certificate; CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	digest  string
	signer  crypto.Signer
	keyPEM  []byte
}

// NewRootCA generates a self-signed root CA with an ECDSA P-256 key, valid
// from now for RootLifetime.
func NewRootCA(now time.Time) (*RootCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "shoal-root-ca"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(RootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign CA: %w", err)
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return nil, err
	}
	return ParseRootCA(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
}

// ParseRootCA reads a root CA from PEM. keyPEM may be nil where only
// verification is needed; otherwise it must be the certificate's key.
func ParseRootCA(certPEM, keyPEM []byte) (*RootCA, error) {
	certs, err := ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert := certs[0]
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, ErrNotCA
	}
	r := &RootCA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), digest: DigestOf(cert)}
	if keyPEM == nil {
		return r, nil
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, ErrKeyMismatch
	}
	r.signer, r.keyPEM = key, bytes.Clone(keyPEM)
	return r, nil
}

// KeyPEM returns the CA key in PEM (nil without one).
func (r *RootCA) KeyPEM() []byte { return bytes.Clone(r.keyPEM) }

// CanSign reports whether the CA holds its key.
func (r *RootCA) CanSign() bool { return r.signer != nil }

// Digest is the root certificate's SHA-256, as join tokens carry it.
func (r *RootCA) Digest() string { return r.digest }

// DigestOf returns a certificate's SHA-256 in the encoding of join tokens
// (lower-case base32 without padding, 52 characters).
func DigestOf(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}

// Sign issues a certificate for id to the key of csrPEM, valid from now for
// lifetime, and returns it in PEM. The CSR's subject and extensions are
// ignored: the identity is the caller's to decide. The certificate can
// serve and authenticate clients (nodes) or only authenticate (admins).
func (r *RootCA) Sign(csrPEM []byte, id Identity, lifetime time.Duration, now time.Time) ([]byte, error) {
	if r.signer == nil {
		return nil, ErrNoSigner
	}
	if !id.Role.Valid() || id.ID == "" || id.ClusterID == "" {
		return nil, fmt.Errorf("sign: incomplete identity %+v", id)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(lifetime)
	if notAfter.After(r.Cert.NotAfter) {
		notAfter = r.Cert.NotAfter
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	if id.Role == RoleAdmin {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{
			CommonName:         id.ID,
			OrganizationalUnit: []string{string(id.Role)},
			Organization:       []string{id.ClusterID},
		},
		NotBefore:   now.Add(-backdate),
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.Cert, csr.PublicKey, r.signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", id, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// ParseCertificates reads one or more PEM certificates, leaf first.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("crypto/rand failed: " + err.Error()) // never fails on Linux
	}
	return n
}
