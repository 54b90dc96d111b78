package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// links lists the interface names of a lab host's namespace that start
// with prefix.
func links(t *testing.T, ns, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link in %s: %v %s", ns, err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	return names
}

// TestOverlayCleanup: a task interface no task uses (left by a crash) is
// removed by the host, the interfaces of running tasks are kept, and a
// daemon stopped with --cleanup removes every device it made.
func TestOverlayCleanup(t *testing.T) {
	c := newClusterWith(t, 2, 1, []string{"--overlay-gc-interval", "500ms", "--cleanup"})
	h2 := c.Host(2)
	if out, err := c.Host(1).CLI(t.Context(), "network", "create", "app"); err != nil {
		t.Fatal(out, err)
	}
	web := c.createOn("web", "web:v1", 1, []string{"app"}, 0, "node.hostname==h2")
	plain := c.createOn("plain", "web:v1", 1, nil, 0, "node.hostname==h2")
	c.waitRunning(web.GetId(), 1, 60*time.Second)
	c.waitRunning(plain.GetId(), 1, 60*time.Second)
	before := links(t, h2.NetNS, "sh")
	if len(before) < 4 { // shbr, shvx, a task veth, shbridge0 and its veth
		t.Fatalf("devices on h2: %v", before)
	}
	// A leftover veth, as a crashed agent leaves one.
	if out, err := exec.Command("ip", "-n", h2.NetNS, "link", "add", "shv0123456789ab", "type", "veth", "peer", "name", "strayx").CombinedOutput(); err != nil {
		t.Fatalf("add a stray veth: %v %s", err, out)
	}
	poll(t, 10*time.Second, "the stray veth removed", func() error {
		if got := links(t, h2.NetNS, "shv0123456789ab"); len(got) != 0 {
			return fmt.Errorf("still there: %v", got)
		}
		return nil
	})
	after := links(t, h2.NetNS, "sh")
	if strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("devices of running tasks changed: %v → %v", before, after)
	}

	// --cleanup: a graceful stop removes every device it made.
	if err := h2.StopDaemonGracefully(); err != nil {
		t.Fatal(err)
	}
	if left := links(t, h2.NetNS, "sh"); len(left) != 0 {
		t.Fatalf("devices left after a stop with --cleanup: %v", left)
	}
}
