// Package vip programs service virtual IPs inside one container's network
// namespace: a connection to a VIP is load-balanced by the kernel
// (nftables numgen + DNAT) to one of the service's backend task addresses.
// There is no IPVS and no userspace proxy.
//
// Everything lives in one table, `ip shoal_vip`, in the container's
// namespace:
//
//	chain vip_nat    { type nat hook output priority -100; policy accept;
//	                   ip daddr VIP jump svc_VIP }              # one rule per service with backends
//	chain svc_VIP    { numgen random mod N vmap { 0 : goto ep_VIP_B0, 1 : goto ep_VIP_B1, ... } }
//	chain ep_VIP_B   { dnat to B }                              # address only: every port maps to the same port
//	chain vip_reject { type filter hook output priority 0; policy accept;
//	                   ip daddr VIP meta l4proto tcp reject with tcp reset
//	                   ip daddr VIP reject }                    # services with no backends
//
// The DNAT rewrites only the address, as Swarm's VIP does: the task is
// reached on the port the client dialled, for TCP, UDP and any other
// protocol. A port-less DNAT needs no `meta l4proto` match (that is a
// requirement of the nft CLI for `dnat to ADDR:PORT`, not of the kernel).
// A service with no backends is rejected in a filter chain (a nat chain
// sees only the first packet of a flow and has no reject): TCP gets a
// reset, other protocols an ICMP port unreachable, so a client fails at
// once instead of hanging. Packets already DNATed by conntrack no longer
// carry the VIP when they reach that filter chain, so established
// connections to a backend are untouched when the service goes to zero.
//
// Apply writes the whole desired state in ONE netlink batch (one
// transaction): it flushes every rule of the table, re-adds the rules of
// every service, and deletes the chains of services and backends that are
// gone. Packets see either the old or the new rules, never a mix. Existing
// connections keep their backend (conntrack) until they end.
//
// The vmap keys are encoded in native byte order, as numgen writes its
// register: with big-endian keys only key 0 would ever match.
//
// Read interprets what the kernel holds, not what Apply last wrote, so an
// agent that restarts can compare and reconcile; Apply rewrites the table
// whatever it held before, including leftovers from a crash.
package vip
