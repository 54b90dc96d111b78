package controlapi

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// seedCluster stores a cluster with a root CA and gossip key, and
// returns it as the API shows it (tokens computed, secrets redacted).
func seedCluster(t *testing.T, st *store.MemoryStore) *api.Cluster {
	t.Helper()
	root, err := ca.NewRootCA(time.Now())
	must(t, err)
	rc, err := NewClusterCA(root)
	must(t, err)
	seed(t, st, func(tx store.Tx) error {
		return tx.CreateCluster(&api.Cluster{
			Id:         "c1",
			Spec:       &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}},
			RootCa:     rc,
			GossipKeys: [][]byte{NewGossipKey()},
		})
	})
	var c *api.Cluster
	st.View(func(tx store.ReadTx) { c = tx.GetCluster("c1") })
	shown, err := redactCluster(c, true)
	must(t, err)
	return shown
}

func TestGetClusterInfo(t *testing.T) {
	srv, st, r := newTestServer(t)
	ctx := context.Background()

	resp, err := srv.GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	must(t, err)
	if resp.GetCluster() != nil || resp.GetNodes() != 0 {
		t.Fatalf("empty store: %v", resp)
	}

	c := seedCluster(t, st)
	seedNodes(t, st, node("m1", "m1", manager, ready), node("w1", "w1", worker, ready))
	_, err = srv.CreateService(ctx, &api.CreateServiceRequest{Spec: validSpec()})
	must(t, err)
	seed(t, st, func(tx store.Tx) error {
		return tx.CreateTask(task("t1", "s", "w1", api.TaskState_TASK_STATE_RUNNING, api.TaskState_TASK_STATE_RUNNING))
	})
	r.members = members(map[string]api.Reachability{"m1": reachable})

	resp, err = srv.GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	must(t, err)
	if !proto.Equal(resp.GetCluster(), c) {
		t.Errorf("cluster = %v, want %v", resp.GetCluster(), c)
	}
	if resp.GetNodeId() != "mgr1" || len(resp.GetMembers()) != 1 || !resp.GetMembers()[0].GetLeader() {
		t.Errorf("raft info: %v %v", resp.GetNodeId(), resp.GetMembers())
	}
	if resp.GetNodes() != 2 || resp.GetServices() != 1 || resp.GetTasks() != 1 {
		t.Errorf("counts: %d nodes %d services %d tasks", resp.GetNodes(), resp.GetServices(), resp.GetTasks())
	}
	if resp.GetAppliedIndex() != st.AppliedIndex() || resp.GetAppliedIndex() == 0 {
		t.Errorf("applied index %d, store at %d", resp.GetAppliedIndex(), st.AppliedIndex())
	}
}

func TestUpdateCluster(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	c := seedCluster(t, st)

	// Rotate the worker token only; no spec keeps the spec.
	resp, err := srv.UpdateCluster(ctx, &api.UpdateClusterRequest{
		ClusterId: "c1", Version: c.GetMeta().GetVersion(), RotateWorkerToken: true,
	})
	must(t, err)
	got := resp.GetCluster()
	if got.GetJoinTokens().GetWorker() == c.GetJoinTokens().GetWorker() {
		t.Fatal("worker token did not change")
	}
	if _, err := ca.ParseToken(got.GetJoinTokens().GetWorker()); err != nil {
		t.Fatal(err)
	}
	if got.GetRootCa().GetKey() != nil || got.GetRootCa().GetWorkerTokenHash() != nil || got.GetGossipKeys() != nil {
		t.Fatal("the answer shows the CA key, a token hash or the gossip keys")
	}
	if got.GetJoinTokens().GetManager() != c.GetJoinTokens().GetManager() {
		t.Fatal("manager token changed without being asked")
	}
	if !proto.Equal(got.GetSpec(), c.GetSpec()) {
		t.Fatal("spec changed without being asked")
	}

	// Rotate the manager token and set a spec; the empty ID means the cluster.
	limit := int64(3)
	spec := &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}, TaskHistoryRetentionLimit: &limit}
	resp2, err := srv.UpdateCluster(ctx, &api.UpdateClusterRequest{
		Version: got.GetMeta().GetVersion(), RotateManagerToken: true, Spec: spec,
	})
	must(t, err)
	got2 := resp2.GetCluster()
	if got2.GetJoinTokens().GetManager() == got.GetJoinTokens().GetManager() ||
		got2.GetJoinTokens().GetWorker() != got.GetJoinTokens().GetWorker() {
		t.Fatal("manager rotation wrong")
	}
	if !proto.Equal(got2.GetSpec(), spec) {
		t.Fatalf("spec not stored as given: %v", got2.GetSpec())
	}

	// Stale version, invalid spec, unknown ID: nothing written.
	_, err = srv.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: "c1", Version: got.GetMeta().GetVersion(), RotateWorkerToken: true})
	wantCode(t, err, codes.FailedPrecondition, "update out of sequence")
	neg := int64(-1)
	_, err = srv.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: "c1", Version: got2.GetMeta().GetVersion(),
		Spec: &api.ClusterSpec{HeartbeatPeriod: &neg}})
	wantCode(t, err, codes.InvalidArgument, "heartbeat_period", "negative")
	_, err = srv.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: "nosuch", Version: got2.GetMeta().GetVersion()})
	wantCode(t, err, codes.NotFound, "cluster nosuch not found")
	var now *api.Cluster
	st.View(func(tx store.ReadTx) { now = tx.GetCluster("c1") })
	if now, err = redactCluster(now, true); err != nil || !proto.Equal(now, got2) {
		t.Fatal("a refused update wrote")
	}
}

func TestUpdateClusterNotInitialized(t *testing.T) {
	srv, _, _ := newTestServer(t)
	_, err := srv.UpdateCluster(context.Background(), &api.UpdateClusterRequest{RotateWorkerToken: true})
	wantCode(t, err, codes.FailedPrecondition, "not initialized")
}
