// Package nft holds the nftables plumbing that the overlay packages
// programming tables inside network namespaces share (overlay/vip and
// overlay/ingress; overlay/bridge for interface names): a lasting netlink
// connection opened inside a namespace with socket buffers large enough
// for big batches, base chains described and recognised, the chains of a
// table listed, a table deleted, and the encoding and decoding of what
// the library handles raw (verdicts of map elements, integers in host
// byte order, interface names).
//
// It knows nothing of what the tables mean. Its errors carry no sentinel
// of the caller's: each caller wraps them in its own (ErrNamespace,
// ErrUnrecognized) with the context it alone knows. Nothing here moves
// the calling thread into another namespace.
package nft
