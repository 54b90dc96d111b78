// Package store is the managers' in-memory cluster state.
//
// Every change is a Command applied through Raft: a caller runs Update,
// which stages actions against the current state and hands them to a
// Proposer (the Raft node); each manager's FSM then calls Apply with the
// same commands in the same order, so every manager holds the same state.
// Apply is deterministic: the result depends only on the state and the
// command (no clock, no map iteration order, no I/O).
//
// Objects handed out by the store are shared and read-only: callers must
// proto.Clone an object before changing it. Each write carries the
// object's Meta.Version as read; a write whose version is no longer the
// stored one fails with ErrSequenceConflict (compare-and-swap). Task
// states and desired states only move forward (ErrTaskStateBackwards).
//
// Services, networks, secrets, configs and clusters have names unique per
// kind (compared exactly); nodes are found by their spec name or else
// their hostname, which need not be unique. Empty names are not indexed:
// any number of objects may be unnamed, and ByName("") finds nothing.
// ByNodeID("") finds the tasks not yet placed on a node.
//
// Watch and ViewAndWatch deliver the applied changes as events; a watcher
// that falls behind is closed and must re-list. LocalProposer applies
// commands directly, for a single process and for tests of the packages
// above the store; NewID makes object IDs.
//
// The code is split by concept: memory.go (the store, View, Update,
// waiting), tx.go (transactions), overlay.go (staged changes and the
// checks shared by transactions and Apply), apply.go (the state machine),
// table.go and sortedlist.go (tables and indexes), kinds.go (what differs
// between kinds), watch.go, snapshot.go and proposer.go.
package store
