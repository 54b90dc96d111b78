package ca

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Credentials are one party's TLS material: its key and certificate chain
// and the roots it trusts. Update swaps them at once (renewal, a role
// change, a root rotation); every tls.Config made from them reads the
// current material at each handshake, so connections made after an
// Update use it and open connections are untouched.
type Credentials struct {
	mu       sync.RWMutex
	cert     *tls.Certificate // the chain as issued, then the trusted roots
	chainPEM []byte
	keyPEM   []byte
	rootsPEM []byte
	id       Identity
	roots    *Roots
	now      func() time.Time
}

// NewCredentials holds chainPEM (leaf first) with keyPEM, trusting
// rootsPEM. The leaf must carry an identity and match the key; the roots
// vouch for the leaf's cluster.
func NewCredentials(chainPEM, keyPEM, rootsPEM []byte) (*Credentials, error) {
	c := &Credentials{now: time.Now}
	if err := c.Update(chainPEM, keyPEM, rootsPEM); err != nil {
		return nil, err
	}
	return c, nil
}

// SetClock replaces the clock used to check peers' validity (tests).
func (c *Credentials) SetClock(now func() time.Time) {
	c.mu.Lock()
	c.now = now
	c.mu.Unlock()
}

// Update replaces the material; on error the old one stays. The chain
// the holder presents is chainPEM followed by the trusted roots it does
// not already hold, so that a joining node finds the root its token pins
// whichever root issued the leaf.
func (c *Credentials) Update(chainPEM, keyPEM, rootsPEM []byte) error {
	cert, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("certificate and key: %w", err)
	}
	id, err := IdentityOf(cert.Leaf)
	if err != nil {
		return err
	}
	rootCerts, err := ParseCertificates(rootsPEM)
	if err != nil {
		return fmt.Errorf("CA certificates: %w", err)
	}
	for _, r := range rootCerts {
		held := false
		for _, der := range cert.Certificate {
			held = held || bytes.Equal(der, r.Raw)
		}
		if !held {
			cert.Certificate = append(cert.Certificate, r.Raw)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cert, c.id, c.roots = &cert, id, NewRoots(id.ClusterID, rootCerts...)
	c.chainPEM, c.keyPEM, c.rootsPEM = bytes.Clone(chainPEM), bytes.Clone(keyPEM), bytes.Clone(rootsPEM)
	return nil
}

// UpdateRoots replaces the trusted roots only (a root rotation's steps),
// keeping the certificate and key.
func (c *Credentials) UpdateRoots(rootsPEM []byte) error {
	c.mu.RLock()
	chain, key := c.chainPEM, c.keyPEM
	c.mu.RUnlock()
	return c.Update(chain, key, rootsPEM)
}

// Material returns the chain, key and roots as given to Update (PEM).
func (c *Credentials) Material() (chainPEM, keyPEM, rootsPEM []byte) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.chainPEM, c.keyPEM, c.rootsPEM
}

// Issuer is the digest of the trusted root that issued the holder's
// certificate ("" if none of them did).
func (c *Credentials) Issuer() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return IssuerIn(c.cert.Leaf, c.roots.certs)
}

// Identity is the holder's identity as its certificate says.
func (c *Credentials) Identity() Identity {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.id
}

// Leaf is the holder's current certificate.
func (c *Credentials) Leaf() *x509.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cert.Leaf
}

// Roots are the roots the holder trusts now.
func (c *Credentials) Roots() *Roots {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.roots
}

// Now is the credentials' clock.
func (c *Credentials) Now() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.now()
}

func (c *Credentials) current() *tls.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cert
}

// VerifyPeer checks the peer's chain of a finished handshake against the
// current roots, for usage (ExtKeyUsageClientAuth for a server looking at
// its client), and returns its identity.
func (c *Credentials) VerifyPeer(cs tls.ConnectionState, usage x509.ExtKeyUsage) (Identity, error) {
	c.mu.RLock()
	roots, now := c.roots, c.now()
	c.mu.RUnlock()
	return roots.Verify(cs.PeerCertificates, now, usage)
}

// ServerConfig is the TLS configuration of a node's port: TLS 1.3, the
// current certificate, a client certificate asked for but not required
// (joining nodes have none; callers verify with VerifyPeer and refuse
// what needs one), and the given ALPN protocols.
func (c *Credentials) ServerConfig(alpn ...string) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.current(), nil },
		ClientAuth:     tls.RequestClientCert,
		NextProtos:     alpn,
	}
}

