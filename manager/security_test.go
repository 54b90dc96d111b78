package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/authz"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/raft"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// issueAt signs a fresh key as id under root, valid from at for life,
// trusting trust (the cluster's root, so the client accepts the server).
func issueAt(t *testing.T, root *ca.RootCA, trust []byte, id ca.Identity, at time.Time, life time.Duration) *ca.Credentials {
	t.Helper()
	key, csr, err := ca.NewKeyAndCSR(id.ID)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := root.Sign(csr, id, life, at)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.NewCredentials(leaf, key, trust)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialTLS connects to addr with a raw TLS configuration.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// callEverything makes one call of each kind a node's port serves and
// returns each one's error.
func callEverything(ctx context.Context, c *grpc.ClientConn, nodeID string) map[string]error {
	out := map[string]error{}
	_, out["Control.CreateService"] = api.NewControlClient(c).CreateService(ctx, &api.CreateServiceRequest{Spec: spec("intruder")})
	_, out["Control.GetClusterInfo"] = api.NewControlClient(c).GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	if s, err := api.NewControlClient(c).ServiceLogs(ctx, &api.ServiceLogsRequest{Target: "x"}); err != nil {
		out["Control.ServiceLogs"] = err
	} else {
		_, out["Control.ServiceLogs"] = s.Recv()
	}
	// A write that would show: a config nobody else creates.
	_, out["Raft.Propose"] = api.NewRaftClient(c).Propose(ctx, &api.ProposeRequest{Command: &api.Command{Actions: []*api.StoreAction{{
		Kind:   api.StoreAction_KIND_CREATE,
		Target: &api.StoreAction_Config{Config: &api.Config{Id: "intruder-raft", Spec: &api.ConfigSpec{Annotations: &api.Annotations{Name: "intruder-raft"}}}},
	}}}})
	_, out["Raft.Status"] = api.NewRaftClient(c).Status(ctx, &api.RaftStatusRequest{})
	_, out["Membership.JoinRaft"] = api.NewMembershipClient(c).JoinRaft(ctx, &api.JoinRaftRequest{Addr: "127.0.0.1:1"})
	_, out["Dispatcher.Heartbeat"] = api.NewDispatcherClient(c).Heartbeat(ctx, &api.HeartbeatRequest{NodeId: nodeID})
	_, out["Dispatcher.UpdateTaskStatus"] = api.NewDispatcherClient(c).UpdateTaskStatus(ctx, &api.UpdateTaskStatusRequest{NodeId: nodeID})
	if s, err := api.NewDispatcherClient(c).Assignments(ctx, &api.AssignmentsRequest{NodeId: nodeID}); err != nil {
		out["Dispatcher.Assignments"] = err
	} else {
		_, out["Dispatcher.Assignments"] = s.Recv()
	}
	_, out["NodeCA.RenewCertificate"] = api.NewNodeCAClient(c).RenewCertificate(ctx, &api.RenewCertificateRequest{Csr: []byte("x")})
	return out
}

// Every RPC and stream refuses a caller without a usable certificate of
// this cluster, a worker refuses the manager-only services, and none of
// the refused calls writes anything.
func TestCallersRefused(t *testing.T) {
	tc := StartTestManagers(t, 3)
	leader := tc.WaitForLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	trust := tc.Root.CertPEM
	worker, wcreds, err := tc.JoinNode(ctx, leader.Addr, api.NodeRole_NODE_ROLE_WORKER, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	removed, rcreds, err := tc.JoinNode(ctx, leader.Addr, api.NodeRole_NODE_ROLE_WORKER, "127.0.0.1:10")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "remove node", func() error {
		_, err := api.NewControlClient(client(t, leader)).RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: removed, Force: true})
		return err
	})
	// Wait until every manager has applied the removal.
	waitFor(t, 5*time.Second, "managers in step", func() error { return sameHashes(tc) })
	checkWrites := watchWrites(t, leader)

	anonymous := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}} // the client trusts anything; the server must not
	manager := ca.Identity{ClusterID: tc.Cluster.Id, ID: leader.NodeID(), Role: ca.RoleManager}
	cases := []struct {
		name   string
		conn   func(addr string) *grpc.ClientConn
		node   string
		refuse map[string]codes.Code // every call not listed must also be refused, with code all
		all    codes.Code
	}{
		{name: "no certificate", conn: func(a string) *grpc.ClientConn { return dialTLS(t, a, anonymous) }, all: codes.Unauthenticated},
		{name: "another CA's manager certificate", node: leader.NodeID(), all: codes.Unauthenticated, conn: func(a string) *grpc.ClientConn {
			c, _ := Dialer(issueAt(t, other, trust, manager, time.Now(), time.Hour), ca.ExpectManager)(a)
			return c
		}},
		{name: "an expired manager certificate", node: leader.NodeID(), all: codes.Unauthenticated, conn: func(a string) *grpc.ClientConn {
			c, _ := Dialer(issueAt(t, tc.Root, trust, manager, time.Now().Add(-3*time.Hour), time.Hour), ca.ExpectManager)(a)
			return c
		}},
		{name: "a removed node's certificate", node: removed, all: codes.PermissionDenied, conn: func(a string) *grpc.ClientConn {
			c, _ := Dialer(rcreds, ca.ExpectManager)(a)
			return c
		}},
		{name: "a worker certificate on manager services", node: worker, all: codes.PermissionDenied, conn: func(a string) *grpc.ClientConn {
			c, _ := Dialer(wcreds, ca.ExpectManager)(a)
			return c
		}, refuse: map[string]codes.Code{
			// What a worker may do, it does: these are not refusals.
			"Dispatcher.Heartbeat": codes.OK, "Dispatcher.UpdateTaskStatus": codes.OK, "Dispatcher.Assignments": codes.OK,
			"NodeCA.RenewCertificate": codes.InvalidArgument,
		}},
	}
	for _, c := range cases {
		if c.refuse != nil {
			// The worker's own heartbeats write its status: check before
			// that case that no refused call wrote anything.
			checkWrites()
			waitFor(t, 5*time.Second, "managers in step", func() error { return sameHashes(tc) })
		}
		for _, m := range tc.Managers {
			conn := c.conn(m.Addr)
			if conn == nil {
				t.Fatalf("%s: no connection", c.name)
			}
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			got := callEverything(cctx, conn, c.node)
			ccancel()
			for call, err := range got {
				want, special := c.refuse[call]
				if !special {
					want = c.all
				}
				code := status.Code(err)
				if want == codes.OK && (code == codes.PermissionDenied || code == codes.Unauthenticated) {
					t.Errorf("%s via %s: %s refused: %v", c.name, m.NodeID(), call, err)
				}
				if want != codes.OK && code != want {
					t.Errorf("%s via %s: %s: %v, want %s", c.name, m.NodeID(), call, err, want)
				}
				if c.name == "a removed node's certificate" && !api.IsNodeRemoved(err) {
					t.Errorf("%s: %s does not say the node was removed: %v", c.name, call, err)
				}
			}
			conn.Close()
		}
	}
}

