// Package lab builds a Shoal cluster of several hosts on one Linux
// machine, for the end-to-end tests and the playground.
//
// Each host is a network namespace NAME-hN with one interface, eth0, a
// veth whose peer is a port of the underlay bridge in the namespace
// NAME-ul. Underlay addresses (172.29.0.0/24 by default) exist only inside
// those namespaces: nothing is added to the machine's own namespace, and
// no traffic leaves the lab. Every host runs its own containerd (own
// root, state, socket and containerd namespace NAME-hN) and its own
// `shoal daemon`; the underlay namespace runs a registry the hosts pull
// from. The machine reaches the daemons through their unix sockets
// ([Host.Socket]) and the underlay through [Lab.DialContext].
//
// A lab is described by NAME.json in its folder, written before anything
// is created, so [Open] can find a running lab from another process and
// [Sweep] can tear down what a crashed run left behind. Faults are method
// calls: [Host.Kill] (power off: daemon, containerd and containers killed,
// link down), [Host.Start] (power on), [Host.StopDaemon] /
// [Host.ContinueDaemon] (SIGSTOP / SIGCONT), [Host.RestartDaemon],
// [Host.Partition] / [Host.Heal] (nftables drop rules in the host's
// namespace).
//
// Everything needs root. Processes are only ever signalled by the PID
// this package recorded, after checking that the PID still names the
// process it started.
package lab
