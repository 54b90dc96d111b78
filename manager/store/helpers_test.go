package store

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// newTestStore returns an empty store with a LocalProposer.
func newTestStore(t testing.TB) *MemoryStore {
	t.Helper()
	s := New(nil)
	s.SetProposer(NewLocalProposer(s))
	return s
}

func ann(name string) *api.Annotations { return &api.Annotations{Name: name} }

func newService(id, name string) *api.Service {
	return &api.Service{Id: id, Spec: &api.ServiceSpec{Annotations: ann(name)}}
}

func newNetwork(id, name string) *api.Network {
	return &api.Network{Id: id, Spec: &api.NetworkSpec{Annotations: ann(name)}}
}

func newTask(id, serviceID, nodeID string, state, desired api.TaskState) *api.Task {
	return &api.Task{
		Id:           id,
		ServiceId:    serviceID,
		NodeId:       nodeID,
		Status:       &api.TaskStatus{State: state},
		DesiredState: desired,
	}
}

func newNode(id, name, hostname string, role api.NodeRole) *api.Node {
	return &api.Node{
		Id:          id,
		Spec:        &api.NodeSpec{Annotations: ann(name)},
		Description: &api.NodeDescription{Hostname: hostname},
		Role:        role,
	}
}

// mustUpdate runs Update and fails the test on an error.
func mustUpdate(t testing.TB, s *MemoryStore, fn func(Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// ids returns the IDs of objects, in order.
func ids[T interface{ GetId() string }](objs []T) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.GetId()
	}
	return out
}

// getTask reads one task in a View.
func getTask(s *MemoryStore, id string) *api.Task {
	var t *api.Task
	s.View(func(tx ReadTx) { t = tx.GetTask(id) })
	return t
}

// getService reads one service in a View.
func getService(s *MemoryStore, id string) *api.Service {
	var out *api.Service
	s.View(func(tx ReadTx) { out = tx.GetService(id) })
	return out
}

// recordingProposer hands each command to next after keeping a clone of
// it, so tests can see what Update proposed.
type recordingProposer struct {
	next Proposer
	cmds []*api.Command
}

func (p *recordingProposer) Propose(ctx context.Context, cmd *api.Command) (uint64, error) {
	p.cmds = append(p.cmds, cloneCmd(cmd))
	return p.next.Propose(ctx, cmd)
}

// proposerFunc adapts a function to Proposer.
type proposerFunc func(context.Context, *api.Command) (uint64, error)

func (f proposerFunc) Propose(ctx context.Context, cmd *api.Command) (uint64, error) {
	return f(ctx, cmd)
}

func cloneCmd(c *api.Command) *api.Command {
	out := &api.Command{}
	for _, a := range c.GetActions() {
		out.Actions = append(out.Actions, cloneAction(a))
	}
	return out
}

func cloneAction(a *api.StoreAction) *api.StoreAction {
	return protoClone(a)
}

func cmdOf(actions ...*api.StoreAction) *api.Command { return &api.Command{Actions: actions} }

func createAct(obj any) *api.StoreAction { return act(api.StoreAction_KIND_CREATE, obj) }
func updateAct(obj any) *api.StoreAction { return act(api.StoreAction_KIND_UPDATE, obj) }
func removeAct(obj any) *api.StoreAction { return act(api.StoreAction_KIND_REMOVE, obj) }

// act wraps an object of any kind in an action.
func act(k api.StoreAction_Kind, obj any) *api.StoreAction {
	switch o := obj.(type) {
	case *api.Cluster:
		return clusterKind.action(k, o)
	case *api.Node:
		return nodeKind.action(k, o)
	case *api.Service:
		return serviceKind.action(k, o)
	case *api.Task:
		return taskKind.action(k, o)
	case *api.Network:
		return networkKind.action(k, o)
	case *api.Secret:
		return secretKind.action(k, o)
	case *api.Config:
		return configKind.action(k, o)
	}
	panic("act: not a store object")
}

// protoClone is a typed proto.Clone.
func protoClone[T proto.Message](m T) T { return proto.Clone(m).(T) }
