package authz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"

	"github.com/shoalhq/shoal/manager/ca"
)

// ErrPlaintext is what the server credentials answer a connection that
// is neither TLS (from the port's mux) nor the local unix socket.
var ErrPlaintext = errors.New("plaintext connection refused: every TCP connection must be TLS")

// AuthInfo is what the server knows of a connection's peer.
type AuthInfo struct {
	credentials.CommonAuthInfo
	// Local is true for the node's unix socket.
	Local bool
	// State is the TLS state (TCP only).
	State tls.ConnectionState
	// Identity is the verified certificate's identity; zero when the
	// peer sent no certificate or it did not verify (Err says why).
	Identity ca.Identity
	// Leaf is the verified certificate.
	Leaf *x509.Certificate
	// Err is why the peer's certificate was refused (ca.ErrNoCertificate
	// when it sent none).
	Err error
}

// AuthType implements credentials.AuthInfo.
func (a AuthInfo) AuthType() string {
	if a.Local {
		return "local"
	}
	return "tls"
}

// tlsConner is a connection the mux hands over after its TLS handshake.
type tlsConner interface{ TLSConn() *tls.Conn }

// ServerCredentials are the gRPC server's transport credentials on a
// node: connections come from the port's mux with their TLS handshake
// done (the peer's certificate is verified here against creds' current
// roots) or from the local unix socket; anything else is refused.
type ServerCredentials struct {
	creds *ca.Credentials
}

// NewServerCredentials verifies peers against creds.
func NewServerCredentials(creds *ca.Credentials) *ServerCredentials {
	return &ServerCredentials{creds: creds}
}

// ServerHandshake implements credentials.TransportCredentials.
func (s *ServerCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	var tc *tls.Conn
	switch c := conn.(type) {
	case *net.UnixConn:
		return conn, AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, Local: true}, nil
	case *tls.Conn:
		tc = c
	case tlsConner:
		tc = c.TLSConn()
	default:
		return nil, nil, ErrPlaintext
	}
	st := tc.ConnectionState()
	if !st.HandshakeComplete {
		return nil, nil, fmt.Errorf("%w: the TLS handshake is not done", ErrPlaintext)
	}
	ai := AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, State: st}
	if len(st.PeerCertificates) == 0 {
		ai.Err = ca.ErrNoCertificate
	} else if id, err := s.creds.VerifyPeer(st, x509.ExtKeyUsageClientAuth); err != nil {
		ai.Err = err
	} else {
		ai.Identity, ai.Leaf = id, st.PeerCertificates[0]
	}
	return conn, ai, nil
}

// ClientHandshake implements credentials.TransportCredentials; a server's
// credentials do not dial.
func (s *ServerCredentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("authz: server credentials cannot dial")
}

// Info implements credentials.TransportCredentials.
func (s *ServerCredentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

// Clone implements credentials.TransportCredentials.
func (s *ServerCredentials) Clone() credentials.TransportCredentials {
	return &ServerCredentials{creds: s.creds}
}

// OverrideServerName implements credentials.TransportCredentials.
func (s *ServerCredentials) OverrideServerName(string) error { return nil }
