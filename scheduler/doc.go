// Package scheduler decides where tasks run. It is placement as a pure
// function of a snapshot: nodes and what already runs on them go in,
// assignments and explanations come out. It imports nothing but the API
// types and the standard library; it never reads the store, never writes,
// and never looks at a clock. The leader's placement loop
// (manager/placement) builds the snapshot, calls the scheduler, and
// commits the decisions after checking them again against fresh state.
//
// The pipeline, for one group of pending tasks of one service with one
// spec (Group):
//
//  1. Feasibility. NewSpec prepares the spec once per group (constraints
//     parsed, reservations, host ports). The filters (Pipeline) then check
//     each node: ReadyFilter (READY and ACTIVE), PlatformFilter,
//     ConstraintFilter (one per constraint), CPUFilter, MemoryFilter,
//     HostPortFilter, MaxReplicasFilter. The first four depend on the node
//     alone and run once per node per group; the others depend on what
//     runs on the node, and are turned into a capacity: how many more
//     tasks of the group the node can take.
//  2. Spread. Each placement preference (spread=node.labels.zone) splits
//     the feasible nodes by the label's value, nodes without the label
//     forming a group of their own; the group's tasks are shared out over
//     the values so that the service's task counts per value end as level
//     as capacity allows (spread.go), level after level, down to leaves.
//  3. Score. Within a leaf a heap hands each task to the node with the
//     fewest tasks of the same service, then the fewest tasks overall,
//     remaining ties broken by a PRNG seeded from the group (Seed), so a
//     placement replays exactly for the same snapshot and seed.
//  4. Explain. A task that fits nowhere gets a reason in the words of
//     Swarm: "no suitable node (insufficient memory on 3 nodes; constraint
//     node.labels.zone==eu not met on 2 nodes; 1 node not available)",
//     each node counted once, under the first filter it fails.
//
// A whole group is placed at once, in O(nodes + tasks·log nodes), not task
// by task with a scan of every node. A Planner places several groups in
// turn against one snapshot, each group seeing the tasks placed by the
// ones before it; the snapshot itself is never modified.
//
// Files: constraint.go (the constraint syntax), snapshot.go (NodeInfo,
// Snapshot), spec.go (Spec, Group, Seed), filters.go (Filter and the
// filters), score.go (the heap), spread.go (the preference tree),
// schedule.go (Planner, Schedule, Result).
package scheduler
