package controlapi

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

const (
	manager = api.NodeRole_NODE_ROLE_MANAGER
	worker  = api.NodeRole_NODE_ROLE_WORKER
	ready   = api.NodeState_NODE_STATE_READY
	down    = api.NodeState_NODE_STATE_DOWN

	reachable   = api.Reachability_REACHABILITY_REACHABLE
	unreachable = api.Reachability_REACHABILITY_UNREACHABLE
)

func seedNodes(t *testing.T, st *store.MemoryStore, nodes ...*api.Node) {
	t.Helper()
	seed(t, st, func(tx store.Tx) error {
		for _, n := range nodes {
			if err := tx.CreateNode(n); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestGetNode(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	named := node("xyz789", "host3", worker, ready)
	named.Spec.Annotations = &api.Annotations{Name: "edge"}
	seedNodes(t, st,
		node("abc123", "host1", manager, ready),
		node("abd456", "host2", worker, ready),
		named,
		node("qqq111", "twin", worker, ready),
		node("qqq222", "twin", worker, ready),
	)
	for ref, want := range map[string]string{
		"abc123": "abc123",
		"abd":    "abd456",
		"host2":  "abd456",
		"edge":   "xyz789", // the spec name wins over the hostname
		"xyz":    "xyz789",
	} {
		got, err := srv.GetNode(ctx, &api.GetNodeRequest{NodeId: ref})
		must(t, err)
		if got.GetNode().GetId() != want {
			t.Errorf("GetNode(%s) = %s, want %s", ref, got.GetNode().GetId(), want)
		}
	}
	_, err := srv.GetNode(ctx, &api.GetNodeRequest{NodeId: "ab"})
	wantCode(t, err, codes.InvalidArgument,
		"node prefix ab is ambiguous: abc123 (host1), abd456 (host2); use more characters")
	_, err = srv.GetNode(ctx, &api.GetNodeRequest{NodeId: "twin"})
	wantCode(t, err, codes.InvalidArgument, "node name twin is ambiguous: qqq111 (twin), qqq222 (twin); use the node ID")
	_, err = srv.GetNode(ctx, &api.GetNodeRequest{NodeId: "host3"})
	wantCode(t, err, codes.NotFound, "node host3 not found")
}

func TestListNodes(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	w1 := node("w1", "w1", worker, ready)
	w1.Spec.Annotations = &api.Annotations{Labels: map[string]string{"zone": "eu", "ssd": ""}}
	w2 := node("w2", "w2", worker, ready)
	w2.Spec.Annotations = &api.Annotations{Labels: map[string]string{"zone": "us"}}
	m1 := node("m1", "m1", manager, ready)
	m1.Spec.Annotations = &api.Annotations{Labels: map[string]string{"zone": "eu"}}
	seedNodes(t, st, w1, w2, m1)

	ids := func(req *api.ListNodesRequest) []string {
		t.Helper()
		resp, err := srv.ListNodes(ctx, req)
		must(t, err)
		var out []string
		for _, n := range resp.GetNodes() {
			out = append(out, n.GetId())
		}
		return out
	}
	for _, tc := range []struct {
		req  *api.ListNodesRequest
		want []string
	}{
		{&api.ListNodesRequest{}, []string{"m1", "w1", "w2"}},
		{&api.ListNodesRequest{Roles: []api.NodeRole{worker}}, []string{"w1", "w2"}},
		{&api.ListNodesRequest{Roles: []api.NodeRole{manager, worker}}, []string{"m1", "w1", "w2"}},
		{&api.ListNodesRequest{Labels: []string{"zone=eu"}}, []string{"m1", "w1"}},
		{&api.ListNodesRequest{Labels: []string{"ssd"}}, []string{"w1"}},
		{&api.ListNodesRequest{Labels: []string{"zone=eu"}, Roles: []api.NodeRole{worker}}, []string{"w1"}},
		{&api.ListNodesRequest{Labels: []string{"zone=asia"}}, nil},
	} {
		got := ids(tc.req)
		if len(got) != len(tc.want) {
			t.Errorf("ListNodes(%v) = %v, want %v", tc.req, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ListNodes(%v) = %v, want %v", tc.req, got, tc.want)
				break
			}
		}
	}
	_, err := srv.ListNodes(ctx, &api.ListNodesRequest{Roles: []api.NodeRole{7}})
	wantCode(t, err, codes.InvalidArgument, "roles[0]")
}

func TestUpdateNode(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	seedNodes(t, st, node("w1", "host1", worker, ready))
	n := getNode(st, "w1")

	spec := &api.NodeSpec{
		Annotations:  &api.Annotations{Labels: map[string]string{"zone": "eu"}},
		Availability: api.NodeAvailability_NODE_AVAILABILITY_DRAIN,
	}
	resp, err := srv.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: "host1", Version: n.GetMeta().GetVersion(), Spec: spec})
	must(t, err)
	if !proto.Equal(resp.GetNode().GetSpec(), spec) || !proto.Equal(getNode(st, "w1").GetSpec(), spec) {
		t.Fatalf("spec not stored as given: %v", resp.GetNode().GetSpec())
	}

	// Stale version, invalid spec, unknown node: nothing written.
	after := getNode(st, "w1")
	_, err = srv.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: "w1", Version: n.GetMeta().GetVersion(), Spec: &api.NodeSpec{}})
	wantCode(t, err, codes.FailedPrecondition, "update out of sequence")
	_, err = srv.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: "w1", Version: after.GetMeta().GetVersion(),
		Spec: &api.NodeSpec{Availability: 42}})
	wantCode(t, err, codes.InvalidArgument, "availability", "NODE_AVAILABILITY_DRAIN")
	_, err = srv.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: "w1", Version: after.GetMeta().GetVersion(),
		Spec: &api.NodeSpec{Annotations: &api.Annotations{Labels: map[string]string{"": "x"}}}})
	wantCode(t, err, codes.InvalidArgument, "annotations.labels")
	_, err = srv.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: "w1", Version: after.GetMeta().GetVersion()})
	wantCode(t, err, codes.InvalidArgument, "spec")
	_, err = srv.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: "nosuch", Version: 1, Spec: &api.NodeSpec{}})
	wantCode(t, err, codes.NotFound, "node nosuch not found")
	if !proto.Equal(getNode(st, "w1"), after) {
		t.Fatal("a refused update wrote")
	}

	// Promotion is written as asked; the role is for another component.
	resp, err = srv.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: "w1", Version: after.GetMeta().GetVersion(),
		Spec: &api.NodeSpec{DesiredRole: manager}})
	must(t, err)
	if got := resp.GetNode(); got.GetSpec().GetDesiredRole() != manager || got.GetRole() != worker {
		t.Fatalf("after promotion: %v", got)
	}
	// Cancelling a promotion that has not happened is always fine.
	resp, err = srv.UpdateNode(ctx, &api.UpdateNodeRequest{NodeId: "w1", Version: resp.GetNode().GetMeta().GetVersion(),
		Spec: &api.NodeSpec{DesiredRole: worker}})
	must(t, err)
}

