// Package placement is the leader's placement loop: it finds the tasks
// waiting for a node, asks the pure scheduler where they go, and commits
// the answers to the store.
//
// A task waits when its status is PENDING and its desired state is at
// most RUNNING (READY included: a task held back by a restart delay is
// placed, and its agent prepares it without starting it). For each such
// task placement writes, as docs/task-lifecycle.md assigns to it, either
// node_id and status {ASSIGNED, "assigned", timestamp}, or, when no node
// fits, status.err with the scheduler's reason (the task stays PENDING).
// It writes nothing else, and writes a reason only when it changed, so
// that a task that cannot be placed costs no write per pass.
//
// The loop (Placer.Run) runs only on the Raft leader; the manager starts
// it again on every leadership change. At start it lists the state with
// store.ViewAndWatch and places everything that waits; then it follows
// the store's events, which are hints: a new waiting task, a node that
// changed, capacity freed by a task that ended while some tasks did not
// fit. Events are collected for Config.BatchWindow before a pass, so a
// service of ten thousand tasks is placed as one group. Tasks that did
// not fit are tried again every Config.RetryInterval. When the watch is
// closed (the loop fell behind), it lists the state again.
//
// Each pass groups the waiting tasks by service and spec version, builds
// a scheduler snapshot of the nodes with what runs on them (kept up to
// date from the events rather than recounted each pass), places every
// group with one scheduler.Planner, and commits. Many may plan, one
// commits carefully (Nomad's plan applier): every commit transaction
// reads each task again and writes it only if it has not changed since
// it was planned (same version), and checks the chosen node again against
// the store's current state (node status, availability, labels, and for
// specs that need them reservations, host ports and replicas per node). A
// task that fails either check is skipped and planned again in the next
// pass. Transactions are bounded (Config.MaxCommitTasks,
// Config.MaxCommitBytes) so that a Raft entry stays small.
//
// Placement counts its own assignments in its node model when it
// commits them; the watch filter drops the PENDING→ASSIGNED events so
// that a commit of ten thousand assignments does not overflow the watch.
// Only the leader's placer assigns tasks.
package placement
