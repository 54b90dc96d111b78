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
// it never sends a DNS query. Its packets and streams carry a label
// (Config.Label) that keeps other clusters' gossip out, and are encrypted
// (next section). memberlist's log goes to Config.Logger.
//
// # Encryption and keys
//
// Every packet and stream is encrypted and authenticated by memberlist
// with AES-256-GCM, under keys the managers generate and hand to the
// agents over their mutual-TLS sessions: Config.Keys at Start,
// Table.SetKeys afterwards. A table holds one or a few keys of KeySize
// (32) bytes. The first, the primary, encrypts everything it sends; every
// key is tried on what it receives. Encryption is enforced both ways
// (memberlist's GossipVerifyIncoming and GossipVerifyOutgoing): what
// arrives in clear or under no key the table holds is dropped before any
// of it is read (memberlist logs "no installed keys could decrypt the
// message" or "Decrypt packet failed"), and nothing goes out in clear.
// The label travels in clear in front of the ciphertext, so that other
// clusters' traffic is dropped without trying keys, and it is
// authenticated as GCM associated data: a packet moved to another label
// does not decrypt.
//
// A host that holds no key the others encrypt with, or that encrypts with
// a key they lack, cannot take part: its Join fails with ErrJoin, the
// others' reconnects to it fail, a member that loses the shared key is
// declared failed within the failure-detection time (see Timing), and no
// endpoint crosses either way. To the others it is a host that is down,
// and to it they are. It rejoins by itself (reconnects, orphan repair,
// the agent's Join) once it holds their keys again.
//
// # Key rotation
//
// A node reads a peer only if it holds the peer's primary. So the
// managers rotate from key old to key new in three steps, each one done
// on every node (every node has acknowledged it) before the next starts:
//
//  1. Install: every node gets [old, new]. Everyone still encrypts with
//     old; new now decrypts everywhere.
//  2. Use: every node gets [new, old]. Nodes switch one by one; since
//     every node holds both keys, each reads those already switched and
//     those not yet.
//  3. Remove: every node gets [new]. Nobody encrypts with old any more.
//
// Endpoints keep flowing through every step; no packet fails to decrypt
// (TestKeyRotation). Skipping step 1 (giving [new, old] to nodes whose
// peers hold only old) cuts each switched node off until the rest catch
// up: its peers cannot read it and declare it failed within seconds, and
// its endpoints leave their tables (TestRotationWithoutInstallCutsOff).
// Only an emergency rotation (a leaked key) should do that, by going
// straight to [new]. A node that was down during a rotation is cut off
// as above until the managers give it the current list, when its
// session with them resumes.
//
// SetKeys adds the keys the table lacks, switches the primary, then
// removes the keys no longer listed, while gossip runs; setting the keys
// already installed is a no-op.
package gossip