func members(states map[string]api.Reachability) []*api.RaftMember {
	var out []*api.RaftMember
	for _, id := range []string{"m1", "m2", "m3", "m4", "m5"} {
		if r, ok := states[id]; ok {
			out = append(out, &api.RaftMember{NodeId: id, Reachability: r, Leader: id == "m1"})
		}
	}
	return out
}

func TestDemotion(t *testing.T) {
	demote := func(t *testing.T, srv *Server, st *store.MemoryStore, id string) error {
		t.Helper()
		n := getNode(st, id)
		spec := proto.Clone(n.GetSpec()).(*api.NodeSpec)
		spec.DesiredRole = worker
		_, err := srv.UpdateNode(context.Background(), &api.UpdateNodeRequest{NodeId: id, Version: n.GetMeta().GetVersion(), Spec: spec})
		return err
	}
	managers := func(t *testing.T, st *store.MemoryStore, ids ...string) {
		for _, id := range ids {
			seedNodes(t, st, node(id, "host-"+id, manager, ready))
		}
	}

	t.Run("last manager", func(t *testing.T) {
		srv, st, r := newTestServer(t)
		managers(t, st, "m1")
		r.members = members(map[string]api.Reachability{"m1": reachable})
		err := demote(t, srv, st, "m1")
		wantCode(t, err, codes.FailedPrecondition, "last manager", "promote another node first")
		if getNode(st, "m1").GetSpec().GetDesiredRole() != manager {
			t.Fatal("a refused demotion wrote")
		}
	})
	t.Run("last manager without raft", func(t *testing.T) {
		srv, st, _ := newTestServer(t)
		srv.raft = nil
		managers(t, st, "m1")
		wantCode(t, demote(t, srv, st, "m1"), codes.FailedPrecondition, "last manager")
	})
	t.Run("three reachable", func(t *testing.T) {
		srv, st, r := newTestServer(t)
		managers(t, st, "m1", "m2", "m3")
		r.members = members(map[string]api.Reachability{"m1": reachable, "m2": reachable, "m3": reachable})
		must(t, demote(t, srv, st, "m3"))
		n := getNode(st, "m3")
		if n.GetSpec().GetDesiredRole() != worker || n.GetRole() != manager {
			t.Fatalf("demotion not written as asked: %v", n)
		}
		// m3 is on its way out: of m1 and m2, one more can go.
		must(t, demote(t, srv, st, "m2"))
		wantCode(t, demote(t, srv, st, "m1"), codes.FailedPrecondition, "last manager")
	})
	t.Run("three, one unreachable", func(t *testing.T) {
		srv, st, r := newTestServer(t)
		managers(t, st, "m1", "m2", "m3")
		r.members = members(map[string]api.Reachability{"m1": reachable, "m2": reachable, "m3": unreachable})
		err := demote(t, srv, st, "m2")
		wantCode(t, err, codes.FailedPrecondition, "cannot demote node m2", "quorum", "unreachable")
		if getNode(st, "m2").GetSpec().GetDesiredRole() != manager {
			t.Fatal("a refused demotion wrote")
		}
		// Demoting the unreachable one leaves two reachable of two.
		must(t, demote(t, srv, st, "m3"))
	})
	t.Run("two reachable", func(t *testing.T) {
		srv, st, r := newTestServer(t)
		managers(t, st, "m1", "m2")
		r.members = members(map[string]api.Reachability{"m1": reachable, "m2": reachable})
		must(t, demote(t, srv, st, "m2"))
	})
	t.Run("five, two unreachable", func(t *testing.T) {
		srv, st, r := newTestServer(t)
		managers(t, st, "m1", "m2", "m3", "m4", "m5")
		r.members = members(map[string]api.Reachability{
			"m1": reachable, "m2": reachable, "m3": reachable, "m4": unreachable, "m5": unreachable,
		})
		wantCode(t, demote(t, srv, st, "m3"), codes.FailedPrecondition, "quorum")
		must(t, demote(t, srv, st, "m5"))
	})
	t.Run("unknown reachability counts as reachable", func(t *testing.T) {
		srv, st, r := newTestServer(t)
		managers(t, st, "m1", "m2", "m3")
		r.members = members(map[string]api.Reachability{
			"m1": api.Reachability_REACHABILITY_UNKNOWN, "m2": reachable, "m3": api.Reachability_REACHABILITY_UNKNOWN,
		})
		must(t, demote(t, srv, st, "m3"))
	})
	t.Run("manager without a spec is a manager", func(t *testing.T) {
		srv, st, _ := newTestServer(t)
		srv.raft = nil
		m := node("m1", "host-m1", manager, ready)
		m.Spec = nil
		seedNodes(t, st, m)
		n := getNode(st, "m1")
		_, err := srv.UpdateNode(context.Background(), &api.UpdateNodeRequest{NodeId: "m1", Version: n.GetMeta().GetVersion(),
			Spec: &api.NodeSpec{Availability: api.NodeAvailability_NODE_AVAILABILITY_PAUSE}})
		wantCode(t, err, codes.FailedPrecondition, "last manager")
	})
	t.Run("label change of a manager is not a demotion", func(t *testing.T) {
		srv, st, r := newTestServer(t)
		managers(t, st, "m1")
		r.members = members(map[string]api.Reachability{"m1": reachable})
		n := getNode(st, "m1")
		_, err := srv.UpdateNode(context.Background(), &api.UpdateNodeRequest{NodeId: "m1", Version: n.GetMeta().GetVersion(),
			Spec: &api.NodeSpec{DesiredRole: manager, Annotations: &api.Annotations{Labels: map[string]string{"a": "b"}}}})
		must(t, err)
	})
}

