package ingress

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
)

// runPrefix names every namespace this test run creates: "ing", 4 random
// hex digits and a dash, so that leftovers can be found and removed.
var runPrefix = vxlantest.Prefix("ing")

var nsCounter atomic.Int32

// newNS creates a named network namespace with lo up and returns its
// path. It is deleted when the test ends, also on failure.
func newNS(tb testing.TB, role string) string {
	tb.Helper()
	path := vxlantest.NewNS(tb, fmt.Sprintf("%s%d%s", runPrefix, nsCounter.Add(1), role))
	if err := vxlantest.LoUp(path); err != nil {
		tb.Fatalf("lo up in %s: %v", path, err)
	}
	return path
}
