package daemon

import (
	"errors"
	"testing"
	"time"

	"github.com/shoalhq/shoal/manager/authz"
	"github.com/shoalhq/shoal/manager/ca"
)

// Renewal happens between 50% and 80% of a certificate's lifetime, and
// not always at the same point.
func TestRenewAt(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(time.Hour)
	seen := map[time.Duration]bool{}
	for i := 0; i < 1000; i++ {
		at := renewAt(from, to).Sub(from)
		if at < 30*time.Minute || at > 48*time.Minute {
			t.Fatalf("renewal %s into a 1h certificate, want 30m to 48m", at)
		}
		seen[at.Truncate(time.Minute)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("renewal points spread over %d minutes only", len(seen))
	}
}

// A node that is not a manager refuses the certificates of nodes its
// heartbeats list as removed, and keeps the others' roles.
func TestRemovedNodesRefused(t *testing.T) {
	r := removedNodes{"gone": true}
	if _, err := r.Check(ca.Identity{ID: "gone", Role: ca.RoleManager}); !errors.Is(err, authz.ErrRemoved) {
		t.Fatalf("removed node: %v", err)
	}
	if role, err := r.Check(ca.Identity{ID: "m1", Role: ca.RoleManager}); err != nil || role != ca.RoleManager {
		t.Fatalf("a member: %v %v", role, err)
	}
}
