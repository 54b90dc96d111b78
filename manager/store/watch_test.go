package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// failAfter is how long a test waits for something that should happen at
// once before it fails; it is a deadline, not a sleep.
const failAfter = 10 * time.Second

// recv receives one event or fails the test at the deadline.
func recv(t *testing.T, ch <-chan Event) (Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		return ev, ok
	case <-time.After(failAfter):
		t.Fatal("no event before the deadline")
		return Event{}, false
	}
}

func TestWatchEventsInOrder(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateService(newService("before", "b")) })

	ch, cancel := s.Watch(nil)
	defer cancel()
	mustUpdate(t, s, func(tx Tx) error {
		if err := tx.CreateService(newService("svc1", "web")); err != nil {
			return err
		}
		return tx.CreateTask(newTask("t1", "svc1", "", stNew, stRunning))
	})
	task := protoClone(getTask(s, "t1"))
	task.Status.State = stPending
	mustUpdate(t, s, func(tx Tx) error { return tx.UpdateTask(task) })
	mustUpdate(t, s, func(tx Tx) error { return tx.DeleteService("svc1") })

	want := []struct {
		kind  EventKind
		id    string
		index uint64
	}{
		{EventCreate, "svc1", 2},
		{EventCreate, "t1", 2},
		{EventUpdate, "t1", 3},
		{EventRemove, "svc1", 4},
	}
	for i, w := range want {
		ev, ok := recv(t, ch)
		if !ok {
			t.Fatalf("event %d: channel closed", i)
		}
		id := ev.Object.(interface{ GetId() string }).GetId()
		if ev.Kind != w.kind || id != w.id || ev.Index != w.index {
			t.Errorf("event %d = {kind %d, %s, index %d}, want {kind %d, %s, index %d}", i, ev.Kind, id, ev.Index, w.kind, w.id, w.index)
		}
		if ev.Kind == EventUpdate {
			old, nu := ev.Old.(*api.Task), ev.Object.(*api.Task)
			if old.GetStatus().GetState() != stNew || nu.GetStatus().GetState() != stPending || nu.GetMeta().GetVersion() != 3 {
				t.Errorf("update event old = %v, new = %v", old, nu)
			}
		}
	}
	select {
	case ev := <-ch:
		t.Errorf("unexpected extra event %+v", ev)
	default:
	}
}

func TestWatchFilterAndCancel(t *testing.T) {
	s := newTestStore(t)
	onlyTasks := func(ev Event) bool { _, ok := ev.Object.(*api.Task); return ok }
	ch, cancel := s.Watch(onlyTasks)
	mustUpdate(t, s, func(tx Tx) error {
		if err := tx.CreateService(newService("svc1", "web")); err != nil {
			return err
		}
		return tx.CreateTask(newTask("t1", "svc1", "", stNew, stRunning))
	})
	ev, ok := recv(t, ch)
	if !ok || ev.Object.(*api.Task).GetId() != "t1" {
		t.Fatalf("first event = %+v (open %v), want the create of t1", ev, ok)
	}
	cancel()
	cancel() // idempotent
	if _, ok := recv(t, ch); ok {
		t.Fatal("channel still open after cancel")
	}
	// Applying after cancel must not panic or block.
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateTask(newTask("t2", "svc1", "", stNew, stRunning)) })
}

func TestWatchOverflowClosesTheWatcher(t *testing.T) {
	s := newTestStore(t)
	slow, cancelSlow := s.Watch(nil)
	defer cancelSlow()
	fast, cancelFast := s.Watch(nil)
	defer cancelFast()

	var got int
	for i := range WatchBufferSize + 1 {
		id := fmt.Sprintf("t%05d", i)
		mustUpdate(t, s, func(tx Tx) error { return tx.CreateTask(newTask(id, "s", "", stNew, stNew)) })
		if ev, ok := recv(t, fast); !ok || ev.Index != uint64(i+1) {
			t.Fatalf("reading watcher: event %d = %+v (open %v)", i, ev, ok)
		}
		got++
	}
	// The slow watcher holds the first WatchBufferSize events, then is
	// closed: it missed one and must re-list.
	for i := range WatchBufferSize {
		ev, ok := recv(t, slow)
		if !ok || ev.Index != uint64(i+1) {
			t.Fatalf("slow watcher: event %d = %+v (open %v)", i, ev, ok)
		}
	}
	if _, ok := recv(t, slow); ok {
		t.Fatal("slow watcher not closed after its buffer overflowed")
	}
	if got != WatchBufferSize+1 {
		t.Fatalf("reading watcher got %d events", got)
	}
}

