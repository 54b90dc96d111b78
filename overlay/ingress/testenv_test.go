package ingress

import (
	"github.com/shoalhq/shoal/overlay/internal/nstest"
)

// testRun names every namespace this test run creates: "ing", 4 random
// hex digits and a dash, so that leftovers can be found and removed.
var testRun = nstest.NewRun("ing")

// newNS creates a named network namespace with lo up and returns its
// path. It is deleted when the test ends, also on failure.
var newNS = testRun.NewNS
