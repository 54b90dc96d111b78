package nft

import (
	"fmt"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// ExprTypes lists the Go types of a rule's expressions, space-separated
// ("*expr.Payload *expr.Cmp"), for an error about a rule that a caller
// cannot interpret.
func ExprTypes(exprs []expr.Any) string {
	kinds := make([]string, len(exprs))
	for i, e := range exprs {
		kinds[i] = fmt.Sprintf("%T", e)
	}
	return strings.Join(kinds, " ")
}

// IfName returns an interface name as the kernel compares it in an
// iifname or oifname match: IFNAMSIZ bytes, zero-padded. name must be
// shorter than IFNAMSIZ; a longer one is cut.
func IfName(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}