func TestRestoreClosesWatchers(t *testing.T) {
	s := newTestStore(t)
	ch, cancel := s.Watch(nil)
	defer cancel()
	if err := s.Restore(10, &api.StoreSnapshot{Services: []*api.Service{newService("svc1", "web")}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := recv(t, ch); ok {
		t.Fatal("watcher still open after Restore")
	}
	cancel() // cancel after the store closed it must not panic
}

func TestViewAndWatch(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateService(newService("svc1", "web")) })

	// Writers run while the reader lists and starts watching; every write
	// must be either in the listing or on the channel, exactly once.
	const writes = 200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range writes {
			id := fmt.Sprintf("t%04d", i)
			if err := s.Update(context.Background(), func(tx Tx) error {
				return tx.CreateTask(newTask(id, "svc1", "", stNew, stRunning))
			}); err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		}
	}()
	seen := make(map[string]int)
	ch, cancel := s.ViewAndWatch(nil, func(tx ReadTx) {
		for _, task := range tx.FindTasks(ByServiceID("svc1")) {
			seen[task.GetId()]++
		}
	})
	defer cancel()
	for len(seen) < writes {
		ev, ok := recv(t, ch)
		if !ok {
			t.Fatal("watch closed")
		}
		seen[ev.Object.(*api.Task).GetId()]++
	}
	wg.Wait()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("task %s seen %d times, want once", id, n)
		}
	}
}

func TestWaitForIndex(t *testing.T) {
	s := New(nil)
	done := make(chan error, 1)
	go func() { done <- s.WaitForIndex(context.Background(), 2) }()

	if err := s.Apply(1, cmdOf(createAct(newService("a", "a")))); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("WaitForIndex(2) returned %v at index 1", err)
	default:
	}
	// A command that fails its checks still consumes the index.
	if err := s.Apply(2, cmdOf(createAct(newService("a", "a")))); !errors.Is(err, ErrExist) {
		t.Fatalf("Apply: %v, want ErrExist", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WaitForIndex: %v", err)
		}
	case <-time.After(failAfter):
		t.Fatal("WaitForIndex(2) did not return after index 2 was applied")
	}
	if err := s.WaitForIndex(context.Background(), 1); err != nil {
		t.Errorf("WaitForIndex of a past index: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- s.WaitForIndex(ctx, 100) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("canceled WaitForIndex: %v, want context.Canceled", err)
		}
	case <-time.After(failAfter):
		t.Fatal("WaitForIndex ignored its context")
	}

	go func() { done <- s.WaitForIndex(context.Background(), 50) }()
	if err := s.Restore(50, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WaitForIndex across Restore: %v", err)
		}
	case <-time.After(failAfter):
		t.Fatal("WaitForIndex(50) did not return after Restore at 50")
	}
}

func TestLocalProposerConcurrentUpdates(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateService(newService("svc1", "web")) })
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := s.Update(context.Background(), func(tx Tx) error {
					return tx.CreateTask(newTask(id, "svc1", "", stNew, stRunning))
				}); err != nil {
					t.Errorf("create %s: %v", id, err)
				}
				// Readers run alongside the writers.
				s.View(func(tx ReadTx) { _ = tx.FindTasks(ByServiceID("svc1")) })
			}
		}()
	}
	wg.Wait()
	var n int
	versions := make(map[uint64]bool)
	s.View(func(tx ReadTx) {
		tasks := tx.FindTasks(ByServiceID("svc1"))
		n = len(tasks)
		for _, task := range tasks {
			versions[task.GetMeta().GetVersion()] = true
		}
	})
	if n != workers*each || len(versions) != workers*each {
		t.Errorf("%d tasks with %d distinct versions, want %d of each", n, len(versions), workers*each)
	}
	if s.AppliedIndex() != workers*each+1 {
		t.Errorf("applied index = %d, want %d", s.AppliedIndex(), workers*each+1)
	}
}

