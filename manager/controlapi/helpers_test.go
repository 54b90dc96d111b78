package controlapi

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// fakeRaft is the RaftInfo seam: a fixed configuration.
type fakeRaft struct {
	members []*api.RaftMember
	id      string
}

func (f *fakeRaft) Members() []*api.RaftMember { return f.members }
func (f *fakeRaft) NodeID() string             { return f.id }

// newTestServer returns a server on a real store that applies writes
// locally.
func newTestServer(t *testing.T) (*Server, *store.MemoryStore, *fakeRaft) {
	t.Helper()
	st := store.New(nil)
	st.SetProposer(store.NewLocalProposer(st))
	r := &fakeRaft{id: "mgr1"}
	// The networks the test specs attach to, with IDs equal to their
	// names so that resolving a target leaves the spec as written.
	seed(t, st, func(tx store.Tx) error {
		for i, name := range []string{"app", "db"} {
			if err := tx.CreateNetwork(&api.Network{Id: name, Vni: uint32(4096 + i),
				Spec: &api.NetworkSpec{Annotations: &api.Annotations{Name: name}, Driver: DriverOverlay}}); err != nil {
				return err
			}
		}
		return nil
	})
	return NewServer(st, r), st, r
}

// seed writes objects directly to the store.
func seed(t *testing.T, st *store.MemoryStore, fn func(tx store.Tx) error) {
	t.Helper()
	if err := st.Update(context.Background(), fn); err != nil {
		t.Fatalf("seeding the store: %v", err)
	}
}

// wantCode fails unless err is a status with the code and a message
// containing every want.
func wantCode(t *testing.T, err error, code codes.Code, want ...string) {
	t.Helper()
	st, ok := status.FromError(err)
	if err == nil || !ok {
		t.Fatalf("want %v, got %v", code, err)
	}
	if st.Code() != code {
		t.Fatalf("want %v, got %v: %s", code, st.Code(), st.Message())
	}
	for _, w := range want {
		if !strings.Contains(st.Message(), w) {
			t.Fatalf("message %q does not contain %q", st.Message(), w)
		}
	}
}

// must fails the test on a non-nil error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// storeServices returns the services in the store.
func storeServices(st *store.MemoryStore) []*api.Service {
	var out []*api.Service
	st.View(func(tx store.ReadTx) { out = tx.FindServices(store.All()) })
	return out
}

// getTask reads a task from the store.
func getTask(st *store.MemoryStore, id string) *api.Task {
	var out *api.Task
	st.View(func(tx store.ReadTx) { out = tx.GetTask(id) })
	return out
}

// getNode reads a node from the store.
func getNode(st *store.MemoryStore, id string) *api.Node {
	var out *api.Node
	st.View(func(tx store.ReadTx) { out = tx.GetNode(id) })
	return out
}

// task is a task for seeding.
func task(id, service, node string, desired, state api.TaskState) *api.Task {
	return &api.Task{
		Id:           id,
		ServiceId:    service,
		NodeId:       node,
		DesiredState: desired,
		Status:       &api.TaskStatus{State: state},
	}
}

// node is a node for seeding.
func node(id, hostname string, role api.NodeRole, state api.NodeState) *api.Node {
	return &api.Node{
		Id:          id,
		Role:        role,
		Spec:        &api.NodeSpec{DesiredRole: role},
		Description: &api.NodeDescription{Hostname: hostname},
		Status:      &api.NodeStatus{State: state},
	}
}
