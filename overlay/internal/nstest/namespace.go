package nstest

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/shoalhq/shoal/overlay/vxlan/vxlantest"
)

// NewNS creates the named network namespace with lo up and returns its
// path (/run/netns/NAME). The namespace is deleted in tb.Cleanup, also
// when the test fails. It skips the test when the process is not root,
// and fails it when the namespace cannot be created.
func NewNS(tb testing.TB, name string) string {
	tb.Helper()
	path := vxlantest.NewNS(tb, name)
	if err := vxlantest.LoUp(path); err != nil {
		tb.Fatalf("lo up in %s: %v", path, err)
	}
	return path
}

// Run names the namespaces of one test run: a per-run prefix (short, 4
// random hex digits and a dash), a counter and a role, so that leftovers
// can be found and removed and no two tests of the run collide. Use one
// Run per package, from a package variable; it is safe for concurrent
// use.
type Run struct {
	prefix string
	n      atomic.Int32
}

// NewRun returns a Run whose prefix starts with short (keep it at most 4
// characters, e.g. the package's short name).
func NewRun(short string) *Run { return &Run{prefix: vxlantest.Prefix(short)} }

// Prefix returns the per-run prefix every name of r starts with.
func (r *Run) Prefix() string { return r.prefix }

// Name returns a new name: the prefix, the next value of the counter and
// role.
func (r *Run) Name(role string) string {
	return fmt.Sprintf("%s%d%s", r.prefix, r.n.Add(1), role)
}

// NewNS creates a namespace named r.Name(role), as NewNS does, and
// returns its path.
func (r *Run) NewNS(tb testing.TB, role string) string {
	tb.Helper()
	return NewNS(tb, r.Name(role))
}
