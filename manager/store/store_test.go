package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

func TestCreateStampsAndClones(t *testing.T) {
	s := newTestStore(t)
	in := newService("svc1", "web")
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateService(in) })

	if in.Meta != nil {
		t.Errorf("Create changed the caller's object: Meta = %v", in.Meta)
	}
	in.Spec.Annotations.Name = "changed-by-caller"

	got := getService(s, "svc1")
	if got == nil {
		t.Fatal("service svc1 not found after create")
	}
	if name := got.GetSpec().GetAnnotations().GetName(); name != "web" {
		t.Errorf("stored name = %q, want web (the caller's later change leaked into the store)", name)
	}
	m := got.GetMeta()
	if m.GetVersion() != 1 || s.AppliedIndex() != 1 {
		t.Errorf("version = %d, applied = %d, want 1 and 1", m.GetVersion(), s.AppliedIndex())
	}
	if m.GetCreatedAt() == 0 || m.GetCreatedAt() != m.GetUpdatedAt() {
		t.Errorf("created_at = %d, updated_at = %d, want equal and non-zero", m.GetCreatedAt(), m.GetUpdatedAt())
	}

	upd := protoClone(got)
	upd.Spec.Annotations.Labels = map[string]string{"a": "b"}
	mustUpdate(t, s, func(tx Tx) error { return tx.UpdateService(upd) })
	got2 := getService(s, "svc1")
	if got2.GetMeta().GetVersion() != 2 || got2.GetMeta().GetCreatedAt() != m.GetCreatedAt() ||
		got2.GetMeta().GetUpdatedAt() < m.GetUpdatedAt() {
		t.Errorf("after update meta = %v, want version 2, created_at %d kept, updated_at >= %d", got2.GetMeta(), m.GetCreatedAt(), m.GetUpdatedAt())
	}
	if got.GetMeta().GetVersion() != 1 {
		t.Errorf("update changed the previously handed-out object in place: version %d", got.GetMeta().GetVersion())
	}
}

func TestCreateErrors(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateService(newService("svc1", "web")) })

	tests := []struct {
		name string
		fn   func(Tx) error
		want error
	}{
		{"no ID", func(tx Tx) error { return tx.CreateService(newService("", "x")) }, ErrInvalidObject},
		{"nil object", func(tx Tx) error { return tx.CreateTask(nil) }, ErrInvalidObject},
		{"ID exists", func(tx Tx) error { return tx.CreateService(newService("svc1", "other")) }, ErrExist},
		{"name taken", func(tx Tx) error { return tx.CreateService(newService("svc2", "web")) }, ErrNameConflict},
		{"name taken in the same tx", func(tx Tx) error {
			if err := tx.CreateNetwork(newNetwork("n1", "net")); err != nil {
				return err
			}
			return tx.CreateNetwork(newNetwork("n2", "net"))
		}, ErrNameConflict},
		{"update absent", func(tx Tx) error { return tx.UpdateService(newService("nope", "x")) }, ErrNotFound},
		{"delete absent", func(tx Tx) error { return tx.DeleteTask("nope") }, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Hash()
			err := s.Update(context.Background(), tc.fn)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if after := s.Hash(); after != before {
				t.Errorf("a failed Update changed the store")
			}
		})
	}

	// Names are per kind and compared exactly.
	mustUpdate(t, s, func(tx Tx) error {
		if err := tx.CreateNetwork(newNetwork("net1", "web")); err != nil {
			return err
		}
		return tx.CreateService(newService("svc3", "Web"))
	})
}

func TestNameFreedInTxCanBeReused(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateService(newService("a", "web")) })
	mustUpdate(t, s, func(tx Tx) error {
		if err := tx.DeleteService("a"); err != nil {
			return err
		}
		return tx.CreateService(newService("b", "web"))
	})
	s.View(func(tx ReadTx) {
		if got := ids(tx.FindServices(ByName("web"))); len(got) != 1 || got[0] != "b" {
			t.Errorf("ByName(web) = %v, want [b]", got)
		}
	})
}

