// Package nstest is test support shared by the overlay packages that
// program network namespaces (overlay/vip, overlay/ingress,
// overlay/bridge): namespaces named per test run and removed when the
// test ends, TCP and UDP servers running inside a namespace, and the
// small helpers their tests and benchmarks repeat. Only tests import it.
//
// Nothing here touches the caller's own namespace: every namespace is
// created on a throw-away thread (vxlantest.NewNS) and every server
// socket is opened inside its namespace (nsrun.Do).
package nstest
