package bridge

import "errors"

// ErrInvalid is returned (wrapped, naming the offending field or
// argument) when a Config or an argument is malformed: an IPv6, unmasked,
// too small or too large subnet, a bad bridge name or MTU, an empty task
// ID or namespace path. Nothing was changed in the kernel.
var ErrInvalid = errors.New("bridge: invalid argument")

// ErrSubnetConflict is returned by Open when Config.Subnet overlaps a
// route or an address of another interface in the host namespace: tasks
// could not reach that network. Choose another Config.Subnet.
var ErrSubnetConflict = errors.New("bridge: subnet overlaps a host network")

// ErrNameInUse is returned by Open when Config.Bridge names an interface
// of the host namespace that is not a bridge. Nothing was changed.
var ErrNameInUse = errors.New("bridge: interface name in use")

// ErrExhausted is returned by Attach when every address of the subnet is
// allocated: detach tasks or configure a larger Config.Subnet.
var ErrExhausted = errors.New("bridge: no free address in the subnet")

// ErrHostNamespace is returned by Attach when the task's namespace is the
// host namespace itself: a host-mode task shares the host's network and
// needs no bridge attachment.
var ErrHostNamespace = errors.New("bridge: task namespace is the host namespace")

// ErrState is returned by Open when Config.StateFile cannot be read or
// does not hold a valid allocation table, and by Attach and Detach when it
// cannot be written (the allocation is then left as it was). The file
// records the addresses of running tasks: repair it or restore its
// directory's permissions; removing it forgets them.
var ErrState = errors.New("bridge: state file unusable")

// ErrClosed is returned by every method called after Close or Remove.
var ErrClosed = errors.New("bridge: network closed")