func TestUpdateSequenceConflict(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateService(newService("svc1", "web")) })
	stale := protoClone(getService(s, "svc1"))

	fresh := protoClone(stale)
	fresh.SpecVersion = 1
	mustUpdate(t, s, func(tx Tx) error { return tx.UpdateService(fresh) })

	stale.SpecVersion = 7
	err := s.Update(context.Background(), func(tx Tx) error { return tx.UpdateService(stale) })
	if !errors.Is(err, ErrSequenceConflict) {
		t.Fatalf("update with a stale version: err = %v, want ErrSequenceConflict", err)
	}
	if !strings.Contains(err.Error(), "svc1") {
		t.Errorf("error %q does not name the object", err)
	}
	if got := getService(s, "svc1").GetSpecVersion(); got != 1 {
		t.Errorf("spec_version = %d, want 1 (the stale write must not land)", got)
	}
}

// TestConcurrentWriterConflictAtApply checks the compare-and-swap at Apply:
// a write staged against version v fails when another write lands between
// staging and applying.
func TestConcurrentWriterConflictAtApply(t *testing.T) {
	s := New(nil)
	local := NewLocalProposer(s)
	s.SetProposer(local)
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateService(newService("svc1", "web")) })

	s.SetProposer(proposerFunc(func(ctx context.Context, cmd *api.Command) (uint64, error) {
		// Another manager's write is committed first.
		other := protoClone(getService(s, "svc1"))
		other.SpecVersion = 99
		if _, err := local.Propose(ctx, cmdOf(updateAct(other))); err != nil {
			t.Errorf("the interleaved write failed: %v", err)
		}
		return local.Propose(ctx, cmd)
	}))
	err := s.Update(context.Background(), func(tx Tx) error {
		svc := protoClone(tx.GetService("svc1"))
		svc.SpecVersion = 1
		return tx.UpdateService(svc)
	})
	if !errors.Is(err, ErrSequenceConflict) {
		t.Fatalf("err = %v, want ErrSequenceConflict", err)
	}
	if got := getService(s, "svc1").GetSpecVersion(); got != 99 {
		t.Errorf("spec_version = %d, want 99 from the write that won", got)
	}
}

func TestUpdateTwiceInOneTxReplacesTheAction(t *testing.T) {
	s := New(nil)
	rec := &recordingProposer{next: NewLocalProposer(s)}
	s.SetProposer(rec)
	mustUpdate(t, s, func(tx Tx) error {
		return tx.CreateTask(newTask("t1", "s", "", api.TaskState_TASK_STATE_NEW, api.TaskState_TASK_STATE_RUNNING))
	})
	mustUpdate(t, s, func(tx Tx) error {
		first := protoClone(tx.GetTask("t1"))
		first.Status.State = api.TaskState_TASK_STATE_PENDING
		if err := tx.UpdateTask(first); err != nil {
			return err
		}
		second := protoClone(tx.GetTask("t1"))
		if second.GetStatus().GetState() != api.TaskState_TASK_STATE_PENDING {
			t.Errorf("the tx does not see its own staged update")
		}
		second.NodeId = "n1"
		second.Status.State = api.TaskState_TASK_STATE_ASSIGNED
		return tx.UpdateTask(second)
	})
	if n := len(rec.cmds[1].GetActions()); n != 1 {
		t.Errorf("second command has %d actions, want 1 (the staged update is replaced)", n)
	}
	got := getTask(s, "t1")
	if got.GetStatus().GetState() != api.TaskState_TASK_STATE_ASSIGNED || got.GetNodeId() != "n1" || got.GetMeta().GetVersion() != 2 {
		t.Errorf("task after two updates = %v, want ASSIGNED on n1 at version 2", got)
	}
}

func TestCreateThenUpdateInOneTx(t *testing.T) {
	s := New(nil)
	rec := &recordingProposer{next: NewLocalProposer(s)}
	s.SetProposer(rec)
	mustUpdate(t, s, func(tx Tx) error {
		if err := tx.CreateService(newService("svc1", "web")); err != nil {
			return err
		}
		svc := protoClone(tx.GetService("svc1"))
		svc.SpecVersion = 5
		return tx.UpdateService(svc)
	})
	if acts := rec.cmds[0].GetActions(); len(acts) != 1 || acts[0].GetKind() != api.StoreAction_KIND_CREATE {
		t.Errorf("command = %v, want one create", rec.cmds[0])
	}
	if got := getService(s, "svc1"); got.GetSpecVersion() != 5 || got.GetMeta().GetVersion() != 1 {
		t.Errorf("service = %v, want spec_version 5 at version 1", got)
	}
}

