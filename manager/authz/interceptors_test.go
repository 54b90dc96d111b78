package authz

import (
	"context"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// members is a Membership from a table: removed IDs, demoted IDs.
type members struct{ removed, demoted map[string]bool }

func (m members) Check(id ca.Identity) (ca.Role, error) {
	if m.removed[id.ID] {
		return "", ErrRemoved
	}
	if m.demoted[id.ID] && id.Role == ca.RoleManager {
		return ca.RoleWorker, nil
	}
	return id.Role, nil
}

// callerCtx is a server context whose peer is ai.
func callerCtx(ai AuthInfo) context.Context {
	return peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{}, AuthInfo: ai})
}

func node(id string, role ca.Role, expires time.Time) AuthInfo {
	return AuthInfo{Identity: ca.Identity{ClusterID: "c", ID: id, Role: role}, Leaf: &x509.Certificate{NotAfter: expires}}
}

func TestAuthorize(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	a := &Authorizer{
		Members: func() Membership {
			return members{removed: map[string]bool{"gone": true}, demoted: map[string]bool{"was-manager": true}}
		},
		Now: func() time.Time { return now },
	}
	cases := []struct {
		name   string
		ai     AuthInfo
		method string
		req    any
		want   codes.Code
	}{
		{"local on Control", AuthInfo{Local: true}, api.Control_ListNodes_FullMethodName, nil, codes.OK},
		{"local on Raft.Propose", AuthInfo{Local: true}, api.Raft_Propose_FullMethodName, nil, codes.PermissionDenied},
		{"local on Raft.ReadIndex", AuthInfo{Local: true}, api.Raft_ReadIndex_FullMethodName, nil, codes.OK},
		{"anonymous on Control", AuthInfo{Err: ca.ErrNoCertificate}, api.Control_ListNodes_FullMethodName, nil, codes.Unauthenticated},
		{"anonymous on Join", AuthInfo{Err: ca.ErrNoCertificate}, api.Membership_Join_FullMethodName, nil, codes.OK},
		{"bad certificate on Join", AuthInfo{Err: ca.ErrUntrusted}, api.Membership_Join_FullMethodName, nil, codes.OK},
		{"bad certificate on Control", AuthInfo{Err: ca.ErrUntrusted}, api.Control_ListNodes_FullMethodName, nil, codes.Unauthenticated},
		{"expired manager", node("m1", ca.RoleManager, now.Add(-time.Second)), api.Control_ListNodes_FullMethodName, nil, codes.Unauthenticated},
		{"manager on Raft", node("m1", ca.RoleManager, later), api.Raft_Propose_FullMethodName, nil, codes.OK},
		{"demoted manager on Raft", node("was-manager", ca.RoleManager, later), api.Raft_Propose_FullMethodName, nil, codes.PermissionDenied},
		{"worker on Control", node("w1", ca.RoleWorker, later), api.Control_ListNodes_FullMethodName, nil, codes.PermissionDenied},
		{"worker on Raft", node("w1", ca.RoleWorker, later), api.Raft_Propose_FullMethodName, nil, codes.PermissionDenied},
		{"worker for itself", node("w1", ca.RoleWorker, later), api.Dispatcher_Heartbeat_FullMethodName, &api.HeartbeatRequest{NodeId: "w1"}, codes.OK},
		{"worker for another", node("w1", ca.RoleWorker, later), api.Dispatcher_Heartbeat_FullMethodName, &api.HeartbeatRequest{NodeId: "w2"}, codes.PermissionDenied},
		{"manager for another", node("m1", ca.RoleManager, later), api.Dispatcher_Heartbeat_FullMethodName, &api.HeartbeatRequest{NodeId: "w2"}, codes.OK},
		{"removed worker", node("gone", ca.RoleWorker, later), api.Dispatcher_Heartbeat_FullMethodName, &api.HeartbeatRequest{NodeId: "gone"}, codes.PermissionDenied},
		{"admin on Control", node("alice", ca.RoleAdmin, later), api.Control_ListNodes_FullMethodName, nil, codes.OK},
		{"admin on Dispatcher", node("alice", ca.RoleAdmin, later), api.Dispatcher_Heartbeat_FullMethodName, &api.HeartbeatRequest{NodeId: "alice"}, codes.PermissionDenied},
		{"admin on LocalNode", node("alice", ca.RoleAdmin, later), api.LocalNode_Leave_FullMethodName, nil, codes.PermissionDenied},
		{"unknown method", AuthInfo{Local: true}, "/shoal.api.Nope/Do", nil, codes.PermissionDenied},
	}
	for _, tc := range cases {
		called := false
		_, err := a.Unary(callerCtx(tc.ai), tc.req, &grpc.UnaryServerInfo{FullMethod: tc.method}, func(ctx context.Context, _ any) (any, error) {
			called = true
			if _, ok := CallerFrom(ctx); !ok {
				t.Errorf("%s: the handler's context has no caller", tc.name)
			}
			return nil, nil
		})
		if got := status.Code(err); got != tc.want || called != (tc.want == codes.OK) {
			t.Errorf("%s: %v (handler called %v), want %s", tc.name, err, called, tc.want)
		}
	}
	_, err := a.Unary(callerCtx(node("gone", ca.RoleWorker, later)), &api.HeartbeatRequest{NodeId: "gone"},
		&grpc.UnaryServerInfo{FullMethod: api.Dispatcher_Heartbeat_FullMethodName}, func(context.Context, any) (any, error) { return nil, nil })
	if !api.IsNodeRemoved(err) {
		t.Errorf("a removed node is not told it was removed: %v", err)
	}
}
