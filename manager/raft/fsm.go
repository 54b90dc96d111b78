package raft

import (
	"encoding/binary"
	"fmt"
	"io"

	hraft "github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// fsm applies committed log entries to the store.
type fsm struct {
	store *store.MemoryStore
}

// Apply decodes a batch of commands and applies them at the entry's
// index. It returns the store's errors, one per command ([]error); they
// reach the proposers through the apply future.
func (f *fsm) Apply(l *hraft.Log) interface{} {
	if l.Type != hraft.LogCommand {
		return nil
	}
	batch := &api.CommandBatch{}
	if err := proto.Unmarshal(l.Data, batch); err != nil {
		// A corrupt entry is consumed as an empty command so every manager
		// stays in step (and its applied index moves); the error reaches
		// the proposer.
		_ = f.store.Apply(l.Index, &api.Command{})
		return fmt.Errorf("decode commands at index %d: %w", l.Index, err)
	}
	return f.store.ApplyBatch(l.Index, batch.Commands)
}

// Snapshot captures the store; the encoding happens in Persist, off the
// apply path.
func (f *fsm) Snapshot() (hraft.FSMSnapshot, error) {
	snap, index := f.store.Snapshot()
	return &fsmSnapshot{snap: snap, index: index}, nil
}

// Restore replaces the store with a snapshot written by Persist.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read raft snapshot: %w", err)
	}
	if len(data) < 8 {
		return fmt.Errorf("raft snapshot is truncated (%d bytes)", len(data))
	}
	index := binary.BigEndian.Uint64(data[:8])
	snap := &api.StoreSnapshot{}
	if err := proto.Unmarshal(data[8:], snap); err != nil {
		return fmt.Errorf("decode raft snapshot: %w", err)
	}
	return f.store.Restore(index, snap)
}

// fsmSnapshot is a point-in-time copy of the store: the applied index
// (8 bytes, big endian) followed by the encoded StoreSnapshot.
type fsmSnapshot struct {
	snap  *api.StoreSnapshot
	index uint64
}

func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(s.snap)
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("encode raft snapshot: %w", err)
	}
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], s.index)
	if _, err := sink.Write(hdr[:]); err != nil {
		sink.Cancel()
		return err
	}
	if _, err := sink.Write(data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
