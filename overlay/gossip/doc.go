// Package gossip is the endpoint table that agents share peer to peer
// with hashicorp/memberlist: every agent publishes the endpoints of its own
// running tasks (endpoint and network IDs, service, aliases, task address
// and MAC, the host's underlay address as VTEP, the service VIP) and holds
// those of every other live host, to program VXLAN forwarding, VIP
// backends and DNS. The managers only hand out a few peer addresses to
// Join; after that the table needs no manager, so service discovery keeps
// working while they have no quorum.
//
// # Ownership and versions
//
// A node publishes and withdraws only its own entries (Publish, Withdraw,
// Replace). Each change gets the next number of the node's version
// counter, within the node's incarnation: a number that grows across
// restarts (by default the start time in nanoseconds, Config.Incarnation).
// (incarnation, version) orders a node's changes: an older version never
// overrides a newer one, and a higher incarnation replaces everything known
// of the node, so a restarted host's fresh state wins over gossip of its
// previous run. Should gossip carry a higher incarnation of this very node
// than its own (a clock that jumped back), the node moves above it and
// re-announces its entries. The merge rules are a pure state machine
// (state.go) with property tests.
//
// # Dissemination
//
//   - Deltas: each change is one small message (at most 1200 bytes, see
//     ErrEndpointTooLarge) queued in memberlist's TransmitLimitedQueue and
//     piggybacked on its gossip (every GossipInterval to GossipNodes random
//     peers). Every node that learns a change relays it, so it spreads
//     epidemically; a newer change of the same endpoint replaces the older
//     one in the queue.
//   - Anti-entropy: memberlist's push-pull exchanges the whole table (every
//     node's entries, with the version up to which each is complete) with
//     a random peer every PushPullInterval, and on every Join, so a late
//     joiner gets the full table during Join and lost deltas are repaired.
//   - Departure: when memberlist declares a host dead (failure detection)
//     or it leaves (Leave announces it first), every entry of that host
//     leaves the table, and its gossip of that incarnation is refused from
//     then on. A host that comes back with a new incarnation is accepted at
//     once; one falsely declared dead is re-fetched from it when memberlist
//     sees it alive again.
//   - Repair: every ReconnectInterval the table rejoins one random failed
//     peer (healed partitions, a host back on its address without the
//     managers). A node whose entries it holds but that memberlist does not
//     list as alive (memberlist's gossip missed it, or a relay raced its
//     death) is contacted at its gossip address after a few seconds, and
//     its entries are dropped only if that does not make it a member.
//
// # Timing: how fast a dead host leaves every table
//
// memberlist probes one peer per ProbeInterval (I = 500ms), so some member
// probes a dead host within about one interval; the probe fails within
// that interval; the host is then suspect for
// SuspicionMult × log10(N) × I (log10 floored at 1; 1.5s for N ≤ 10,
// 2.5s at N = 50, 3.7s at N = 300) once one other member confirms the
// suspicion, up to SuspicionMaxTimeoutMult (3) times that without
// confirmation; the dead message then spreads in a few 100ms gossip rounds.
// Expected: about 2 × I + 1.5 × log10(N) s + 0.5 s, i.e. 3s for 5 hosts,
// 4.5s for 100 and 5.2s for 300; worst case (no confirmation, e.g. peers
// overloaded) about 13s for 300. Measured on loopback with these defaults
// (BenchmarkDeadNodeRemoval, all nodes in one process on 2 shared cores):
// 5 hosts mean 2.6s, max 3.2s; 50 hosts mean 3.4-3.9s, max 4.8s; 100 hosts
// mean 4.5s, max 5.7s. A graceful Leave takes about 0.1s. A change
// published on one host is visible on the others after one or two gossip
// rounds (BenchmarkPropagation: 100ms on 5 hosts).
//
// # Network
//
// memberlist binds TCP and UDP on the host's underlay address
// (Config.BindAddr, port 7946 by default) and joins only IP literals, so
// it never sends a DNS query. Its packets carry a label
// (Config.Label) that keeps other clusters' gossip out. There is no
// encryption or authentication yet: any host that can reach the port can
// read and inject endpoints. (mTLS comes later, through memberlist's
// Transport.) memberlist's log goes to Config.Logger.
package gossip
