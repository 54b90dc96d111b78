package manager

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// A gossip key rotation moves install → use → steady only when every node
// that is up reports the current step's keys, and the heartbeats hand
// each step's keys out.
func TestGossipKeyRotation(t *testing.T) {
	tc := StartTestManagers(t, 1)
	leader := tc.WaitForLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, wcreds, err := tc.JoinNode(ctx, leader.Addr, api.NodeRole_NODE_ROLE_WORKER, "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	wconn, err := Dialer(wcreds, ca.ExpectManager)(leader.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer wconn.Close()
	mconn := client(t, leader)
	// beat reports keys for node id and returns the keys it is handed.
	beat := func(id string, keys [][]byte) [][]byte {
		t.Helper()
		conn := mconn
		if id == w {
			conn = wconn
		}
		resp, err := api.NewDispatcherClient(conn).Heartbeat(ctx, &api.HeartbeatRequest{NodeId: id, GossipKeyring: api.GossipKeyringDigest(keys)})
		if err != nil {
			t.Fatalf("heartbeat of %s: %v", id, err)
		}
		return resp.GossipKeys
	}
	cluster := func() *api.Cluster {
		var c *api.Cluster
		leader.Store().View(func(tx store.ReadTx) { c = tx.FindClusters(store.All())[0] })
		return c
	}
	pass := func() {
		t.Helper()
		if err := leader.gossipKeysOnce(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	old := cluster().GossipKeys
	if len(old) != 1 || len(old[0]) != 32 {
		t.Fatalf("a new cluster has gossip keys %d", len(old))
	}
	for _, id := range []string{leader.NodeID(), w} {
		if got := beat(id, old); !equalKeys(got, old) {
			t.Fatalf("heartbeat hands out %d keys, want the cluster's", len(got))
		}
	}
	cc := api.NewControlClient(mconn)
	info, err := cc.GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: info.Cluster.Id, Version: info.Cluster.Meta.Version, RotateGossipKey: true}); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	c := cluster()
	if c.GossipKeyStep != api.GossipKeyStep_GOSSIP_KEY_STEP_INSTALL || len(c.GossipKeys) != 2 || !bytes.Equal(c.GossipKeys[0], old[0]) {
		t.Fatalf("after rotate: step %v, %d keys, old key primary %v", c.GossipKeyStep, len(c.GossipKeys), bytes.Equal(c.GossipKeys[0], old[0]))
	}
	newKey := c.GossipKeys[1]
	if _, err := cc.UpdateCluster(ctx, &api.UpdateClusterRequest{ClusterId: c.Id, Version: c.Meta.Version, RotateGossipKey: true}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("a second rotation during one: %v, want FailedPrecondition", err)
	}
	install := beat(leader.NodeID(), old)
	beat(leader.NodeID(), install)
	beat(w, old) // the worker has not installed the new key yet
	pass()
	if s := cluster().GossipKeyStep; s != api.GossipKeyStep_GOSSIP_KEY_STEP_INSTALL {
		t.Fatalf("moved on to %v while a node lacks the new key", s)
	}
	beat(w, install)
	pass()
	c = cluster()
	if c.GossipKeyStep != api.GossipKeyStep_GOSSIP_KEY_STEP_USE || !bytes.Equal(c.GossipKeys[0], newKey) || !bytes.Equal(c.GossipKeys[1], old[0]) {
		t.Fatalf("after install: %v", c.GossipKeyStep)
	}
	use := beat(w, install)
	beat(w, use)
	pass()
	if s := cluster().GossipKeyStep; s != api.GossipKeyStep_GOSSIP_KEY_STEP_USE {
		t.Fatalf("moved on to %v while the manager still uses the old key", s)
	}
	beat(leader.NodeID(), use)
	pass()
	c = cluster()
	if c.GossipKeyStep != api.GossipKeyStep_GOSSIP_KEY_STEP_STEADY || len(c.GossipKeys) != 1 || !bytes.Equal(c.GossipKeys[0], newKey) || c.GossipKeyChanged == 0 {
		t.Fatalf("after use: step %v, %d keys", c.GossipKeyStep, len(c.GossipKeys))
	}
	// The leader starts the next rotation by itself after the interval.
	if err := leader.gossipKeysOnce(ctx, time.Now().Add(DefaultGossipKeyInterval+time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s := cluster().GossipKeyStep; s != api.GossipKeyStep_GOSSIP_KEY_STEP_INSTALL {
		t.Fatalf("no rotation after the interval: %v", s)
	}
}

func equalKeys(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
