package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// Snapshot returns the whole state, every kind sorted by ID, and the
// applied index it reflects. The snapshot's objects are the stored ones,
// shared and read-only; the snapshot's slices are the caller's.
func (s *MemoryStore) Snapshot() (*api.StoreSnapshot, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.st
	return &api.StoreSnapshot{
		Nodes:    st.nodes.all.objects(),
		Services: st.services.all.objects(),
		Tasks:    st.tasks.all.objects(),
		Networks: st.networks.all.objects(),
		Secrets:  st.secrets.all.objects(),
		Configs:  st.configs.all.objects(),
		Clusters: st.clusters.all.objects(),
	}, s.applied.Load()
}

// Restore replaces the whole state with snap (nil is the empty state),
// applied up to index, which may be lower than the current applied index.
// It fails, changing nothing, when snap holds an object without an ID
// (ErrInvalidObject), two objects of a kind with one ID (ErrExist) or one
// unique name (ErrNameConflict).
//
// Every watcher is closed, because it missed the changes the snapshot
// stands for and must re-list; WaitForIndex callers are woken. Restore
// keeps snap's objects without copying them: the caller must not change
// them afterwards (the objects of another store's Snapshot are read-only
// and may be passed).
func (s *MemoryStore) Restore(index uint64, snap *api.StoreSnapshot) error {
	st := newState()
	for _, err := range []error{
		restoreTable(st.nodes, snap.GetNodes()),
		restoreTable(st.services, snap.GetServices()),
		restoreTable(st.tasks, snap.GetTasks()),
		restoreTable(st.networks, snap.GetNetworks()),
		restoreTable(st.secrets, snap.GetSecrets()),
		restoreTable(st.configs, snap.GetConfigs()),
		restoreTable(st.clusters, snap.GetClusters()),
	} {
		if err != nil {
			return fmt.Errorf("restore snapshot at index %d: %w", index, err)
		}
	}
	s.mu.Lock()
	s.st = st
	s.applied.Store(index)
	s.closeWatchers()
	s.mu.Unlock()
	s.wake()
	return nil
}

// restoreTable fills an empty table with objs, checking each like a
// create.
func restoreTable[T object](t *table[T], objs []T) error {
	o := overlay[T]{t: t}
	for _, obj := range objs {
		if err := o.checkCreate(obj); err != nil {
			return err
		}
		t.insert(obj)
	}
	return nil
}

// Hash is a hex SHA-256 of the deterministic protobuf encoding of
// Snapshot() followed by the applied index (8 bytes, big-endian). Two
// stores with the same state and applied index have the same hash. It
// returns "" when the state cannot be encoded (a string field that is not
// valid UTF-8).
func (s *MemoryStore) Hash() string {
	h, _ := s.HashAndIndex()
	return h
}

// HashAndIndex returns Hash and the applied index it covers, taken from
// one consistent snapshot.
func (s *MemoryStore) HashAndIndex() (string, uint64) {
	snap, index := s.Snapshot()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(snap)
	if err != nil {
		return "", index
	}
	b = binary.BigEndian.AppendUint64(b, index)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), index
}
