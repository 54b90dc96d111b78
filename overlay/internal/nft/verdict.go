package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ErrMalformedVerdict is returned (wrapped) by ParseVerdict when the data
// is not a well-formed verdict.
var ErrMalformedVerdict = errors.New("malformed verdict")

// ParseVerdict decodes the data of a verdict map element as the library
// returns it (SetElement.Val: the nested NFTA_VERDICT_* netlink
// attributes) and returns the verdict and, for a jump or goto, the target
// chain ("" otherwise). It errs with ErrMalformedVerdict when the
// attributes are truncated or carry no 4-byte verdict code.
func ParseVerdict(b []byte) (expr.VerdictKind, string, error) {
	attrs, err := netlinkAttrs(b)
	if err != nil {
		return 0, "", fmt.Errorf("verdict: %w: %w", ErrMalformedVerdict, err)
	}
	code := attrs[unix.NFTA_VERDICT_CODE]
	if len(code) != 4 {
		return 0, "", fmt.Errorf("verdict without a code: %w", ErrMalformedVerdict)
	}
	kind := expr.VerdictKind(int32(binary.BigEndian.Uint32(code)))
	return kind, strings.TrimRight(string(attrs[unix.NFTA_VERDICT_CHAIN]), "\x00"), nil
}

// netlinkAttrs splits a buffer of netlink attributes (length and type in
// host order, values padded to 4 bytes) by type.
func netlinkAttrs(b []byte) (map[uint16][]byte, error) {
	attrs := map[uint16][]byte{}
	for len(b) > 0 {
		if len(b) < unix.SizeofNlAttr {
			return nil, errors.New("truncated attribute header")
		}
		n := int(binaryutil.NativeEndian.Uint16(b[0:2]))
		typ := binaryutil.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if n < unix.SizeofNlAttr || n > len(b) {
			return nil, fmt.Errorf("attribute length %d out of range", n)
		}
		attrs[typ] = b[unix.SizeofNlAttr:n]
		b = b[min((n+3)&^3, len(b)):]
	}
	return attrs, nil
}