// watchWrites watches what m applies from now on; the returned check
// fails the test unless every change was the leader's own bookkeeping
// (nodes given roles, manager status, ingress addresses): nothing a
// refused call could write (a node's status, description or spec, any
// other object).
func watchWrites(t *testing.T, m *TestManager) (check func()) {
	events, stop := m.Store().Watch(nil)
	t.Cleanup(stop)
	return func() {
		t.Helper()
		stop()
		for e := range events {
			n, ok := e.Object.(*api.Node)
			if !ok || e.Kind != store.EventUpdate {
				t.Fatalf("a refused call wrote: %v of %T", e.Kind, e.Object)
			}
			old := e.Old.(*api.Node)
			if !proto.Equal(old.Status, n.Status) || !proto.Equal(old.Description, n.Description) || !proto.Equal(old.Spec, n.Spec) {
				t.Fatalf("a refused call changed node %s: %v -> %v", n.Id, old, n)
			}
		}
	}
}

// sameHashes checks that every manager's store is the same.
func sameHashes(tc *TestManagers) error {
	var first string
	for i, m := range tc.Managers {
		h, _ := m.Store().HashAndIndex()
		if i == 0 {
			first = h
		} else if h != first {
			return fmt.Errorf("manager %s store hash %s, manager %s has %s", m.NodeID(), h, tc.Managers[0].NodeID(), first)
		}
	}
	return nil
}

