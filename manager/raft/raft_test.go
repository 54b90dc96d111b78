package raft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// writeServices creates count services named prefix-i through s and
// returns their IDs, failing the test on any error: every returned ID was
// acknowledged.
func writeServices(t *testing.T, s *store.MemoryStore, prefix string, count int) []string {
	t.Helper()
	var ids []string
	for i := 0; i < count; i++ {
		id := store.NewID()
		err := s.Update(context.Background(), func(tx store.Tx) error {
			return tx.CreateService(&api.Service{Id: id, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: fmt.Sprintf("%s-%d", prefix, i)}}})
		})
		if err != nil {
			t.Fatalf("write %s-%d: %v", prefix, i, err)
		}
		ids = append(ids, id)
	}
	return ids
}

func requireServices(t *testing.T, n *Node, ids []string) {
	t.Helper()
	if err := n.ConsistentRead(context.Background()); err != nil {
		t.Fatalf("consistent read on %s: %v", n.NodeID(), err)
	}
	n.Store().View(func(tx store.ReadTx) {
		for _, id := range ids {
			if tx.GetService(id) == nil {
				t.Fatalf("acknowledged service %s missing on %s", id, n.NodeID())
			}
		}
	})
}

func followers(c *TestCluster) []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n != nil && !n.IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

func indexOf(c *TestCluster, n *Node) int {
	for i, x := range c.Nodes {
		if x == n {
			return i
		}
	}
	return -1
}

func TestFollowerWritesAreForwardedAndVisible(t *testing.T) {
	c := MakeTestCluster(t, 3)
	f := followers(c)[0]
	ids := writeServices(t, f.Store(), "via-follower", 5)
	// Propose returned only after the follower applied the write.
	f.Store().View(func(tx store.ReadTx) {
		for _, id := range ids {
			if tx.GetService(id) == nil {
				t.Fatalf("follower's own acknowledged write %s not visible to it", id)
			}
		}
	})
	for _, n := range c.Nodes {
		requireServices(t, n, ids)
	}
}

func TestStoreErrorsSurviveForwarding(t *testing.T) {
	c := MakeTestCluster(t, 3)
	f := followers(c)[0]
	writeServices(t, f.Store(), "dup", 1)
	// The follower's own transaction would catch the duplicate; send the
	// command by hand to exercise the leader's check and the error's trip
	// back.
	_, err := f.Propose(context.Background(), &api.Command{Actions: []*api.StoreAction{{
		Kind:   api.StoreAction_KIND_CREATE,
		Target: &api.StoreAction_Service{Service: &api.Service{Id: store.NewID(), Meta: &api.Meta{}, Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: "dup-0"}}}},
	}}})
	if !errors.Is(err, store.ErrNameConflict) {
		t.Fatalf("forwarded duplicate name: got %v, want ErrNameConflict", err)
	}
}

func TestLeaderKillElectsNewLeaderAndKeepsAcknowledgedWrites(t *testing.T) {
	c := MakeTestCluster(t, 3)
	leader := c.Leader()
	var ids []string
	ids = append(ids, writeServices(t, leader.Store(), "before-leader", 20)...)
	ids = append(ids, writeServices(t, followers(c)[0].Store(), "before-follower", 20)...)
	old := indexOf(c, leader)
	killed := time.Now()
	c.Stop(old)
	// The bound: a new leader within 2 s of the old one's death.
	nl := c.WaitForLeader(2 * time.Second)
	t.Logf("new leader %s elected %v after the kill", nl.NodeID(), time.Since(killed))
	if nl.NodeID() == leader.NodeID() {
		t.Fatal("the stopped node is still leader")
	}
	for _, n := range c.Nodes {
		if n != nil {
			requireServices(t, n, ids)
		}
	}
	// The survivors keep accepting writes.
	writeServices(t, nl.Store(), "after", 3)
}

