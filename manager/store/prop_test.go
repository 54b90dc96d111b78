package store

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/shoalhq/shoal/proto/api"
)

// Small pools make collisions (same ID, same name, stale versions) common.
var (
	propIDs = map[string][]string{
		"cluster": {"c1", "c2"},
		"node":    {"n1", "n2", "n3"},
		"service": {"s1", "s2", "s3"},
		"task":    {"t1", "t2", "t3", "t4", "t5"},
		"network": {"w1", "w2"},
		"secret":  {"x1", "x2"},
		"config":  {"g1", "g2"},
	}
	propNames  = []string{"", "a", "b", "c"}
	propHosts  = []string{"", "h1", "h2"}
	taskStates = []api.TaskState{
		api.TaskState_TASK_STATE_NEW, api.TaskState_TASK_STATE_PENDING, api.TaskState_TASK_STATE_ASSIGNED,
		api.TaskState_TASK_STATE_ACCEPTED, api.TaskState_TASK_STATE_PREPARING, api.TaskState_TASK_STATE_STARTING,
		api.TaskState_TASK_STATE_RUNNING, api.TaskState_TASK_STATE_COMPLETE, api.TaskState_TASK_STATE_SHUTDOWN,
		api.TaskState_TASK_STATE_FAILED, api.TaskState_TASK_STATE_REJECTED, api.TaskState_TASK_STATE_REMOVE,
		api.TaskState_TASK_STATE_ORPHANED,
	}
	nodeRoles = []api.NodeRole{api.NodeRole_NODE_ROLE_WORKER, api.NodeRole_NODE_ROLE_MANAGER}
)

// drawObject draws an object of a kind with the ID and version.
func drawObject(t *rapid.T, kind, id string, version uint64) proto.Message {
	meta := &api.Meta{
		Version:   version,
		CreatedAt: rapid.Int64Range(0, 3).Draw(t, "created"),
		UpdatedAt: rapid.Int64Range(0, 3).Draw(t, "updated"),
	}
	name := func() *api.Annotations { return ann(rapid.SampledFrom(propNames).Draw(t, "name")) }
	switch kind {
	case "cluster":
		return &api.Cluster{Id: id, Meta: meta, Spec: &api.ClusterSpec{Annotations: name()},
			JoinTokens: &api.JoinTokens{Worker: rapid.StringMatching(`[a-z]{0,3}`).Draw(t, "token")}}
	case "node":
		return &api.Node{Id: id, Meta: meta, Spec: &api.NodeSpec{Annotations: name()},
			Description: &api.NodeDescription{Hostname: rapid.SampledFrom(propHosts).Draw(t, "host")},
			Role:        rapid.SampledFrom(nodeRoles).Draw(t, "role")}
	case "service":
		return &api.Service{Id: id, Meta: meta, Spec: &api.ServiceSpec{Annotations: name()},
			SpecVersion: rapid.Uint64Range(0, 3).Draw(t, "specVersion")}
	case "task":
		return &api.Task{Id: id, Meta: meta,
			ServiceId:    rapid.SampledFrom([]string{"", "s1", "s2"}).Draw(t, "serviceID"),
			NodeId:       rapid.SampledFrom([]string{"", "n1", "n2"}).Draw(t, "nodeID"),
			Status:       &api.TaskStatus{State: rapid.SampledFrom(taskStates).Draw(t, "state")},
			DesiredState: rapid.SampledFrom(taskStates).Draw(t, "desired"),
			Slot:         rapid.Uint64Range(0, 3).Draw(t, "slot")}
	case "network":
		n := &api.Network{Id: id, Meta: meta, Spec: &api.NetworkSpec{Annotations: name()},
			Vni: rapid.Uint32Range(0, 3).Draw(t, "vni")}
		if subnet := rapid.SampledFrom([]string{"", "10.0.0.0/24", "10.0.0.0/16", "10.1.0.0/24", "bad"}).Draw(t, "subnet"); subnet != "" {
			n.Ipam = []*api.IPAMConfig{{Subnet: subnet}}
		}
		return n
	case "secret":
		return &api.Secret{Id: id, Meta: meta, Spec: &api.SecretSpec{Annotations: name()}}
	case "config":
		return &api.Config{Id: id, Meta: meta, Spec: &api.ConfigSpec{Annotations: name()}}
	}
	panic("unknown kind " + kind)
}