// A worker reads only its own assignments and reports only its own
// tasks.
func TestWorkerSpeaksOnlyForItself(t *testing.T) {
	tc := StartTestManagers(t, 1)
	leader := tc.WaitForLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w1, c1, err := tc.JoinNode(ctx, leader.Addr, api.NodeRole_NODE_ROLE_WORKER, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	w2, _, err := tc.JoinNode(ctx, leader.Addr, api.NodeRole_NODE_ROLE_WORKER, "127.0.0.1:10")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Dialer(c1, ca.ExpectManager)(leader.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dc := api.NewDispatcherClient(conn)
	s, err := dc.Assignments(ctx, &api.AssignmentsRequest{NodeId: w2})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("w1 reading w2's assignments: %v, want PermissionDenied", err)
	}
	if _, err := dc.UpdateTaskStatus(ctx, &api.UpdateTaskStatusRequest{NodeId: w2}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("w1 reporting for w2: %v, want PermissionDenied", err)
	}
	if _, err := api.NewMembershipClient(conn).Leave(ctx, &api.LeaveRequest{NodeId: w2}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("w1 removing w2: %v, want PermissionDenied", err)
	}
	if _, err := dc.Heartbeat(ctx, &api.HeartbeatRequest{NodeId: w1}); err != nil {
		t.Fatalf("w1 for itself: %v", err)
	}
}

// Plaintext gRPC and raw Raft bytes on the port get no answer and change
// nothing on any manager.
func TestPlaintextRefused(t *testing.T) {
	tc := StartTestManagers(t, 3)
	leader := tc.WaitForLeader(10 * time.Second)
	checkWrites := watchWrites(t, leader)
	for _, m := range tc.Managers {
		for name, payload := range map[string][]byte{
			"HTTP/2 preface": []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
			// The old Raft prefix byte followed by an AppendEntries-like
			// frame with a high term.
			"raw Raft": append([]byte{0xAF, 0x00}, []byte("\x81\xa4Term\xcf\x00\x00\x00\x00\x00\x00\xff\xff")...),
		} {
			c, err := net.DialTimeout("tcp", m.Addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = c.Write(payload)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(make([]byte, 64))
			c.Close()
			if n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
				t.Errorf("%s to %s: read %d bytes, %v; want the connection closed without an answer", name, m.Addr, n, err)
			}
		}
	}
	// A TLS client that offers Raft without a manager certificate (none,
	// or a worker's) is cut off as well.
	checkWrites()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, wcreds, err := tc.JoinNode(ctx, leader.Addr, api.NodeRole_NODE_ROLE_WORKER, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	checkWrites = watchWrites(t, leader)
	for name, cfg := range map[string]*tls.Config{
		"anonymous": {InsecureSkipVerify: true, NextProtos: []string{raft.ALPNRaft}},
		"worker":    wcreds.ClientConfig(ca.ExpectManager, raft.ALPNRaft),
	} {
		c, err := tls.Dial("tcp", leader.Addr, cfg)
		if err == nil {
			_, _ = c.Write([]byte{0x00})
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		// Cut off: EOF or a reset at once. Kept, the Raft transport would
		// wait for the rest of the message and the read time out.
		var ne net.Error
		if err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("a Raft connection with %s credentials was kept open: %v", name, err)
		}
	}
	if got := tc.WaitForLeader(5 * time.Second); got != leader {
		t.Errorf("the leader changed (%s → %s)", leader.NodeID(), got.NodeID())
	}
	checkWrites()
	waitFor(t, 5*time.Second, "managers in step", func() error { return sameHashes(tc) })
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// A removed node's certificate is refused as soon as the removal
// commits, and its open streams are cut.
func TestRemovedNodeCutOff(t *testing.T) {
	tc := StartTestManagers(t, 1)
	leader := tc.WaitForLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, creds, err := tc.JoinNode(ctx, leader.Addr, api.NodeRole_NODE_ROLE_WORKER, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := Dialer(creds, ca.ExpectManager)(leader.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var stream api.Dispatcher_AssignmentsClient
	waitFor(t, 5*time.Second, "assignments stream", func() error {
		s, err := api.NewDispatcherClient(conn).Assignments(ctx, &api.AssignmentsRequest{NodeId: w})
		if err != nil {
			return err
		}
		if _, err := s.Recv(); err != nil {
			return err
		}
		stream = s
		return nil
	})
	start := time.Now()
	waitFor(t, 5*time.Second, "remove node", func() error {
		_, err := api.NewControlClient(client(t, leader)).RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: w, Force: true})
		return err
	})
	// The very next call is refused: the removal is in the store the
	// authorizer reads.
	_, err = api.NewDispatcherClient(conn).Heartbeat(ctx, &api.HeartbeatRequest{NodeId: w})
	if !api.IsNodeRemoved(err) || status.Code(err) != codes.PermissionDenied {
		t.Fatalf("heartbeat right after removal: %v", err)
	}
	// The open stream ends (ctx bounds the wait).
	for {
		if _, err := stream.Recv(); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the removed node's stream was not cut: %v", err)
			}
			break
		}
	}
	t.Logf("stream cut %s after node rm was called", time.Since(start))
}

// recordingMembership counts the Join calls it receives.
type recordingMembership struct {
	api.UnimplementedMembershipServer
	joins chan *api.JoinRequest
}

func (r *recordingMembership) Join(_ context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	r.joins <- req
	return nil, status.Error(codes.PermissionDenied, "recorded")
}

// A node given a token whose CA digest does not match the manager's
// refuses the manager during the TLS handshake: the Join, with its token
// secret, is never sent.
func TestJoinRefusesAnotherCA(t *testing.T) {
	tc := StartTestManagers(t, 1)
	tc.WaitForLeader(10 * time.Second)
	impostor, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The impostor sends its root in its chain, as a real manager does.
	key, csr, _ := ca.NewKeyAndCSR("m1")
	leaf, _ := impostor.Sign(csr, ca.Identity{ClusterID: tc.Cluster.Id, ID: "m1", Role: ca.RoleManager}, time.Hour, time.Now())
	creds, err := ca.NewCredentials(append(leaf, impostor.CertPEM...), key, impostor.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTransport(ln, nil, creds, func() authz.Membership { return nil })
	rec := &recordingMembership{joins: make(chan *api.JoinRequest, 10)}
	api.RegisterMembershipServer(tr.GRPC, rec)
	go tr.GRPC.Serve(tr.Mux.GRPCListener())
	t.Cleanup(tr.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err = JoinCluster(ctx, ln.Addr().String(), tc.Tokens.Worker, "", &api.JoinRequest{Addr: "127.0.0.1:9"})
	if !errors.Is(err, ca.ErrDigestMismatch) {
		t.Fatalf("join an impostor: %v, want ErrDigestMismatch", err)
	}
	select {
	case req := <-rec.joins:
		t.Fatalf("the impostor received a join with token %q", req.Token)
	default:
	}
	// The same impostor given its own digest is reached: the check above
	// is what kept the secret.
	own := "SHOAL-1-" + impostor.Digest() + tc.Tokens.Worker[len("SHOAL-1-")+52:]
	if _, _, err := JoinCluster(ctx, ln.Addr().String(), own, "", &api.JoinRequest{Addr: "127.0.0.1:9"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("join with the impostor's own digest: %v", err)
	}
	if len(rec.joins) != 1 {
		t.Fatalf("%d joins recorded, want 1", len(rec.joins))
	}
}

// dialAs connects to addr with creds, closed when the test ends.
func dialAs(t *testing.T, creds *ca.Credentials, addr string) *grpc.ClientConn {
	t.Helper()
	c, err := Dialer(creds, ca.ExpectManager)(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
