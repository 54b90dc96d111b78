// Package vxlan programs the host side of Shoal's overlay networks: per
// network and per host, one Linux bridge (shbrVNI) and one VXLAN device
// (shvxVNI) enslaved to it, inside a given network namespace.
//
// The VXLAN device uses UDP port 4789 explicitly, MTU 1450 (the bridge
// too), no learning and ARP proxy: nothing is learned from the wire and no
// ARP crosses the underlay. Forwarding comes only from the gossiped
// endpoint table, through two calls:
//
//   - SetPeers: one flood entry (all-zero MAC → VTEP) per peer host, for
//     broadcast and unknown unicast;
//   - SetRemotes: per endpoint on another host, an FDB entry MAC → VTEP and
//     a permanent neighbour entry IP → MAC, both on the VXLAN device, so
//     the device answers ARP for it locally.
//
// Every address used across hosts must be published with SetRemotes on
// the other hosts (a host-specific bridge address too, with the bridge's
// MAC, see BridgeMAC): an address with no neighbour entry gets no ARP
// reply at all.
//
// The Manager keeps no state of its own: every call reads the kernel and
// converges it, so calls are idempotent and a restarted agent reconciles
// with Networks. A Manager works in its namespace through a netlink socket
// opened there; it never moves the calling thread, so one process can
// serve many namespaces. All methods are safe for concurrent use.
package vxlan
