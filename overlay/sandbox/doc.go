// Package sandbox attaches a task's network namespace to an overlay
// network's bridge on its host: a veth pair whose host end (shv…) is a
// port of the bridge and whose other end is the task's interface (eth0,
// eth1, …) with its address, MAC, MTU and, optionally, a default route.
//
// The functions keep no state: each reads the kernel and converges it, so
// Attach can be called again with the same input (after a crash too) and
// List finds what a previous run left. They work in both namespaces
// through netlink sockets opened there and never move the calling thread.
package sandbox
