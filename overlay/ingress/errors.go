package ingress

import "errors"

// ErrNamespace is returned (wrapped) when a namespace path cannot be
// opened or is not a network namespace: the host or task is gone, or the
// caller passed the wrong path (use /run/netns/NAME or /proc/PID/ns/net).
var ErrNamespace = errors.New("cannot open the network namespace")

// ErrInvalidProtocol is returned (wrapped) when Published.Protocol is not
// "tcp" or "udp".
var ErrInvalidProtocol = errors.New(`the protocol must be "tcp" or "udp"`)

// ErrInvalidPort is returned (wrapped) when a published, target or UDP
// port is 0.
var ErrInvalidPort = errors.New("a port must be between 1 and 65535")

// ErrDuplicatePort is returned (wrapped) when two services publish the
// same protocol and port, or TaskSide.UDPPorts lists a port twice.
var ErrDuplicatePort = errors.New("the same port is listed twice; publish each protocol and port once")

// ErrInvalidBackend is returned (wrapped) when a backend is not a unicast
// IPv4 address.
var ErrInvalidBackend = errors.New("a backend must be a unicast IPv4 address")

// ErrDuplicateBackend is returned (wrapped) when a service lists the same
// backend twice.
var ErrDuplicateBackend = errors.New("a service lists the same backend twice; list each task address once")

// ErrInvalidGateway is returned (wrapped) when a Gateway has an index
// outside 1..MaxGateways, an address that is not unicast IPv4, or a MAC
// that is not a 6-byte unicast Ethernet address.
var ErrInvalidGateway = errors.New("invalid ingress gateway")

// ErrDuplicateGateway is returned (wrapped) when two gateways share an
// index, an address or a MAC.
var ErrDuplicateGateway = errors.New("two gateways share an index, address or MAC; give each node its own")

// ErrInvalidInterface is returned (wrapped) when TaskSide.IfName is not a
// valid interface name, or names no interface of the task namespace.
var ErrInvalidInterface = errors.New("invalid task interface")

// ErrUnrecognized is returned (wrapped) by ReadHost and ReadTask when the
// kernel holds a rule, chain, map or route in this package's table or
// routing range that Apply does not write (damaged, or written by
// someone else). Applying again rewrites it.
var ErrUnrecognized = errors.New("the ingress state holds rules this package does not write; apply again to rewrite them")
