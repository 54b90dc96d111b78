// Package ingress publishes service ports through the routing mesh: a
// flow to a published port on any node reaches one of the service's
// tasks on any node, and the task sees the client's own address (no
// source NAT, unlike Swarm's ingress). It implements the design validated
// in RECIPES ("Ingress that keeps the client address"), in two stateless,
// idempotent programmers that converge the kernel to a desired state.
//
// Every node has, on the ingress overlay network, its own address (its
// bridge's) and a fixed bridge MAC (vxlan.BridgeMAC); every task of a
// service published in ingress mode has an interface on that network.
//
// # Host side: ApplyHost, table `ip shoal_ingress` in the host namespace
//
//	map published  { type inet_proto . inet_service : verdict }      # tcp . 8080 : goto svc_tcp_8080_80
//	map slots_tcp_8080 { type integer : ipv4_addr . inet_service }  # 0..15 : task . 80, round-robin
//	chain mesh_prerouting { type nat hook prerouting priority dstnat;
//	                        fib daddr type local meta l4proto . th dport vmap @published }
//	chain mesh_output     { type nat hook output priority -100; the same rule }
//	chain svc_tcp_8080_80 { meta l4proto tcp dnat ip to numgen random mod 16 map @slots_tcp_8080 }
//	chain svc_tcp_9000_90 { meta l4proto tcp ct state new reject with tcp reset }   # no backends
//
// There is no masquerade: the DNATed flow keeps the client's address, and
// the task's side (below) sends the replies back through this node, whose
// conntrack reverses the DNAT. A service with no backends is refused
// explicitly (TCP reset, ICMP port unreachable for UDP), also when a
// process of the node listens on the port; its `ct state new` match turns
// conntrack on in the namespace, without which nat chains never run. A
// service's slot map has MinSlots (16) slots, or one per backend beyond
// 16; the target port is in the slots and in the service chain's name (so
// that a service with no backends keeps it).
//
// ApplyHost writes everything in ONE nftables batch: it flushes the rules,
// flushes and refills the maps it keeps, deletes what is gone and adds
// the rest; flows see the old rules or the new ones, never a mix (RECIPES
// measured 597 refusals out of 2328 connections when a slots map was
// replaced in two steps). Flows already established keep their backend.
// Slot keys are in native byte order, as numgen writes its register. It
// also sets net.ipv4.ip_forward=1 in the host namespace.
//
// # Task side: ApplyTask, table `ip shoal_ingret` and policy routing in the task
//
// For each node k (Gateway.Index, 1..MaxGateways): mark 0x100+k,
//
//	ip rule add pref 100+k fwmark 0x100+k/0xfff lookup 0x100+k
//	ip route add default via NODE_K_INGRESS_ADDR dev IFNAME table 0x100+k
//
// and in the table: a map `ingress_gw { type ether_addr : mark }` with
// every node's bridge MAC; a chain `type filter hook prerouting priority
// mangle` with `iifname IFNAME ct direction original ct mark set ether
// saddr map @ingress_gw` and `ct mark and 0xf00 == 0x100 meta mark set ct
// mark`; the same restore in a `type route hook output priority mangle`
// chain. For each UDP target port, `ip rule add pref 400 ipproto udp
// sport PORT lookup 256` and `ip route add default dev IFNAME table 256`:
// a server bound to 0.0.0.0 would otherwise pick its reply source from
// the main table. Sysctls: net.ipv4.conf.all.src_valid_mark=1 (strict
// rp_filter can stay on) and net.ipv4.tcp_fwmark_accept=1.
//
// Differences from RECIPES, all in numbering or robustness: RECIPES
// numbers table and priority 100+k and gives the UDP rule and table 110,
// which gateway 10 also takes, and tables 253..255 (default, main,
// local) would be gateways 153..155; here tables are 0x100+k (the mark)
// and the UDP rules sit at priority 400, after every gateway's, as they
// must. tcp_fwmark_accept makes a listener route its SYN-ACK by the SYN's
// mark: without it the SYN-ACK is first routed by the main table, and a
// task with no default route there never answers (the test task without
// one checks this).
//
// # Ordering and limits
//
// The caller orders the two sides: a node must be in every backend
// task's ingress_gw map (ApplyTask) before it publishes to that task
// (ApplyHost on that node), and leave it only after. A flow from a node a
// task does not list gets no mark, and its replies follow the task's main
// table. Flows die with the node they came in by, as in Swarm. A host
// whose FORWARD policy drops needs `ct status dnat accept` in its own
// forward chain. Reaching a published port through 127.0.0.1 on a node is
// not supported (the node's own addresses work). IPv4 only.
//
// ReadHost and ReadTask interpret what the kernel holds, not what was last
// applied, so a restarted agent can compare and reconcile; ApplyHost and
// ApplyTask rewrite leftovers of a crash. Calls for one namespace are
// serialised within a process; nothing moves the calling thread.
package ingress