func TestRestartAllKeepsState(t *testing.T) {
	c := MakeTestClusterWith(t, 3, func(cfg *Config) {
		cfg.SnapshotThreshold = 50 // exercise snapshot + log replay on restart
		cfg.SnapshotInterval = 50 * time.Millisecond
		cfg.TrailingLogs = 10
	})
	writeServices(t, c.Leader().Store(), "svc", 200)
	leader := c.Leader()
	if err := leader.ConsistentRead(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := leader.Store().Hash()
	index := leader.Store().AppliedIndex()
	// Wait until every node applied everything, then compare.
	for _, n := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.Store().WaitForIndex(ctx, index); err != nil {
			t.Fatalf("%s did not catch up: %v", n.NodeID(), err)
		}
		cancel()
		if got := n.Store().Hash(); got != want {
			t.Fatalf("%s hash %s before restart, leader %s", n.NodeID(), got, want)
		}
	}
	for i := range c.Nodes {
		c.Stop(i)
	}
	// A snapshot was taken and the log was truncated behind it.
	snaps, _ := filepath.Glob(filepath.Join(c.dirs[0], "snapshots", "*"))
	if len(snaps) == 0 {
		t.Fatalf("no raft snapshot written in %s", c.dirs[0])
	}
	for i := range c.Nodes {
		c.Restart(i)
	}
	c.WaitForLeader(10 * time.Second)
	for _, n := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := n.Store().WaitForIndex(ctx, index); err != nil {
			t.Fatalf("%s did not replay to %d after restart: %v", n.NodeID(), index, err)
		}
		cancel()
	}
	// Same state: the store's hash covers every object and the applied
	// index (only commands move it, not the new term's no-op entries).
	for _, n := range c.Nodes {
		if got := n.Store().Hash(); got != want {
			t.Fatalf("%s hash after restart %s, before %s", n.NodeID(), got, want)
		}
	}
	if got := len(serviceIDs(c.Nodes[0].Store())); got != 200 {
		t.Fatalf("%d services after restart, want 200", got)
	}
}

func serviceIDs(s *store.MemoryStore) []string {
	var ids []string
	s.View(func(tx store.ReadTx) {
		for _, svc := range tx.FindServices(store.All()) {
			ids = append(ids, svc.Id)
		}
	})
	return ids
}

func TestQuorumLossFailsWritesQuicklyAndForceNewClusterRecovers(t *testing.T) {
	c := MakeTestCluster(t, 3)
	ids := writeServices(t, c.Leader().Store(), "acked", 30)
	survivor := followers(c)[0]
	si := indexOf(c, survivor)
	// An acknowledged write is on a majority, not on every node: the
	// survivor (as an operator would pick the most current one) must
	// hold the last one before the others are lost.
	want := c.Leader().Store().AppliedIndex()
	deadline := time.Now().Add(5 * time.Second)
	for survivor.Store().AppliedIndex() < want {
		if time.Now().After(deadline) {
			t.Fatalf("follower stuck at index %d, leader at %d", survivor.Store().AppliedIndex(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range c.Nodes {
		if i != si {
			c.Stop(i)
		}
	}
	// Writes fail with a Raft error within a bounded time rather than hang.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	for {
		err = survivor.Store().Update(ctx, func(tx store.Tx) error {
			return tx.CreateService(&api.Service{Id: store.NewID(), Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: "no-quorum"}}})
		})
		if err != nil || ctx.Err() != nil {
			break
		}
	}
	if !errors.Is(err, ErrNoLeader) && !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrIndeterminate) {
		t.Fatalf("write without quorum: got %v, want a Raft availability error", err)
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer rcancel()
	if err := survivor.ConsistentRead(rctx); err == nil {
		t.Fatal("consistent read succeeded without quorum")
	}
	// Recover on the survivor.
	c.Stop(si)
	n := c.ForceNewCluster(si)
	c.WaitForLeader(10 * time.Second)
	requireServices(t, n, ids)
	writeServices(t, n.Store(), "after-recovery", 3)
	if len(n.Members()) != 1 {
		t.Fatalf("recovered cluster has %d members, want 1", len(n.Members()))
	}
}

func TestHasState(t *testing.T) {
	dir := t.TempDir()
	if ok, err := HasState(dir); ok || err != nil {
		t.Fatalf("empty dir: %v %v", ok, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "raft.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, _ := HasState(dir); !ok {
		t.Fatal("dir with raft.db reported empty")
	}
}

// Concurrent writers share log entries (batches); each write still gets
// its own outcome: of several creates of one name exactly one wins.
func TestConcurrentProposalsGetTheirOwnOutcome(t *testing.T) {
	c := MakeTestCluster(t, 3)
	s := c.Leader().Store()
	const names, tries = 40, 5
	errs := make(chan error, names*tries)
	for i := 0; i < names*tries; i++ {
		go func() {
			name := fmt.Sprintf("svc-%d", i%names)
			errs <- s.Update(context.Background(), func(tx store.Tx) error {
				// Stage without looking, so the leader's Apply decides.
				return tx.CreateService(&api.Service{Id: store.NewID(), Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: name}}})
			})
		}()
	}
	ok, conflicts := 0, 0
	for i := 0; i < names*tries; i++ {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrNameConflict):
			conflicts++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != names || conflicts != names*(tries-1) {
		t.Fatalf("%d created and %d conflicts, want %d and %d", ok, conflicts, names, names*(tries-1))
	}
	if got := len(serviceIDs(s)); got != names {
		t.Fatalf("%d services stored, want %d", got, names)
	}
}
