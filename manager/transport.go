package manager

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/authz"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/manager/raft"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// Transport is a node's port: TLS on all of it, gRPC and Raft split by
// ALPN (raft.Mux), and a gRPC server whose every call is authorized
// (authz). The same server also serves the node's unix socket.
type Transport struct {
	Mux   *raft.Mux
	GRPC  *grpc.Server
	Creds *ca.Credentials
}

// NewTransport serves ln with creds. members, when it returns a
// Membership (the node's manager), is asked about node callers on every
// call; advertise is the address other managers dial for Raft. The
// caller registers services on GRPC, then serves it on Mux's gRPC
// listener.
func NewTransport(ln net.Listener, advertise net.Addr, creds *ca.Credentials, members func() authz.Membership, opts ...grpc.ServerOption) *Transport {
	az := &authz.Authorizer{Members: members, Now: creds.Now}
	mux := raft.NewMux(ln, advertise, raft.MuxConfig{
		TLS:        creds.ServerConfig(raft.ALPNGRPC, raft.ALPNRaft),
		RaftClient: creds.ClientConfig(ca.ExpectManager, raft.ALPNRaft),
		AuthorizeRaft: func(cs tls.ConnectionState) error {
			id, err := creds.VerifyPeer(cs, x509.ExtKeyUsageClientAuth)
			if err != nil {
				return err
			}
			if m := members(); m != nil {
				if id.Role, err = m.Check(id); err != nil {
					return err
				}
			}
			return ca.ExpectManager(id)
		},
		// Only to find the connections to cut when a node is removed: the
		// name need not be verified here (the server's credentials do
		// that for every call), a forged one only gets its own
		// connection cut.
		PeerID: func(cs tls.ConnectionState) string {
			if len(cs.PeerCertificates) == 0 {
				return ""
			}
			if id, err := ca.IdentityOf(cs.PeerCertificates[0]); err == nil && id.Role.IsNode() {
				return id.ID
			}
			return ""
		},
	})
	opts = append([]grpc.ServerOption{
		grpc.Creds(authz.NewServerCredentials(creds)),
		grpc.ChainUnaryInterceptor(az.Unary),
		grpc.ChainStreamInterceptor(az.Stream),
	}, opts...)
	return &Transport{Mux: mux, GRPC: grpc.NewServer(opts...), Creds: creds}
}

// Close stops the server and the port.
func (t *Transport) Close() {
	t.GRPC.Stop()
	t.Mux.Close()
}

// Dialer returns a DialFunc over mutual TLS with creds, accepting servers
// that expect accepts (ca.ExpectManager, ca.ExpectNode).
func Dialer(creds *ca.Credentials, expect func(ca.Identity) error) DialFunc {
	tc := credentials.NewTLS(creds.ClientConfig(expect, raft.ALPNGRPC))
	return func(addr string) (*grpc.ClientConn, error) {
		return grpc.NewClient(addr, grpc.WithTransportCredentials(tc))
	}
}

// CertDir is where a node keeps its key, certificate and roots inside its
// data directory.
func CertDir(dataDir string) string { return filepath.Join(dataDir, "certificates") }

// LoadNodeCredentials reads the node's credentials from its data
// directory.
func LoadNodeCredentials(dataDir string) (*ca.Credentials, error) {
	d := CertDir(dataDir)
	return ca.ReadFiles(filepath.Join(d, ca.NodeCertFile), filepath.Join(d, ca.NodeKeyFile), filepath.Join(d, ca.NodeRootsFile))
}

// SaveNodeCredentials writes a node's credentials into its data
// directory (the key 0600).
func SaveNodeCredentials(dataDir string, chain, key, roots []byte) error {
	return ca.WriteFiles(CertDir(dataDir), ca.NodeCertFile, ca.NodeKeyFile, ca.NodeRootsFile, chain, key, roots)
}

