package manager

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// client connects to m with m's own (manager) certificate.
func client(t *testing.T, m *TestManager) *grpc.ClientConn {
	t.Helper()
	c, err := m.Dial(m.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx5() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
}

func spec(name string) *api.ServiceSpec {
	return &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: "registry.test:5000/app:v1"}},
		Mode:        &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 3}}},
	}
}

func followersOf(tc *TestManagers) []*TestManager {
	var out []*TestManager
	for _, m := range tc.Managers {
		if !m.raft.IsLeader() {
			out = append(out, m)
		}
	}
	return out
}

func TestWritesThroughFollowersAreReadEverywhere(t *testing.T) {
	tc := StartTestManagers(t, 3)
	tc.WaitForLeader(10 * time.Second)
	fs := followersOf(tc)
	for i := 0; i < 5; i++ {
		ctx, cancel := ctx5()
		_, err := api.NewControlClient(client(t, fs[0])).CreateService(ctx, &api.CreateServiceRequest{Spec: spec(fmt.Sprintf("s%d", i))})
		cancel()
		if err != nil {
			t.Fatalf("create via follower: %v", err)
		}
		// Read at once through the other follower: reads are current.
		ctx, cancel = ctx5()
		resp, err := api.NewControlClient(client(t, fs[1])).GetService(ctx, &api.GetServiceRequest{ServiceId: fmt.Sprintf("s%d", i)})
		cancel()
		if err != nil || resp.Service.Spec.Annotations.Name != fmt.Sprintf("s%d", i) {
			t.Fatalf("read via other follower right after the write: %v", err)
		}
	}
	// Invalid input is refused with the field named, and nothing is written.
	bad := spec("bad")
	bad.Task.Container.StopGracePeriod = new(int64)
	*bad.Task.Container.StopGracePeriod = -1
	ctx, cancel := ctx5()
	defer cancel()
	_, err := api.NewControlClient(client(t, fs[0])).CreateService(ctx, &api.CreateServiceRequest{Spec: bad})
	if status.Code(err) != codes.InvalidArgument || !containsAll(status.Convert(err).Message(), "stop_grace_period") {
		t.Fatalf("invalid spec: %v", err)
	}
	// Nothing was written (other writes, such as the managers' status,
	// may land meanwhile: look for the service itself).
	var n int
	tc.Managers[0].Store().View(func(tx store.ReadTx) { n = len(tx.FindServices(store.All())) })
	if n != 5 {
		t.Fatalf("%d services after the refused create, want 5", n)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !contains(s, p) {
			return false
		}
	}
	return true
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}

func TestJoinTokens(t *testing.T) {
	tc := StartTestManagers(t, 1)
	leader := tc.WaitForLeader(10 * time.Second)
	ctx, cancel := ctx5()
	defer cancel()
	var lastCreds *ca.Credentials
	join := func(token string) (*api.JoinResponse, error) {
		resp, creds, err := JoinCluster(ctx, leader.Addr, token, "", &api.JoinRequest{Addr: "127.0.0.1:1", Description: &api.NodeDescription{Hostname: "worker-1"}})
		if err == nil {
			lastCreds = creds
		}
		return resp, err
	}
	good := tc.Tokens.Worker
	if _, err := join(good[:len(good)-40] + "abcdefghijklmnopqrstuvwxyz234567abcdefgh"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("wrong secret: got %v, want PermissionDenied", err)
	}
	if _, err := join("nonsense"); !errors.Is(err, ca.ErrMalformedToken) {
		t.Fatalf("malformed token: got %v, want ErrMalformedToken", err)
	}
	resp, err := join(good)
	if err != nil || resp.Role != api.NodeRole_NODE_ROLE_WORKER || resp.ClusterId != tc.Cluster.Id || resp.NodeId == "" {
		t.Fatalf("worker join: %v %v", resp, err)
	}
	joined, joinedCreds := resp.NodeId, lastCreds
	again, err := join(good)
	if err != nil || again.NodeId == resp.NodeId {
		t.Fatalf("a second join must get a new node ID: %v %v", again, err)
	}
	// Rotation: the old worker token stops working at once; the manager
	// token is unchanged.
	cc := api.NewControlClient(client(t, leader))
	info, err := cc.GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster.JoinTokens.GetWorker() != good || info.Cluster.GetRootCa().GetKey() != nil || info.Cluster.GossipKeys != nil {
		t.Fatalf("cluster info: tokens %v, key shown %v, gossip keys shown %v", info.Cluster.JoinTokens, info.Cluster.GetRootCa().GetKey() != nil, info.Cluster.GossipKeys != nil)
	}
	rot, err := cc.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: info.Cluster.Id, Version: info.Cluster.Meta.Version, RotateWorkerToken: true})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if rot.Cluster.JoinTokens.Worker == good || rot.Cluster.JoinTokens.Manager != tc.Tokens.Manager {
		t.Fatalf("after rotating the worker token: %v", rot.Cluster.JoinTokens)
	}
	if _, err := join(good); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("rotated-out token: got %v, want PermissionDenied", err)
	}
	// A node that joined with the old token keeps working.
	if _, err := api.NewDispatcherClient(dialAs(t, joinedCreds, leader.Addr)).Heartbeat(ctx, &api.HeartbeatRequest{NodeId: joined}); err != nil {
		t.Fatalf("a node joined with the rotated token: %v", err)
	}
	if _, err := join(rot.Cluster.JoinTokens.Worker); err != nil {
		t.Fatalf("new token: %v", err)
	}
}

