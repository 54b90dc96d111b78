package sandbox

import "errors"

// ErrInvalid is returned (wrapped, naming the offending field) when an
// Attachment or a name is malformed. Nothing was changed in the kernel.
var ErrInvalid = errors.New("sandbox: invalid argument")

// ErrBridgeNotFound is returned by Attach when Attachment.Bridge does not
// exist in the host namespace or is not a bridge: create the network
// first (vxlan.Manager.EnsureNetwork).
var ErrBridgeNotFound = errors.New("sandbox: bridge not found")

// ErrNameInUse is returned when an interface name Attach or Detach needs
// is taken by an interface that is not the attachment's veth.
var ErrNameInUse = errors.New("sandbox: interface name in use")