// NewClusterCredentials makes what the first manager of a new cluster
// needs: a cluster ID, a root CA (root, or a fresh one when nil), the
// node's ID, and the node's manager certificate, written into dataDir.
func NewClusterCredentials(dataDir string, root *ca.RootCA, certExpiry *int64) (clusterID, nodeID string, _ *ca.RootCA, _ *ca.Credentials, err error) {
	now := time.Now()
	if root == nil {
		if root, err = ca.NewRootCA(now); err != nil {
			return "", "", nil, nil, err
		}
	}
	clusterID, nodeID = store.NewID(), store.NewID()
	c := &api.Cluster{Id: clusterID, Spec: &api.ClusterSpec{CertExpiry: certExpiry}, RootCa: &api.RootCA{Cert: root.CertPEM, Key: root.KeyPEM()}}
	key, csr, err := ca.NewKeyAndCSR(nodeID)
	if err != nil {
		return "", "", nil, nil, err
	}
	chain, roots, err := controlapi.IssueNodeCertificate(c, csr, nodeID, ca.RoleManager, now)
	if err != nil {
		return "", "", nil, nil, err
	}
	if dataDir != "" {
		if err := SaveNodeCredentials(dataDir, chain, key, roots); err != nil {
			return "", "", nil, nil, err
		}
	}
	creds, err := ca.NewCredentials(chain, key, roots)
	return clusterID, nodeID, root, creds, err
}

// LoadExternalCA reads a root CA given as files at init (--external-ca).
func LoadExternalCA(certFile, keyFile string) (*ca.RootCA, error) {
	cert, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	root, err := ca.ParseRootCA(cert, key)
	if err != nil {
		return nil, fmt.Errorf("--external-ca %s,%s: %w", certFile, keyFile, err)
	}
	return root, nil
}

// JoinCluster asks the manager at addr to admit a node with token: it
// generates the node's key, connects with TLS checking the manager
// against the token's CA digest before it sends anything, and sends the
// CSR. It returns the answer and the node's credentials (written into
// dataDir unless empty). A token whose digest does not match fails with
// ca.ErrDigestMismatch and sends no secret.
func JoinCluster(ctx context.Context, addr, token, dataDir string, req *api.JoinRequest) (*api.JoinResponse, *ca.Credentials, error) {
	tok, err := ca.ParseToken(token)
	if err != nil {
		return nil, nil, err
	}
	key, csr, err := ca.NewKeyAndCSR("")
	if err != nil {
		return nil, nil, err
	}
	pinned := ca.PinnedConfig(tok.Digest, time.Now)
	var mu sync.Mutex
	var mismatch error // why the manager was refused, if it was
	verify := pinned.VerifyConnection
	pinned.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verify(cs)
		if err != nil {
			mu.Lock()
			mismatch = err
			mu.Unlock()
		}
		return err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(pinned)))
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	r := proto.Clone(req).(*api.JoinRequest)
	r.Token, r.Csr = token, csr
	resp, err := api.NewMembershipClient(conn).Join(ctx, r)
	mu.Lock()
	refused := mismatch
	mu.Unlock()
	if refused != nil {
		return nil, nil, fmt.Errorf("join %s: the manager was refused before anything was sent: %w", addr, refused)
	}
	if err != nil {
		return nil, nil, err
	}
	roots, err := ca.ParseCertificates(resp.RootCa)
	if err != nil {
		return nil, nil, fmt.Errorf("join answer: %w", err)
	}
	if ca.DigestOf(roots[0]) != tok.Digest {
		return nil, nil, fmt.Errorf("join answer: %w", ca.ErrDigestMismatch)
	}
	creds, err := ca.NewCredentials(resp.Certificate, key, resp.RootCa)
	if err != nil {
		return nil, nil, fmt.Errorf("join answer: %w", err)
	}
	if dataDir != "" {
		if err := SaveNodeCredentials(dataDir, resp.Certificate, key, resp.RootCa); err != nil {
			return nil, nil, err
		}
	}
	return resp, creds, nil
}