// TestSwapNamesInOneTx renames two services into each other's names: the
// second rename of a must come after b's rename in the command for Apply
// to accept it.
func TestSwapNamesInOneTx(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error {
		if err := tx.CreateService(newService("a", "x")); err != nil {
			return err
		}
		return tx.CreateService(newService("b", "y"))
	})
	rename := func(tx Tx, id, name string) error {
		svc := protoClone(tx.GetService(id))
		svc.Spec.Annotations.Name = name
		return tx.UpdateService(svc)
	}
	mustUpdate(t, s, func(tx Tx) error {
		if err := rename(tx, "a", "tmp"); err != nil {
			return err
		}
		if err := rename(tx, "b", "x"); err != nil {
			return err
		}
		return rename(tx, "a", "y")
	})
	s.View(func(tx ReadTx) {
		if got := ids(tx.FindServices(ByName("y"))); len(got) != 1 || got[0] != "a" {
			t.Errorf("ByName(y) = %v, want [a]", got)
		}
		if got := ids(tx.FindServices(ByName("x"))); len(got) != 1 || got[0] != "b" {
			t.Errorf("ByName(x) = %v, want [b]", got)
		}
		if got := tx.FindServices(ByName("tmp")); len(got) != 0 {
			t.Errorf("ByName(tmp) = %v, want none", ids(got))
		}
	})
}

func TestDeleteThenCreateSameIDInOneTx(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error {
		return tx.CreateTask(newTask("t1", "s1", "n1", api.TaskState_TASK_STATE_RUNNING, api.TaskState_TASK_STATE_RUNNING))
	})
	mustUpdate(t, s, func(tx Tx) error {
		if err := tx.DeleteTask("t1"); err != nil {
			return err
		}
		if tx.GetTask("t1") != nil {
			t.Errorf("deleted task still visible in the tx")
		}
		return tx.CreateTask(newTask("t1", "s2", "", api.TaskState_TASK_STATE_NEW, api.TaskState_TASK_STATE_RUNNING))
	})
	got := getTask(s, "t1")
	if got.GetServiceId() != "s2" || got.GetStatus().GetState() != api.TaskState_TASK_STATE_NEW {
		t.Errorf("task = %v, want the new one of s2", got)
	}
	s.View(func(tx ReadTx) {
		if n := len(tx.FindTasks(ByServiceID("s1"))); n != 0 {
			t.Errorf("s1 still has %d tasks in the index", n)
		}
	})
}

func TestTaskStateForwardOnly(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error {
		return tx.CreateTask(newTask("t1", "s1", "n1", api.TaskState_TASK_STATE_RUNNING, api.TaskState_TASK_STATE_RUNNING))
	})
	cur := getTask(s, "t1")

	back := protoClone(cur)
	back.Status.State = api.TaskState_TASK_STATE_STARTING
	if err := s.Update(context.Background(), func(tx Tx) error { return tx.UpdateTask(back) }); !errors.Is(err, ErrTaskStateBackwards) {
		t.Errorf("state RUNNING -> STARTING: err = %v, want ErrTaskStateBackwards", err)
	}
	desiredBack := protoClone(cur)
	desiredBack.DesiredState = api.TaskState_TASK_STATE_PENDING
	if err := s.Update(context.Background(), func(tx Tx) error { return tx.UpdateTask(desiredBack) }); !errors.Is(err, ErrTaskStateBackwards) {
		t.Errorf("desired state RUNNING -> PENDING: err = %v, want ErrTaskStateBackwards", err)
	}
	// The same through Apply, which must check too.
	back.Meta = &api.Meta{Version: cur.GetMeta().GetVersion()}
	if err := s.Apply(s.AppliedIndex()+1, cmdOf(updateAct(back))); !errors.Is(err, ErrTaskStateBackwards) {
		t.Errorf("Apply of a backwards state: err = %v, want ErrTaskStateBackwards", err)
	}
	fwd := protoClone(getTask(s, "t1"))
	fwd.Status.State = api.TaskState_TASK_STATE_FAILED
	fwd.DesiredState = api.TaskState_TASK_STATE_SHUTDOWN
	mustUpdate(t, s, func(tx Tx) error { return tx.UpdateTask(fwd) })
	if got := getTask(s, "t1"); got.GetStatus().GetState() != api.TaskState_TASK_STATE_FAILED {
		t.Errorf("forward update did not land: %v", got)
	}
}

