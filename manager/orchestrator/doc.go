// Package orchestrator holds the level-triggered reconcilers that keep
// every service's tasks in line with its spec: replicated services,
// global services, replicated and global jobs, restart policies, moves
// off drained nodes, tasks of removed services and task history.
//
// It runs on the Raft leader only (Orchestrator.Run, started on every
// leadership gain). It writes tasks as docs/task-lifecycle.md says and no
// other field: it creates tasks (PENDING, desired RUNNING, or READY while
// a restart delay runs), raises desired states (never lowers one), marks
// the status of a replaced task of a DOWN node ORPHANED, and deletes dead
// tasks. It never picks a node for a replicated task: placement does.
//
// # Structure
//
// Deciding is separate from writing, as in Nomad's reconciler. For one
// service, NewReconciler(Input).Compute() is a pure function from the
// service, its tasks, the nodes, the cluster settings and the time to a
// Plan: tasks to create, desired-state raises, ORPHANED marks, deletions
// and the next wake-up time. The Orchestrator reads inputs from the store,
// computes plans and commits them; the commit re-reads every object it
// writes and drops a plan computed from a state that has changed since
// (then computes it again). Events are hints: a pass always looks at the
// whole state of a service, so a missed event costs only time.
//
// # Words
//
//   - A task is dead when its status is terminal (COMPLETE, SHUTDOWN,
//     FAILED, REJECTED, REMOVE, ORPHANED) or its node is DOWN or no longer
//     in the store.
//   - A task is live when its desired state is RUNNING or READY and it is
//     not dead. Only live tasks count toward a service's size.
//   - A dead task whose desired state is still RUNNING or READY is
//     unhandled: the orchestrator has not dealt with it yet, or decided
//     not to replace it. Dealing with a dead task means raising its
//     desired state to SHUTDOWN, in the same transaction as creating its
//     replacement. A task whose desired state is SHUTDOWN or beyond is
//     never restarted.
//   - A slot is a replica number (replicated services and jobs, 1 and up)
//     or, for a global service, a node; its tasks in creation order are
//     its history, its newest task outside drained nodes its head. When a
//     slot has no live task, its head says what the slot waits for: an
//     unhandled head is restarted (or was refused a restart, and then
//     stays as it is, recording the refusal); a head stopped on request
//     (scaled down, moved, released) leaves the slot free.
//
// # Replicated services
//
// A service keeps `replicas` occupied slots, each with one live task. A
// slot is occupied when it has a live task or an unhandled dead head.
// Slot numbers are identities, not a dense range: after a scale-down
// the remaining slots keep their numbers. Scale up creates fresh tasks in
// the lowest free slot numbers. Scale down gives up surplus slots in this
// order: slots with no live task (their dead head is released), then
// slots whose task is not placed yet (no node, below ASSIGNED), then
// slots with a task leaving a drained node, then the tasks on the node
// that runs the most tasks of the service (recounted after each pick),
// oldest (lowest created_at) first; remaining ties go to the higher slot.
// Stopping a task raises its desired state to SHUTDOWN.
//
// A slot with two live tasks outside drained nodes keeps the one furthest
// along (status, then spec version, then newest) and stops the other.
//
// Tasks made by this package (fresh ones and restarts) always copy the
// service's current task spec and spec_version.
//
// # Rolling updates
//
// A live task is outdated when its spec_version is older than the
// service's and its task spec (or image digest) differs from the
// service's: a scale, which bumps spec_version too, replaces nothing.
// The update supervisor (update.go) replaces outdated tasks of a
// replicated service in slot order, or of a global service node by node
// (the replacement on the same node; a paused node's task waits until
// the node is active again), at most parallelism slots in flight
// (unset: 1; 0: all at once). stop-first (default) stops the old task
// and creates its replacement together; start-first creates the
// replacement and stops the old task once the new one is RUNNING, so a
// slot may then hold one outdated and one current live task. A slot is
// in flight until its new task has been RUNNING for monitor (default
// 5 s) and its old task has stopped; a done slot keeps its place for
// delay more. Failures are current-version tasks FAILED, REJECTED or
// reporting unhealthy; past max_failure_ratio (failed slots over
// updated slots) the failure action applies: pause (PAUSED, with the
// task and its error), continue, or rollback: the plan swaps spec and
// previous_spec and raises spec_version (the only spec write of this
// package), and the rollback runs as an update under spec.rollback,
// ending ROLLBACK_COMPLETED with the reason kept in its message (a
// failing rollback pauses). Nothing is kept
// in memory: update_status.spec_version says which version the status
// is about, so a new leader resumes, and a paused update stays paused
// until the spec_version changes.
//
// # Restart policy
//
// The dead head's own spec says (task.restart): condition any (default)
// replaces every dead task, a replicated task that exits 0 included;
// on-failure replaces a task that FAILED, was REJECTED or ORPHANED, or
// whose node is down, but not one that COMPLETEd or was SHUTDOWN without
// being asked; none replaces nothing. The replacement goes in the same
// slot (on the same node for a global service), made from the current
// spec. It is created at once, desired READY, so placement and the agent
// can prepare it, and raised to RUNNING when delay (default 5 s) has
// passed since the dead task's status timestamp; the plan's wake-up time
// carries the next such instant, there is no goroutine per task. A task
// dead because of its node is replaced with no delay.
//
// max_attempts (0: unlimited) bounds the attempts within window (0:
// unbounded). An attempt is a task of the slot that ended by itself
// (COMPLETE, FAILED, REJECTED, ORPHANED), was dealt with, and ended (its
// status timestamp) within the window. Counting the tasks that ended
// rather than their replacements keeps the count exact while history is
// reaped, and uses the same clock as the restart delay. A slot refused
// for max_attempts with a window is looked at again when the oldest
// attempt leaves the window: the policy is a rate, as in Nomad. A task
// stopped without being asked (SHUTDOWN with desired RUNNING) is
// restarted under condition any but not counted as an attempt, since once
// dealt with it cannot be told from a requested stop.
//
// A refused task is left as it is (desired RUNNING): that is how the
// store remembers that its slot must not be refilled. Scaling counts it
// as an occupied slot; a scale-down releases it first.
//
// # Nodes
//
// Tasks on a node whose status is DOWN, or that is gone from the store,
// are dead. A replicated task of such a node is replaced through the
// restart policy (condition and max_attempts apply, and the replacement
// counts as an attempt; the delay does not apply); the old task's desired
// state is raised to SHUTDOWN and, in the same transaction, its status
// set to ORPHANED when it is not terminal yet.
// When the node comes back, its agent learns that the task is desired
// SHUTDOWN and stops it. A task refused a restart stays desired RUNNING
// and runs on if its node comes back.
//
// Tasks on a drained node (availability DRAIN, not DOWN) are moved: a
// fresh replacement (not a restart attempt, no delay) is created in the
// task's slot and the old task is stopped. With the service's update
// order stop-first (the default) both happen at once; with start-first
// the old task runs until the replacement's status is RUNNING. A move is
// in flight until the old task has stopped; update.parallelism (unset or
// 0: no limit) caps the moves in flight per service. If a start-first
// replacement dies and the restart policy refuses to replace it, the old
// task is stopped anyway: a drained node keeps nothing.
//
// # Global services
//
// A global service has one live task, slot 0 and node preset, on every
// eligible node: status not DOWN, availability not DRAIN, and every
// placement constraint satisfied (the syntax of scheduler.ParseConstraint).
// A PAUSE node keeps its task but gets no new one. A node that stops
// being eligible (DOWN, drained, constraints changed, removed) has its
// tasks stopped, desired SHUTDOWN, not replaced; a DOWN node's tasks are
// not marked ORPHANED since they are not replaced. When the node is
// eligible again it gets a fresh task. A node gone from the store keeps
// no history: its dead tasks are deleted. Global tasks are named
// SERVICE.NODEID, replicated ones SERVICE.SLOT.
//
// # Jobs
//
// A replicated job runs tasks to completion in slots 1 and up until
// total_completions slots hold a COMPLETE task, with at most
// max_concurrent (0 means 1) live tasks at once. Failed tasks are
// restarted in their slot per the restart policy; a COMPLETE task is
// never restarted, and a slot refused a restart stays occupied, so the
// job then ends short of its completions. Moves off drained nodes are
// always stop-first for jobs. A global job runs one task to completion
// on every eligible node, the nodes eligible when it starts and those
// that become eligible later alike; a node that holds a COMPLETE task of
// the job is done. Completions of every spec version count.
//
// # Removed services
//
// The tasks of a service gone from the store get desired state REMOVE
// (the control API sets it when it removes the service; this makes sure)
// and are deleted once they cannot run: terminal status, node DOWN or
// gone, or never placed.
//
// # History
//
// Dead tasks are kept per slot (per node for global services) up to the
// cluster's task_history_retention_limit (5 when unset; 0 keeps none),
// newest by status timestamp; older ones are deleted. Kept regardless:
// unhandled dead tasks (refused or waiting restarts), a job's COMPLETE
// tasks, the task a READY replacement replaced, and the attempts a
// max_attempts policy still counts.
//
// # Invariants
//
// After a pass, from any state (checked by the property tests over
// Compute; a simulation over time also checks that a service reaches its
// goal once its nodes are healthy):
//   - a replicated service has live tasks in at most `replicas` slots,
//     and in exactly that many when every dead task may be restarted
//     (condition any, no max_attempts);
//   - each slot has at most one live task outside drained nodes and one
//     on them, and both only during a start-first move: with stop-first
//     (and for jobs) never; with start-first, in at most parallelism
//     slots, or as many as were moving before the pass if more; the same
//     for an outdated and a current live task during a start-first
//     update;
//   - an update runs at most replicas + parallelism tasks (start-first)
//     and at least replicas − parallelism (stop-first), and replaces each
//     slot once (checked over a simulated rollout);
//   - a global service has exactly one live task on every eligible,
//     non-paused node whose tasks may all be restarted, and none on
//     other nodes (a paused node keeps at most one); during a
//     start-first update, at most parallelism nodes also hold the
//     outdated task their new one replaces;
//   - a job never has more than max_concurrent live tasks, unless it had
//     more before the pass, and never makes a task once its completions
//     are reached;
//   - no desired state is lowered and no status moves backwards;
//   - the plan is the same for the same input, in whatever order the
//     tasks and nodes come, and a second pass at the same instant over
//     the state the plan leads to changes nothing.
package orchestrator