func TestRemoveNode(t *testing.T) {
	srv, st, _ := newTestServer(t)
	ctx := context.Background()
	promoting := node("w3", "host3", worker, down)
	promoting.Spec.DesiredRole = manager
	seedNodes(t, st,
		node("m1", "mgr", manager, ready),
		node("w1", "host1", worker, ready),
		node("w2", "host2", worker, down),
		promoting,
	)
	seed(t, st, func(tx store.Tx) error {
		for _, tk := range []*api.Task{
			task("t1", "s1", "w2", api.TaskState_TASK_STATE_RUNNING, api.TaskState_TASK_STATE_RUNNING),
			task("t2", "s1", "w2", api.TaskState_TASK_STATE_REMOVE, api.TaskState_TASK_STATE_RUNNING),
			task("t3", "s1", "w1", api.TaskState_TASK_STATE_RUNNING, api.TaskState_TASK_STATE_RUNNING),
			task("t4", "s1", "w2", api.TaskState_TASK_STATE_COMPLETE, api.TaskState_TASK_STATE_COMPLETE),
		} {
			if err := tx.CreateTask(tk); err != nil {
				return err
			}
		}
		return nil
	})

	_, err := srv.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: "mgr", Force: true})
	wantCode(t, err, codes.FailedPrecondition, "node mgr is a manager: demote it first with `shoal node demote mgr`")
	_, err = srv.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: "w3", Force: true})
	wantCode(t, err, codes.FailedPrecondition, "node w3 is a manager")
	_, err = srv.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: "host1"})
	wantCode(t, err, codes.FailedPrecondition, "node host1 is not down; stop it first or use --force")
	_, err = srv.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: "nosuch"})
	wantCode(t, err, codes.NotFound, "node nosuch not found")
	for _, id := range []string{"m1", "w1", "w3"} {
		if getNode(st, id) == nil {
			t.Fatalf("a refused removal removed %s", id)
		}
	}

	// A down worker goes, and its tasks are shut down.
	_, err = srv.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: "host2"})
	must(t, err)
	if getNode(st, "w2") != nil {
		t.Fatal("w2 is still there")
	}
	for id, want := range map[string]api.TaskState{
		"t1": api.TaskState_TASK_STATE_SHUTDOWN,
		"t2": api.TaskState_TASK_STATE_REMOVE,  // already beyond SHUTDOWN
		"t3": api.TaskState_TASK_STATE_RUNNING, // another node's
		"t4": api.TaskState_TASK_STATE_SHUTDOWN,
	} {
		if got := getTask(st, id).GetDesiredState(); got != want {
			t.Errorf("task %s desired state %v, want %v", id, got, want)
		}
	}

	// A ready worker goes with force.
	_, err = srv.RemoveNode(ctx, &api.RemoveNodeRequest{NodeId: "w1", Force: true})
	must(t, err)
	if getNode(st, "w1") != nil {
		t.Fatal("w1 is still there")
	}
	if got := getTask(st, "t3").GetDesiredState(); got != api.TaskState_TASK_STATE_SHUTDOWN {
		t.Fatalf("t3 desired state %v", got)
	}
}
