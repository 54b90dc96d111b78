package nft

import "github.com/google/nftables/binaryutil"

// NativeUint32 encodes v as the kernel's nftables registers hold
// integers: in host byte order. Use it for what numgen, marks, ct state
// bits and fib address types are compared with, and for the integer keys
// of maps that a numgen result looks up (with big-endian keys, only key 0
// would ever match on a little-endian host).
func NativeUint32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

// ReadNativeUint32 decodes an integer in host byte order, as NativeUint32
// encodes it, from the first 4 bytes of b. b must hold at least 4 bytes;
// check the length first.
func ReadNativeUint32(b []byte) uint32 { return binaryutil.NativeEndian.Uint32(b) }
