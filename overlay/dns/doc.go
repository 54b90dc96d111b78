// Package dns is the embedded DNS server that every container of a host
// reaches at 127.0.0.11:53, over UDP and TCP.
//
// One Server runs in the agent process. For each container it opens a UDP
// and a TCP socket bound to 127.0.0.11:53 inside the container's network
// namespace (a locked OS thread enters the namespace, creates the sockets
// and leaves; the sockets stay in the container's namespace) and serves
// them from the agent. The container's /etc/resolv.conf points there (see
// WriteResolvConf).
//
// Nothing outlives the agent process: the sockets close when it exits, so
// a restarted agent attaches its containers again and nothing needs
// cleaning. Attached lists what is attached, for reconciliation.
//
// # What a container can resolve
//
// Each attached container has a View: the networks it is attached to and
// the services on them. For a service NAME on network NET:
//
//   - NAME answers the service's VIP (endpoint mode vip) or, with no VIP
//     (endpoint mode dnsrr), the addresses of its tasks;
//   - tasks.NAME answers the addresses of its tasks;
//   - every network alias ALIAS of the service answers like NAME, and
//     tasks.ALIAS like tasks.NAME;
//   - NAME.NET, tasks.NAME.NET, ALIAS.NET and tasks.ALIAS.NET answer the same,
//     scoped to network NET;
//   - a task with a name (its container name) answers its own address.
//
// Names are case-insensitive, with or without the trailing dot. A container
// resolves only services on networks it is attached to: records of other
// networks in its View are ignored. When an unscoped name exists on several
// attached networks, the first of View.Networks that has it answers (as
// Docker does); a scoped name (NAME.NET) wins over an unscoped name spelled
// the same. When several records of one network share a name (two services
// with the same alias), the answer holds all their addresses. Every answer
// with several addresses comes in a fresh random order.
//
// A records carry IPv4 addresses and AAAA records IPv6 addresses; a known
// cluster name with no address of the asked family (an AAAA query on an
// IPv4 overlay) gets NOERROR with no answers, and so does any other query
// type for a cluster name.
//
// Cluster answers carry TTL 0: they change with every scale, update and
// failure, and the per-answer shuffle of tasks.NAME and dnsrr services only
// spreads load if nothing caches it; the resolver sits on the container's
// loopback, so a query costs tens of microseconds and caching would
// buy nothing. (Docker's resolver uses 600 s, which keeps removed tasks
// in caches.)
// Negative answers carry no SOA, so they are not cached either: a service
// created a moment later resolves at once.
//
// A name that is not in the View but is clearly a cluster name gets
// NXDOMAIN at once, without asking anyone: a single label, any name under
// tasks., and NAME.NET or tasks.NAME.NET for an attached network NET. (So a
// network named like a top-level domain, say "org", shadows that domain
// for its containers: name networks accordingly.) Every other name is
// forwarded.
//
// # Forwarding
//
// Names outside the cluster go to the upstream resolvers of Config (the
// host's, see UpstreamsFromResolvConf), tried in order within one bounded
// time budget: over UDP, again over TCP when the UDP answer is truncated;
// an upstream that fails, answers SERVFAIL or REFUSED is followed by the
// next. When none answers the container gets SERVFAIL. Forwarding sockets
// are opened in the agent's own network namespace (the host's), not the
// container's: a host whose resolv.conf names a loopback stub such as
// systemd-resolved's 127.0.0.53 is served correctly, and a container needs
// no route to the outside to resolve outside names. (The flip side: a
// container on a network without outside access can still resolve, but not
// reach, outside names.) Config.UpstreamNetNS moves the forwarding sockets
// into another namespace.
//
// Answers over UDP are cut to the client's EDNS0 size (512 bytes without
// EDNS0) with the TC bit set, so the client retries over TCP, as clients do.
//
// # Address order in clients
//
// The server shuffles tasks.NAME and dnsrr answers, but glibc's getaddrinfo
// then sorts several addresses by the longest prefix matching the client's
// own address (RFC 3484 rule 9), so glibc clients keep picking the nearest
// task despite the shuffle; Go's resolver and musl keep the server's order.
// Use the VIP for load balancing across tasks.
package dns