// drawCommand draws a command of 1 to 4 actions over the given kinds.
// Versions are the current one in ref or a random one, so both accepted
// and conflicting writes are common.
func drawCommand(t *rapid.T, ref *MemoryStore, kinds []string) *api.Command {
	cmd := &api.Command{}
	n := rapid.IntRange(1, 4).Draw(t, "actions")
	for range n {
		kind := rapid.SampledFrom(kinds).Draw(t, "kind")
		id := rapid.SampledFrom(propIDs[kind]).Draw(t, "id")
		if rapid.IntRange(0, 30).Draw(t, "noID") == 30 { // rapid leans to small values
			id = ""
		}
		var cur uint64
		var exists bool
		ref.View(func(tx ReadTx) {
			if o := getAny(tx, kind, id); o != nil {
				cur, exists = versionOf(o), true
			}
		})
		v := cur
		if rapid.IntRange(0, 3).Draw(t, "wrongVersion") == 3 {
			v = rapid.Uint64Range(0, ref.AppliedIndex()+1).Draw(t, "version")
		}
		// Mostly writes that can succeed, with every kind of failure too.
		var k api.StoreAction_Kind
		switch r := rapid.IntRange(0, 99).Draw(t, "actionKind"); {
		case r >= 97:
			k = 9 // no kind at all
		case exists && r < 60, !exists && r >= 80 && r < 90:
			k = api.StoreAction_KIND_UPDATE
		case exists && r < 85, !exists && r >= 90:
			k = api.StoreAction_KIND_REMOVE
		default:
			k = api.StoreAction_KIND_CREATE
		}
		obj := drawObject(t, kind, id, v)
		if k == api.StoreAction_KIND_REMOVE && rapid.Bool().Draw(t, "skeleton") {
			obj = skeletonOf(kind, id, v)
		}
		cmd.Actions = append(cmd.Actions, act(k, obj))
	}
	return cmd
}

// skeletonOf is an object carrying only an ID and a version, as Tx.Delete
// proposes.
func skeletonOf(kind, id string, v uint64) proto.Message {
	m := &api.Meta{Version: v}
	switch kind {
	case "cluster":
		return clusterKind.skeleton(id, m)
	case "node":
		return nodeKind.skeleton(id, m)
	case "service":
		return serviceKind.skeleton(id, m)
	case "task":
		return taskKind.skeleton(id, m)
	case "network":
		return networkKind.skeleton(id, m)
	case "secret":
		return secretKind.skeleton(id, m)
	}
	return configKind.skeleton(id, m)
}

// propSelectors are the selectors compared between the store and the model.
func propSelectors() []By {
	by := []By{All(), ByIDPrefix(""), ByIDPrefix("t"), ByIDPrefix("s2"), ByIDPrefix("zz")}
	for _, n := range append(propNames, propHosts...) {
		by = append(by, ByName(n))
	}
	for _, id := range []string{"", "s1", "s2", "n1", "n2"} {
		by = append(by, ByServiceID(id), ByNodeID(id))
	}
	for _, s := range taskStates {
		by = append(by, ByDesiredState(s))
	}
	for _, r := range nodeRoles {
		by = append(by, ByRole(r))
	}
	return by
}

// checkFinds compares every Find of every kind with the model's full scan.
func checkFinds(t *rapid.T, s *MemoryStore, m *model) {
	s.View(func(tx ReadTx) {
		for _, kind := range modelKinds {
			for _, by := range propSelectors() {
				got, want := findAny(tx, kind, by), m.find(kind, by)
				if !slices.EqualFunc(got, want, proto.Equal) {
					t.Fatalf("Find %s %#v: got %d objects %v, model has %d", kind, by, len(got), got, len(want))
				}
			}
			for _, id := range propIDs[kind] {
				got, want := getAny(tx, kind, id), m.objs[kind][id]
				if (got == nil) != (want == nil) || (got != nil && !proto.Equal(got, want)) {
					t.Fatalf("Get %s %s = %v, model has %v", kind, id, got, want)
				}
			}
		}
	})
}

