package vxlan

import "errors"

// ErrInvalid is returned (wrapped, with the offending field named) when a
// Config, Network, Remote or VNI argument is out of range or malformed.
// Nothing was changed in the kernel.
var ErrInvalid = errors.New("vxlan: invalid argument")

// ErrUnderlay is returned by New when the underlay interface or the VTEP
// address cannot be found, or the underlay's MTU is too small for the
// overlay MTU plus the 50 bytes of VXLAN encapsulation.
var ErrUnderlay = errors.New("vxlan: underlay unusable")

// ErrNetworkNotFound is returned by SetPeers and SetRemotes when the
// network's VXLAN device does not exist: call EnsureNetwork first.
var ErrNetworkNotFound = errors.New("vxlan: network not found")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("vxlan: manager closed")
