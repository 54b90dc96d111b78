package authz

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// ErrRemoved is what Membership.Check returns for a node that was
// removed from the cluster.
var ErrRemoved = errors.New("node was removed from the cluster")

// Membership answers, on a manager, what the cluster says of a node
// certificate's holder now. A nil Membership (a worker's server) trusts
// the certificate as it is.
type Membership interface {
	// Check returns the role the node holds now, which may be lower than
	// its certificate's (a demoted manager), or ErrRemoved. A node the
	// store does not know (yet) keeps its certificate's role.
	Check(id ca.Identity) (ca.Role, error)
}

// Caller is the authenticated party of a call.
type Caller struct {
	// Kind is exactly one of the api.Caller* values.
	Kind api.Callers
	// Identity is the certificate's identity with its effective role
	// (zero for local and anonymous callers).
	Identity ca.Identity
}

// NodeID is the calling node's ID ("" unless a node certificate).
func (c Caller) NodeID() string {
	if c.Identity.Role.IsNode() {
		return c.Identity.ID
	}
	return ""
}

type callerKey struct{}

// CallerFrom returns the caller the interceptors put in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// WithCaller returns ctx carrying c (tests that call handlers directly).
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// Authorizer checks calls; its interceptors go on every node's server.
type Authorizer struct {
	// Members, if set, is asked about node callers on every call.
	Members func() Membership
	// Now is the clock for certificate validity; nil means time.Now.
	Now func() time.Time
}

func (a *Authorizer) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Unary is the unary server interceptor.
func (a *Authorizer) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	c, access, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if err := checkSelf(c, access, info.FullMethod, req); err != nil {
		return nil, err
	}
	return h(WithCaller(ctx, c), req)
}

// Stream is the stream server interceptor: the caller is checked when the
// stream opens, and each message it sends is checked like a unary
// request.
func (a *Authorizer) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	c, access, err := a.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &checkedStream{ServerStream: ss, ctx: WithCaller(ss.Context(), c), c: c, access: access, method: info.FullMethod})
}

// authorize finds the caller and checks it may call method.
func (a *Authorizer) authorize(ctx context.Context, method string) (Caller, api.Access, error) {
	access, ok := api.AccessOf(method)
	if !ok {
		return Caller{}, access, status.Errorf(codes.PermissionDenied, "%s is not open to any caller", method)
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Caller{}, access, status.Error(codes.Unauthenticated, "no peer information")
	}
	ai, ok := p.AuthInfo.(AuthInfo)
	if !ok {
		return Caller{}, access, status.Error(codes.Unauthenticated, "connection not authenticated")
	}
	var c Caller
	switch {
	case ai.Local:
		c.Kind = api.CallerLocal
	case errors.Is(ai.Err, ca.ErrNoCertificate):
		c.Kind = api.CallerAnonymous
	case ai.Err != nil:
		if access.Callers&api.CallerAnonymous != 0 {
			c.Kind = api.CallerAnonymous // a bad certificate buys nothing more than none
			break
		}
		return c, access, status.Errorf(codes.Unauthenticated, "your certificate was refused: %v. %s", ai.Err, getCertHint)
	default:
		if now := a.now(); now.After(ai.Leaf.NotAfter) {
			return c, access, status.Errorf(codes.Unauthenticated, "your certificate expired at %s. %s", ai.Leaf.NotAfter.UTC().Format(time.RFC3339), getCertHint)
		}
		c.Identity = ai.Identity
		if c.Identity.Role.IsNode() && a.Members != nil {
			if m := a.Members(); m != nil {
				role, err := m.Check(c.Identity)
				if errors.Is(err, ErrRemoved) {
					return c, access, api.NodeRemovedError(c.Identity.ID)
				}
				if err != nil {
					return c, access, status.Errorf(codes.Unavailable, "check node %s: %v", c.Identity.ID, err)
				}
				c.Identity.Role = role
			}
		}
		c.Kind = kindOf(c.Identity.Role)
	}
	if access.Callers&c.Kind == 0 {
		if c.Kind == api.CallerAnonymous {
			return c, access, status.Errorf(codes.Unauthenticated, "%s needs a client certificate of this cluster over TCP. %s", method, getCertHint)
		}
		if access.Callers == api.CallerLocal {
			return c, access, status.Errorf(codes.PermissionDenied, "%s must be run on the node itself, through its unix socket (no --host, or --host unix://DATA/shoal.sock)", method)
		}
		return c, access, status.Errorf(codes.PermissionDenied, "%s may not call %s", describe(c), method)
	}
	return c, access, nil
}

// getCertHint tells a user without a usable certificate how to get one.
const getCertHint = "On a manager, run `shoal cluster ca issue-client --name NAME --out DIR`, then pass --tlscacert DIR/ca.pem --tlscert DIR/cert.pem --tlskey DIR/key.pem or set SHOAL_CERT_PATH=DIR; or use the node's local socket"

func kindOf(r ca.Role) api.Callers {
	switch r {
	case ca.RoleManager:
		return api.CallerManager
	case ca.RoleWorker:
		return api.CallerWorker
	case ca.RoleAdmin:
		return api.CallerAdmin
	}
	return 0
}

func describe(c Caller) string {
	switch c.Kind {
	case api.CallerLocal:
		return "the local socket"
	case api.CallerAnonymous:
		return "a client without a certificate"
	}
	return fmt.Sprintf("%s (role %s)", c.Identity.ID, c.Identity.Role)
}

// nodeNamer is a request that names the node it is about.
type nodeNamer interface{ GetNodeId() string }

// checkSelf refuses a worker's request that names another node.
func checkSelf(c Caller, access api.Access, method string, req any) error {
	if !access.Self || c.Kind != api.CallerWorker {
		return nil
	}
	n, ok := req.(nodeNamer)
	if !ok {
		return nil
	}
	if got := n.GetNodeId(); got != c.Identity.ID {
		return status.Errorf(codes.PermissionDenied, "node %s may not call %s for node %q: a node speaks only for itself", c.Identity.ID, method, got)
	}
	return nil
}

// checkedStream applies checkSelf to every message a stream receives and
// carries the caller in its context.
type checkedStream struct {
	grpc.ServerStream
	ctx    context.Context
	c      Caller
	access api.Access
	method string
}

func (s *checkedStream) Context() context.Context { return s.ctx }

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkSelf(s.c, s.access, s.method, m)
}