// TestPropApplyDeterministic applies random commands to two fresh stores
// and to the model: both stores return the same error for every command
// and end with the same hash, and the store agrees with the model on every
// error's sentinel, on the whole state and on every Find. A command that
// fails changes nothing.
func TestPropApplyDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, m := New(nil), New(nil), newModel()
		var index uint64
		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for step := range steps {
			cmd := drawCommand(t, a, modelKinds)
			index += rapid.Uint64Range(1, 3).Draw(t, "gap")
			cmdB, cmdM := proto.Clone(cmd).(*api.Command), proto.Clone(cmd).(*api.Command)
			before, _ := a.Snapshot()

			errA := a.Apply(index, cmd)
			errB := b.Apply(index, cmdB)
			errM := m.apply(index, cmdM)
			if fmt.Sprint(errA) != fmt.Sprint(errB) {
				t.Fatalf("step %d: stores disagree: %v vs %v", step, errA, errB)
			}
			if sentinelOf(errA) != errM {
				t.Fatalf("step %d: store error %v, model error %v, command %v", step, errA, errM, cmdM)
			}
			if a.Hash() != b.Hash() {
				t.Fatalf("step %d: hashes differ", step)
			}
			after, applied := a.Snapshot()
			if applied != index {
				t.Fatalf("step %d: applied index %d, want %d", step, applied, index)
			}
			if errA != nil && !proto.Equal(before, after) {
				t.Fatalf("step %d: failed command %v changed the state", step, errA)
			}
			if want := m.snapshot(); !proto.Equal(after, want) {
				t.Fatalf("step %d: state differs from the model:\nstore %v\nmodel %v", step, after, want)
			}
		}
		checkFinds(t, a, m)
	})
}

// TestPropSnapshotRestore checks that Restore of a Snapshot, through the
// wire, gives a store with the same hash and the same answer to every Get
// and Find, which then applies further commands the same way.
func TestPropSnapshotRestore(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s, m := New(nil), newModel()
		var index uint64
		for range rapid.IntRange(0, 30).Draw(t, "steps") {
			cmd := drawCommand(t, s, modelKinds)
			index++
			_ = m.apply(index, proto.Clone(cmd).(*api.Command))
			_ = s.Apply(index, cmd)
		}
		snap, at := s.Snapshot()
		b, err := proto.Marshal(snap)
		if err != nil {
			t.Fatal(err)
		}
		decoded := &api.StoreSnapshot{}
		if err := proto.Unmarshal(b, decoded); err != nil {
			t.Fatal(err)
		}
		r := New(nil)
		if err := r.Restore(at, decoded); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if r.Hash() != s.Hash() || r.AppliedIndex() != s.AppliedIndex() {
			t.Fatalf("restored store differs: hash %s vs %s, index %d vs %d", r.Hash(), s.Hash(), r.AppliedIndex(), s.AppliedIndex())
		}
		checkFinds(t, r, m)
		// Both go on identically.
		for range rapid.IntRange(0, 10).Draw(t, "more") {
			cmd := drawCommand(t, s, modelKinds)
			index++
			errR := r.Apply(index, proto.Clone(cmd).(*api.Command))
			errS := s.Apply(index, cmd)
			if fmt.Sprint(errR) != fmt.Sprint(errS) || r.Hash() != s.Hash() {
				t.Fatalf("after restore: errors %v vs %v, hashes equal %v", errR, errS, r.Hash() == s.Hash())
			}
		}
	})
}