func TestApplyIsAtomic(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error {
		if err := tx.CreateService(newService("svc1", "web")); err != nil {
			return err
		}
		return tx.CreateTask(newTask("t1", "svc1", "", api.TaskState_TASK_STATE_NEW, api.TaskState_TASK_STATE_RUNNING))
	})
	before, _ := s.Snapshot()
	events, cancel := s.Watch(nil)
	defer cancel()

	task := protoClone(getTask(s, "t1"))
	task.Status.State = api.TaskState_TASK_STATE_PENDING
	cmd := cmdOf(
		createAct(newService("svc2", "api")),
		updateAct(task),
		removeAct(&api.Network{Id: "missing"}),
	)
	index := s.AppliedIndex() + 1
	err := s.Apply(index, cmd)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "network missing") {
		t.Fatalf("err = %v, want ErrNotFound naming network missing", err)
	}
	after, _ := s.Snapshot()
	if !proto.Equal(before, after) {
		t.Errorf("a failed command changed the state")
	}
	if s.AppliedIndex() != index {
		t.Errorf("applied index = %d, want %d: a failed command still consumes its index", s.AppliedIndex(), index)
	}
	select {
	case ev := <-events:
		t.Errorf("a failed command published an event: %+v", ev)
	default:
	}
}

func TestApplyChecks(t *testing.T) {
	s := New(nil)
	if err := s.Apply(1, cmdOf(createAct(newService("svc1", "web")))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cmd  *api.Command
		want error
	}{
		{"no target", cmdOf(&api.StoreAction{Kind: api.StoreAction_KIND_CREATE}), ErrInvalidObject},
		{"nil object", cmdOf(&api.StoreAction{Target: &api.StoreAction_Task{}}), ErrInvalidObject},
		{"unknown kind", cmdOf(act(7, newService("svc9", "z"))), ErrInvalidObject},
		{"create existing", cmdOf(createAct(newService("svc1", "other"))), ErrExist},
		{"create name taken", cmdOf(createAct(newService("svc2", "web"))), ErrNameConflict},
		{"update wrong version", cmdOf(updateAct(&api.Service{Id: "svc1", Meta: &api.Meta{Version: 7}})), ErrSequenceConflict},
		{"remove wrong version", cmdOf(removeAct(&api.Service{Id: "svc1"})), ErrSequenceConflict},
		{"create twice in one command", cmdOf(createAct(newService("a", "")), createAct(newService("a", ""))), ErrExist},
		{"remove then update", cmdOf(removeAct(&api.Service{Id: "svc1", Meta: &api.Meta{Version: 1}}),
			updateAct(&api.Service{Id: "svc1", Meta: &api.Meta{Version: 1}})), ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Apply(s.AppliedIndex()+1, tc.cmd); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if err := s.Apply(s.AppliedIndex(), cmdOf()); !errors.Is(err, ErrStaleIndex) {
		t.Errorf("Apply at the applied index: err = %v, want ErrStaleIndex", err)
	}
	// Create then update in one command: the update carries the version
	// the create carried (0).
	next := s.AppliedIndex() + 1
	if err := s.Apply(next, cmdOf(createAct(newService("b", "b")), updateAct(newService("b", "b2")))); err != nil {
		t.Fatalf("create then update in one command: %v", err)
	}
	if got := getService(s, "b"); got.GetMeta().GetVersion() != next || got.GetSpec().GetAnnotations().GetName() != "b2" {
		t.Errorf("service b = %v, want name b2 at version %d", got, next)
	}
}

func TestViewIsReadOnly(t *testing.T) {
	s := newTestStore(t)
	s.View(func(rt ReadTx) {
		tx, ok := rt.(Tx)
		if !ok {
			return
		}
		if err := tx.CreateService(newService("svc1", "web")); err == nil {
			t.Errorf("a write through View's ReadTx succeeded")
		}
	})
	if getService(s, "svc1") != nil {
		t.Errorf("a write through View landed")
	}
}

func TestUpdateWithoutProposer(t *testing.T) {
	s := New(nil)
	ran := false
	err := s.Update(context.Background(), func(tx Tx) error { ran = true; return nil })
	if !errors.Is(err, ErrNoProposer) || ran {
		t.Errorf("err = %v, ran = %v; want ErrNoProposer before running fn", err, ran)
	}
}

func TestUpdateReturnsFnErrorAndProposesNothing(t *testing.T) {
	s := New(nil)
	s.SetProposer(proposerFunc(func(context.Context, *api.Command) (uint64, error) {
		t.Error("Propose called")
		return 0, nil
	}))
	boom := errors.New("boom")
	err := s.Update(context.Background(), func(tx Tx) error {
		if err := tx.CreateService(newService("svc1", "web")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want fn's error", err)
	}
	if err := s.Update(context.Background(), func(tx Tx) error { return nil }); err != nil {
		t.Errorf("a read-only Update: %v", err)
	}
}

func TestUpdateCanceledContext(t *testing.T) {
	s := newTestStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Update(ctx, func(tx Tx) error { return tx.CreateService(newService("svc1", "web")) })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if getService(s, "svc1") != nil {
		t.Errorf("write landed with a canceled context")
	}
}

func TestNewID(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		id := NewID()
		if len(id) != 25 {
			t.Fatalf("NewID() = %q: length %d, want 25", id, len(id))
		}
		if strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
			t.Fatalf("NewID() = %q: not lowercase alphanumeric", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestApplyEmptyCommandConsumesIndex(t *testing.T) {
	s := New(nil)
	hash := s.Hash()
	if err := s.Apply(5, nil); err != nil {
		t.Fatalf("Apply(5, nil): %v", err)
	}
	if s.AppliedIndex() != 5 {
		t.Errorf("applied index = %d, want 5", s.AppliedIndex())
	}
	snap, _ := s.Snapshot()
	if !proto.Equal(snap, &api.StoreSnapshot{}) || s.Hash() == hash {
		t.Errorf("an empty command must leave the objects alone and move the index (hash covers it)")
	}
}

// Commands batched into one entry are each all-or-nothing and see the
// earlier ones' effects, as if they had been separate entries.
func TestApplyBatchIndependentCommands(t *testing.T) {
	s := New(nil)
	mk := func(kind api.StoreAction_Kind, id, name string, version uint64) *api.Command {
		return &api.Command{Actions: []*api.StoreAction{{Kind: kind, Target: &api.StoreAction_Service{Service: &api.Service{
			Id: id, Meta: &api.Meta{Version: version}, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: name}}}}}}}
	}
	errs := s.ApplyBatch(7, []*api.Command{
		mk(api.StoreAction_KIND_CREATE, "a", "web", 0),
		mk(api.StoreAction_KIND_CREATE, "b", "web", 0), // name taken by the first
		mk(api.StoreAction_KIND_CREATE, "c", "db", 0),
		mk(api.StoreAction_KIND_UPDATE, "a", "web", 0), // version 0 was replaced by index 7
	})
	if errs[0] != nil || !errors.Is(errs[1], ErrNameConflict) || errs[2] != nil || !errors.Is(errs[3], ErrSequenceConflict) {
		t.Fatalf("batch outcomes: %v", errs)
	}
	if s.AppliedIndex() != 7 {
		t.Fatalf("applied index %d, want 7", s.AppliedIndex())
	}
	s.View(func(tx ReadTx) {
		if a := tx.GetService("a"); a == nil || a.Meta.Version != 7 || tx.GetService("b") != nil || tx.GetService("c") == nil {
			t.Fatalf("state after batch: a=%v b=%v c=%v", a, tx.GetService("b"), tx.GetService("c"))
		}
	})
	if errs := s.ApplyBatch(7, []*api.Command{mk(api.StoreAction_KIND_CREATE, "d", "x", 0)}); !errors.Is(errs[0], ErrStaleIndex) {
		t.Fatalf("re-applied index: %v", errs[0])
	}
}