func TestHeartbeatsMarkNodesReadyThenDown(t *testing.T) {
	tc := StartTestManagers(t, 1)
	leader := tc.WaitForLeader(10 * time.Second)
	ctx, cancel := ctx5()
	defer cancel()
	// The cluster spec sets the heartbeat period.
	cc := api.NewControlClient(client(t, leader))
	info, err := cc.GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	period := int64(100 * time.Millisecond)
	cs := info.Cluster.Spec
	cs.HeartbeatPeriod = &period
	if _, err := cc.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: info.Cluster.Id, Version: info.Cluster.Meta.Version, Spec: cs}); err != nil {
		t.Fatal(err)
	}
	w1, w1creds, err := tc.JoinNode(ctx, leader.Addr, api.NodeRole_NODE_ROLE_WORKER, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	wc, err := Dialer(w1creds, ca.ExpectManager)(leader.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	dc := api.NewDispatcherClient(wc)
	resp, err := dc.Heartbeat(ctx, &api.HeartbeatRequest{NodeId: w1, Addr: "127.0.0.1:9"})
	if err != nil || resp.Period != int64(100*time.Millisecond) || len(resp.Managers) != 1 {
		t.Fatalf("heartbeat: %v %v", resp, err)
	}
	nodeState := func() api.NodeState {
		var st api.NodeState
		leader.Store().View(func(tx store.ReadTx) { st = tx.GetNode(w1).GetStatus().GetState() })
		return st
	}
	if nodeState() != api.NodeState_NODE_STATE_READY {
		t.Fatalf("after heartbeat: %v", nodeState())
	}
	waitFor(t, 5*time.Second, "node DOWN after missed heartbeats", func() error {
		if s := nodeState(); s != api.NodeState_NODE_STATE_DOWN {
			return fmt.Errorf("state %v", s)
		}
		return nil
	})
	if _, err := dc.Heartbeat(ctx, &api.HeartbeatRequest{NodeId: w1}); err != nil {
		t.Fatal(err)
	}
	if nodeState() != api.NodeState_NODE_STATE_READY {
		t.Fatalf("back after a heartbeat: %v", nodeState())
	}
	// A worker speaks only for itself.
	if _, err := dc.Heartbeat(ctx, &api.HeartbeatRequest{NodeId: "ghost"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("heartbeat naming another node: got %v, want PermissionDenied", err)
	}
	// A manager forwarding for an unknown node gets NotFound.
	if _, err := api.NewDispatcherClient(client(t, leader)).Heartbeat(ctx, &api.HeartbeatRequest{NodeId: "ghost"}); status.Code(err) != codes.NotFound {
		t.Fatalf("heartbeat of unknown node: got %v, want NotFound", err)
	}
}

func TestPromoteAndDemote(t *testing.T) {
	tc := StartTestManagers(t, 3)
	leader := tc.WaitForLeader(10 * time.Second)
	cc := api.NewControlClient(client(t, leader))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// A worker whose manager role is up but not yet in Raft.
	ln := tc.listen()
	dir := t.TempDir()
	jr, wcreds, err := JoinCluster(ctx, leader.Addr, tc.Tokens.Worker, dir, &api.JoinRequest{Addr: ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	w := tc.startOn(ln, dir, jr.NodeId, wcreds, false, nil)
	setRole := func(id string, role api.NodeRole) {
		t.Helper()
		waitFor(t, 5*time.Second, "update node role", func() error {
			n, err := cc.GetNode(ctx, &api.GetNodeRequest{NodeId: id})
			if err != nil {
				return err
			}
			n.Node.Spec.DesiredRole = role
			_, err = cc.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: id, Version: n.Node.Meta.Version, Spec: n.Node.Spec})
			return err
		})
	}
	setRole(w.NodeID(), api.NodeRole_NODE_ROLE_MANAGER)
	// As the daemon does: a promoted node first gets a manager certificate.
	wconn, err := Dialer(wcreds, ca.ExpectManager)(leader.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer wconn.Close()
	key, csr, err := ca.NewKeyAndCSR("")
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := api.NewNodeCAClient(wconn).RenewCertificate(ctx, &api.RenewCertificateRequest{Csr: csr})
	if err != nil || renewed.Role != api.NodeRole_NODE_ROLE_MANAGER {
		t.Fatalf("renew after promotion: %v %v", renewed, err)
	}
	if err := wcreds.Update(renewed.Certificate, key, renewed.RootCa); err != nil || wcreds.Identity().Role != ca.RoleManager {
		t.Fatalf("install the manager certificate: %v (role %s)", err, wcreds.Identity().Role)
	}
	dc := api.NewDispatcherClient(client(t, leader))
	resp, err := dc.Heartbeat(ctx, &api.HeartbeatRequest{NodeId: w.NodeID(), Addr: w.Addr, Role: api.NodeRole_NODE_ROLE_MANAGER})
	if err != nil || resp.DesiredRole != api.NodeRole_NODE_ROLE_MANAGER {
		t.Fatalf("heartbeat after promotion: %v %v", resp, err)
	}
	waitFor(t, 10*time.Second, "promoted node in raft with role manager", func() error {
		n, err := cc.GetNode(ctx, &api.GetNodeRequest{NodeId: w.NodeID()})
		if err != nil {
			return err
		}
		if len(leader.raft.Members()) != 4 || n.Node.Role != api.NodeRole_NODE_ROLE_MANAGER || n.Node.ManagerStatus == nil {
			return fmt.Errorf("%d members, role %v", len(leader.raft.Members()), n.Node.Role)
		}
		return nil
	})
	// Demote a follower: it leaves the Raft group and becomes a worker.
	victim := followersOf(tc)[0]
	setRole(victim.NodeID(), api.NodeRole_NODE_ROLE_WORKER)
	waitFor(t, 10*time.Second, "demoted node out of raft", func() error {
		l := tc.WaitForLeader(5 * time.Second)
		n, err := api.NewControlClient(client(t, l)).GetNode(ctx, &api.GetNodeRequest{NodeId: victim.NodeID()})
		if err != nil {
			return err
		}
		if l.raft.IsMember(victim.NodeID()) || n.Node.Role != api.NodeRole_NODE_ROLE_WORKER {
			return fmt.Errorf("still member=%v role=%v", l.raft.IsMember(victim.NodeID()), n.Node.Role)
		}
		return nil
	})
}

func TestStaleReadsAreFlaggedAndWritesFailFast(t *testing.T) {
	tc := StartTestManagers(t, 3)
	tc.WaitForLeader(10 * time.Second)
	survivor := followersOf(tc)[0]
	for _, m := range tc.Managers {
		if m != survivor {
			m.Stop()
		}
	}
	cc := api.NewControlClient(client(t, survivor))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := cc.CreateService(ctx, &api.CreateServiceRequest{Spec: spec("lost")})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("write without quorum: got %v, want Unavailable", err)
	}
	t.Logf("write without quorum failed in %v: %v", time.Since(start), err)
	var hdr metadata.MD
	if _, err := cc.ListServices(ctx, &api.ListServicesRequest{}, grpc.Header(&hdr)); err != nil {
		t.Fatalf("read without quorum: %v", err)
	}
	if len(hdr.Get(StaleHeader)) == 0 {
		t.Fatal("read without quorum is not flagged stale")
	}
}

// A manager whose advertised address cannot be reached through Raft is
// not made a voter: the join fails with a message naming the address and
// the cluster keeps its quorum.
func TestJoinWithUnreachableAddressKeepsQuorum(t *testing.T) {
	old := catchUpTimeout
	catchUpTimeout = 2 * time.Second
	t.Cleanup(func() { catchUpTimeout = old })
	tc := StartTestManagers(t, 1)
	leader := tc.WaitForLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, ghost, err := JoinCluster(ctx, leader.Addr, tc.Tokens.Manager, "", &api.JoinRequest{Addr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := Dialer(ghost, ca.ExpectManager)(leader.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	_, err = api.NewMembershipClient(gc).JoinRaft(ctx, &api.JoinRaftRequest{Addr: "127.0.0.1:1"})
	if status.Code(err) != codes.FailedPrecondition || !containsAll(status.Convert(err).Message(), "127.0.0.1:1", "advertise-addr") {
		t.Fatalf("join from an unreachable address: %v", err)
	}
	if n := len(leader.raft.Members()); n != 1 {
		t.Fatalf("%d raft members after the failed join, want 1", n)
	}
	if _, err := api.NewControlClient(client(t, leader)).CreateService(ctx, &api.CreateServiceRequest{Spec: spec("still-writable")}); err != nil {
		t.Fatalf("write after the failed join: %v", err)
	}
}
