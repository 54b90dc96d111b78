// Package bridge is Shoal's node-local "bridge" network, the default for
// tasks that join no overlay network, as Docker's default bridge: one
// Linux bridge (shbridge0) in the host's network namespace holding the
// gateway address (the subnet's first address, 172.18.0.1/16 by default),
// a veth per task (package sandbox) whose task end is eth0 with an address
// from the subnet and a default route via the gateway, IPv4 forwarding on
// in the host namespace, and outbound NAT: the nftables table
// "ip shoal_bridge" masquerades traffic from the subnet that leaves
// through any interface other than the bridge. Tasks on one host's bridge
// reach each other directly, without NAT.
//
// The network is host-local: addresses are allocated by this host alone
// (no Raft), never two tasks at once, the next free address after the
// last one handed out (so a freed address is reused last). Allocations
// are written atomically to a JSON state file before the kernel is
// touched, so a restarted agent keeps the addresses of its running tasks;
// Open removes the bridge ports of tasks the state file does not know
// (leftovers from a crash), and the agent detaches the tasks in Tasks()
// that no longer run.
//
// Host mode. A task in "host" network mode joins the host's namespace
// itself: the agent hands Config.HostNS (or, when it is empty, the
// runtime's host namespace) to the container runtime and copies the host's
// resolv.conf. Such a task needs nothing from this package: no veth, no
// address and no NAT, and Attach refuses the host namespace
// (ErrHostNamespace) so that it is never given one by mistake.
//
// Every method of a Network is safe for concurrent use; Attach and Detach
// are serialised. The package works in the host namespace through netlink
// and nftables sockets opened there and never moves the calling thread,
// except briefly on a locked thread of its own to write a sysctl.
package bridge