// ClientConfig is the TLS configuration for dialing a node of this
// cluster: it presents the current certificate and accepts a server only
// if its chain verifies against the current roots and expect (if not nil)
// accepts its identity. The standard host name check is replaced by this
// identity check (nodes are reached by address and named by ID).
func (c *Credentials) ClientConfig(expect func(Identity) error, alpn ...string) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c.current(), nil },
		NextProtos:           alpn,
		// Verification is done by VerifyConnection below, against the
		// cluster's roots, with the identity check instead of a host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := c.VerifyPeer(cs, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			if expect != nil {
				return expect(id)
			}
			return nil
		},
	}
}

// ExpectManager accepts a manager's identity only.
func ExpectManager(id Identity) error {
	if id.Role != RoleManager {
		return fmt.Errorf("%w: the server is %s, not a manager", ErrUntrusted, id)
	}
	return nil
}

// ExpectNode accepts any node of the cluster (manager or worker).
func ExpectNode(id Identity) error {
	if !id.Role.IsNode() {
		return fmt.Errorf("%w: the server is %s, not a node", ErrUntrusted, id)
	}
	return nil
}

// ErrDigestMismatch means the manager a node tried to join is not under
// the root CA its join token names.
var ErrDigestMismatch = errors.New("the manager's CA does not match the join token")

// PinnedConfig is the TLS configuration of a node joining with a token:
// no client certificate; the server must present, in its chain, a CA
// certificate whose digest is digest, and a manager certificate issued by
// it. Nothing is sent over the connection before that check passes.
// PinnedRoot returns the CA certificate that matched, once connected.
func PinnedConfig(digest string, now func() time.Time) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		// The server is checked against the token's digest below.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, _, err := PinnedRoot(cs, digest, now())
			return err
		},
	}
}

// PinnedRoot finds, in a server's chain, the CA certificate with digest,
// and checks the leaf against it: a manager of the cluster that CA
// vouches for. It returns the CA and the server's identity.
func PinnedRoot(cs tls.ConnectionState, digest string, now time.Time) (*x509.Certificate, Identity, error) {
	chain := cs.PeerCertificates
	if len(chain) == 0 {
		return nil, Identity{}, ErrNoCertificate
	}
	for _, c := range chain[1:] {
		if !c.IsCA || DigestOf(c) != digest {
			continue
		}
		leafID, err := IdentityOf(chain[0])
		if err != nil {
			return nil, Identity{}, fmt.Errorf("%w: %v", ErrUntrusted, err)
		}
		id, err := NewRoots(leafID.ClusterID, c).Verify(chain, now, x509.ExtKeyUsageServerAuth)
		if err != nil {
			return nil, Identity{}, err
		}
		if err := ExpectManager(id); err != nil {
			return nil, Identity{}, err
		}
		return c, id, nil
	}
	return nil, Identity{}, fmt.Errorf("%w: the server's CA has digest %s, the token names %s: check that the token belongs to the cluster at that address",
		ErrDigestMismatch, describeCAs(chain[1:]), digest)
}

func describeCAs(certs []*x509.Certificate) string {
	for _, c := range certs {
		if c.IsCA {
			return DigestOf(c)
		}
	}
	return "(none sent)"
}

// EncodeCerts writes certificates in PEM, in order.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// The file names of a node's credentials in its certificates folder, and
// of a client's in a SHOAL_CERT_PATH folder (as docker names them).
const (
	NodeCertFile   = "node.crt"
	NodeKeyFile    = "node.key"
	NodeRootsFile  = "ca.crt"
	ClientCAFile   = "ca.pem"
	ClientCertFile = "cert.pem"
	ClientKeyFile  = "key.pem"
)

// WriteFiles writes chain, key and roots into dir (made 0700) as
// certFile, keyFile (0600) and caFile, each replaced atomically.
func WriteFiles(dir, certFile, keyFile, caFile string, chainPEM, keyPEM, rootsPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{keyFile, keyPEM, 0o600}, {certFile, chainPEM, 0o644}, {caFile, rootsPEM, 0o644}} {
		tmp := filepath.Join(dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, f.name)); err != nil {
			return err
		}
	}
	return nil
}

// ReadFiles reads credentials written by WriteFiles (or given by a user).
func ReadFiles(certPath, keyPath, caPath string) (*Credentials, error) {
	var data [3][]byte
	for i, p := range []string{certPath, keyPath, caPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		data[i] = b
	}
	c, err := NewCredentials(data[0], data[1], data[2])
	if err != nil {
		return nil, fmt.Errorf("%s, %s, %s: %w", certPath, keyPath, caPath, err)
	}
	return c, nil
}