func TestSnapshotRestore(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error {
		for _, err := range []error{
			tx.CreateCluster(&api.Cluster{Id: "c1", Spec: &api.ClusterSpec{Annotations: ann("default")}}),
			tx.CreateNode(newNode("n2", "", "h2", api.NodeRole_NODE_ROLE_MANAGER)),
			tx.CreateNode(newNode("n1", "", "h1", api.NodeRole_NODE_ROLE_WORKER)),
			tx.CreateService(newService("s1", "web")),
			tx.CreateTask(newTask("t2", "s1", "n1", stRunning, stRunning)),
			tx.CreateTask(newTask("t1", "s1", "n2", stRunning, stRunning)),
			tx.CreateNetwork(newNetwork("w1", "net")),
			tx.CreateSecret(&api.Secret{Id: "x1", Spec: &api.SecretSpec{Annotations: ann("pw")}}),
			tx.CreateConfig(&api.Config{Id: "g1", Spec: &api.ConfigSpec{Annotations: ann("conf")}}),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	snap, index := s.Snapshot()
	if got := ids(snap.GetTasks()); len(got) != 2 || got[0] != "t1" || got[1] != "t2" {
		t.Errorf("snapshot tasks = %v, want sorted [t1 t2]", got)
	}
	if index != 1 {
		t.Errorf("snapshot index = %d, want 1", index)
	}
	// Through the wire, as Raft would.
	b, err := proto.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	decoded := &api.StoreSnapshot{}
	if err := proto.Unmarshal(b, decoded); err != nil {
		t.Fatal(err)
	}
	r := newTestStore(t)
	mustUpdate(t, r, func(tx Tx) error { return tx.CreateService(newService("old", "old")) })
	if err := r.Restore(index, decoded); err != nil {
		t.Fatal(err)
	}
	if r.Hash() != s.Hash() {
		t.Errorf("hash after restore differs")
	}
	r.View(func(tx ReadTx) {
		if tx.GetService("old") != nil {
			t.Errorf("restore kept an object that is not in the snapshot")
		}
		if got := ids(tx.FindTasks(ByNodeID("n2"))); len(got) != 1 || got[0] != "t1" {
			t.Errorf("restored ByNodeID(n2) = %v, want [t1]", got)
		}
		if got := ids(tx.FindNodes(ByRole(api.NodeRole_NODE_ROLE_MANAGER))); len(got) != 1 || got[0] != "n2" {
			t.Errorf("restored ByRole(manager) = %v, want [n2]", got)
		}
	})
	// The restored store keeps working, and conflicts are still checked.
	if err := r.Update(context.Background(), func(tx Tx) error { return tx.CreateService(newService("s2", "web")) }); !errors.Is(err, ErrNameConflict) {
		t.Errorf("create with a restored name: %v, want ErrNameConflict", err)
	}
}

func TestRestoreRefusesBadSnapshots(t *testing.T) {
	s := newTestStore(t)
	mustUpdate(t, s, func(tx Tx) error { return tx.CreateService(newService("keep", "keep")) })
	hash := s.Hash()
	for _, tc := range []struct {
		name string
		snap *api.StoreSnapshot
		want error
	}{
		{"duplicate ID", &api.StoreSnapshot{Tasks: []*api.Task{{Id: "t"}, {Id: "t"}}}, ErrExist},
		{"duplicate name", &api.StoreSnapshot{Services: []*api.Service{newService("a", "x"), newService("b", "x")}}, ErrNameConflict},
		{"no ID", &api.StoreSnapshot{Nodes: []*api.Node{{}}}, ErrInvalidObject},
	} {
		if err := s.Restore(99, tc.snap); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if s.Hash() != hash {
			t.Errorf("%s: a refused restore changed the store", tc.name)
		}
	}
}

func TestHash(t *testing.T) {
	a, b := New(nil), New(nil)
	if a.Hash() != b.Hash() || len(a.Hash()) != 64 {
		t.Fatalf("empty stores: %q vs %q", a.Hash(), b.Hash())
	}
	if err := a.Apply(1, cmdOf(createAct(newService("s", "x")))); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(1, cmdOf(createAct(newService("s", "y")))); err != nil {
		t.Fatal(err)
	}
	if a.Hash() == b.Hash() {
		t.Errorf("different states have the same hash")
	}
	c := New(nil)
	snap, index := a.Snapshot()
	if err := c.Restore(index+1, snap); err != nil {
		t.Fatal(err)
	}
	if a.Hash() == c.Hash() {
		t.Errorf("the same objects at different applied indexes have the same hash")
	}
}