// TestPropTaskStateNeverBackwards applies random task commands and checks
// that no task's state or desired state ever decreases: not in an update
// event, and not between the states before and after a command for a task
// the command did not remove.
func TestPropTaskStateNeverBackwards(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := New(nil)
		events, cancel := s.Watch(nil)
		defer cancel()
		for step := range rapid.IntRange(1, 60).Draw(t, "steps") {
			before := make(map[string]*api.Task)
			s.View(func(tx ReadTx) {
				for _, task := range tx.FindTasks(All()) {
					before[task.GetId()] = task
				}
			})
			cmd := drawCommand(t, s, []string{"task"})
			removed := make(map[string]bool)
			for _, a := range cmd.GetActions() {
				if a.GetKind() == api.StoreAction_KIND_REMOVE {
					removed[a.GetTask().GetId()] = true
				}
			}
			_ = s.Apply(uint64(step+1), cmd)
			s.View(func(tx ReadTx) {
				for _, task := range tx.FindTasks(All()) {
					old, ok := before[task.GetId()]
					if !ok || removed[task.GetId()] {
						continue
					}
					if checkTaskForward(old, task) != nil {
						t.Fatalf("step %d: task %s went from %v/%v to %v/%v", step, task.GetId(),
							old.GetStatus().GetState(), old.GetDesiredState(), task.GetStatus().GetState(), task.GetDesiredState())
					}
				}
			})
			for len(events) > 0 {
				ev := <-events
				if ev.Kind != EventUpdate {
					continue
				}
				if err := checkTaskForward(ev.Old.(*api.Task), ev.Object.(*api.Task)); err != nil {
					t.Fatalf("step %d: update event moved backwards: %v", step, err)
				}
			}
		}
	})
}

// TestPropTxAgreesWithApply runs random transactions (creates, updates,
// renames and deletes, some of them refused) and checks that whatever a
// transaction accepted, Apply accepts too, and that the store afterwards
// is what the transaction saw when it ended.
func TestPropTxAgreesWithApply(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := New(nil)
		s.SetProposer(NewLocalProposer(s))
		for round := range rapid.IntRange(1, 5).Draw(t, "rounds") {
			var seen *api.StoreSnapshot
			err := s.Update(context.Background(), func(tx Tx) error {
				for range rapid.IntRange(1, 20).Draw(t, "ops") {
					txOp(t, tx)
				}
				seen = &api.StoreSnapshot{}
				for _, o := range tx.FindServices(All()) {
					seen.Services = append(seen.Services, protoClone(o))
				}
				for _, o := range tx.FindTasks(All()) {
					seen.Tasks = append(seen.Tasks, protoClone(o))
				}
				return nil
			})
			if err != nil {
				t.Fatalf("round %d: Apply refused what the transaction accepted: %v", round, err)
			}
			got, _ := s.Snapshot()
			got = protoClone(got)
			for _, o := range append(got.Services, seen.Services...) {
				o.Meta.Version = 0
			}
			for _, o := range append(got.Tasks, seen.Tasks...) {
				o.Meta.Version = 0
			}
			if !proto.Equal(got, seen) {
				t.Fatalf("round %d: store after apply\n%v\ndiffers from the transaction's view\n%v", round, got, seen)
			}
		}
	})
}

// txOp draws one write and runs it in tx; refused writes are part of the
// test (they must stage nothing).
func txOp(t *rapid.T, tx Tx) {
	// Renames are weighted up: their ordering in the command is the subtle
	// part.
	switch rapid.SampledFrom([]int{1, 1, 0, 1, 2, 3, 4, 4, 5}).Draw(t, "op") {
	case 0:
		id := rapid.SampledFrom(propIDs["service"]).Draw(t, "id")
		_ = tx.CreateService(newService(id, rapid.SampledFrom(propNames).Draw(t, "name")))
	case 1:
		id := rapid.SampledFrom(propIDs["service"]).Draw(t, "id")
		if cur := tx.GetService(id); cur != nil {
			svc := protoClone(cur)
			svc.Spec.Annotations.Name = rapid.SampledFrom(propNames).Draw(t, "name")
			svc.SpecVersion++
			_ = tx.UpdateService(svc)
		}
	case 2:
		_ = tx.DeleteService(rapid.SampledFrom(propIDs["service"]).Draw(t, "id"))
	case 3:
		id := rapid.SampledFrom(propIDs["task"]).Draw(t, "id")
		task := drawObject(t, "task", id, 0).(*api.Task)
		_ = tx.CreateTask(task)
	case 4:
		id := rapid.SampledFrom(propIDs["task"]).Draw(t, "id")
		if cur := tx.GetTask(id); cur != nil {
			task := protoClone(cur)
			task.Status.State = rapid.SampledFrom(taskStates).Draw(t, "state")
			task.NodeId = rapid.SampledFrom([]string{"", "n1"}).Draw(t, "node")
			_ = tx.UpdateTask(task)
		}
	case 5:
		_ = tx.DeleteTask(rapid.SampledFrom(propIDs["task"]).Draw(t, "id"))
	}
}
