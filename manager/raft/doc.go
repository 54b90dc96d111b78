// Package raft replicates the managers' store with hashicorp/raft.
//
// A Node wraps one Raft server: a bbolt log and stable store
// (raft-boltdb/v2), file snapshots taken automatically (the log is
// truncated behind them), and a transport (TCP sharing the API port
// through a one-byte prefix, or in-memory in tests). The store's
// commands are the log entries; the FSM applies them with
// store.MemoryStore.Apply, which is deterministic.
//
// Writes go through Propose from any manager: the leader appends them,
// a follower forwards them to the leader through a Forwarder. Reads that
// must be current call ConsistentRead first: the leader confirms its
// leadership (VerifyLeader), a follower asks the leader for its applied
// index (ReadIndex) and waits until it has applied as far.
//
// Errors: ErrNoLeader and ErrNotLeader say the write could not be
// started. After ErrIndeterminate the write may or may not have been
// committed: read the state again before retrying.
package raft
