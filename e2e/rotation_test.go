package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// TestGossipKeyRotationAcrossHosts rotates the gossip key of 3 namespace
// hosts while web is scaled up, then scales it down after the rotation:
// the client on host 1 sees every endpoint come and go through the
// encrypted gossip during and after the rotation, and every host ends on
// the same single new key.
func TestGossipKeyRotationAcrossHosts(t *testing.T) {
	c := newCluster(t, 3, 1)
	h1 := c.Host(1)
	if out, err := h1.CLI(t.Context(), "network", "create", "app"); err != nil {
		t.Fatal(out, err)
	}
	app := c.network("app")
	web := c.createOn("web", "web:v1", 3, []string{"app"}, 0)
	client := c.createOn("client", "web:v1", 1, []string{"app"}, 0, "node.hostname==h1")
	c.waitRunning(web.GetId(), 3, 90*time.Second)
	clientNS := taskNetNS(h1, only(t, c.waitRunning(client.GetId(), 1, 60*time.Second)).GetId())
	seesWeb := func(n int) func() error {
		return func() error {
			ts, err := c.running(web.GetId())
			if err != nil {
				return err
			}
			want := addrsOn(ts, app.GetId())
			got, _, err := lookupIn(clientNS, "tasks.web")
			if err == nil && (len(want) != n || !slices.Equal(got, want)) {
				err = fmt.Errorf("tasks.web = %v, want %d running: %v", got, n, want)
			}
			return err
		}
	}
	poll(t, 15*time.Second, "the client sees 3 web tasks", seesWeb(3))
	keysOf := func(h int) []byte {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(c.Host(h).Socket), "certificates", "gossip.keys"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := keysOf(1)

	start := time.Now()
	if out, err := h1.CLI(t.Context(), "cluster", "update", "--rotate-gossip-key"); err != nil {
		t.Fatalf("rotate: %v\n%s", err, out)
	}
	if out, err := h1.CLI(t.Context(), "service", "scale", "-d", "web=6"); err != nil {
		t.Fatalf("scale up: %v\n%s", err, out)
	}
	poll(t, 60*time.Second, "the rotation completes", func() error {
		ctx, cancel := ctxT(3 * time.Second)
		defer cancel()
		info, err := c.control().GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
		if err != nil {
			return err
		}
		if s := info.GetCluster().GetGossipKeyStep(); s != api.GossipKeyStep_GOSSIP_KEY_STEP_STEADY {
			return fmt.Errorf("step %v", s)
		}
		return nil
	})
	rotated := time.Since(start)
	poll(t, 60*time.Second, "the client sees 6 web tasks", seesWeb(6))
	// The last step reaches each host with its next heartbeat.
	poll(t, 10*time.Second, "every host on the same single new key", func() error {
		after := keysOf(1)
		if bytes.Equal(before, after) || strings.Count(string(after), ",") != 0 {
			return fmt.Errorf("host 1 has keys %s", after)
		}
		for h := 2; h <= 3; h++ {
			if !bytes.Equal(keysOf(h), after) {
				return fmt.Errorf("host %d has other gossip keys than host 1", h)
			}
		}
		return nil
	})
	if out, err := h1.CLI(t.Context(), "service", "scale", "-d", "web=2"); err != nil {
		t.Fatalf("scale down: %v\n%s", err, out)
	}
	poll(t, 60*time.Second, "the client sees 2 web tasks", seesWeb(2))
	t.Logf("gossip key rotation across 3 hosts: %s", rotated.Round(time.Millisecond))
}

// TestRootCARotationUnderLoad rotates the root CA of 3 hosts, all of them
// managers (Raft moves to the new root too), while web rolls from v1 to
// v2 under load: not one request through the VIP fails, the rotation
// completes with every host on a certificate from the new root, and the
// join tokens change with the root.
func TestRootCARotationUnderLoad(t *testing.T) {
	c := newCluster(t, 3, 3)
	r := newRig(t, c, rigSpec{clientHost: "h1",
		update: &api.UpdateConfig{Parallelism: proto.Uint64(2), Order: api.UpdateConfig_ORDER_START_FIRST, Monitor: proto.Int64(int64(time.Second))}})
	h1 := c.Host(1)
	tokBefore, err := h1.CLI(t.Context(), "cluster", "join-token", "-q", "worker")
	if err != nil {
		t.Fatal(tokBefore, err)
	}
	var rotated time.Duration
	run, err := r.underLoad(t, "root-ca-rotation", func() error {
		start := time.Now()
		if out, err := h1.CLI(t.Context(), "cluster", "ca", "--rotate", "-d"); err != nil {
			return fmt.Errorf("cluster ca --rotate: %v\n%s", err, out)
		}
		if out, err := h1.CLI(t.Context(), "service", "update", "--wait-timeout", "2m", "--image", c.ref("web:v2"), "web"); err != nil {
			return fmt.Errorf("service update: %v\n%s", err, out)
		}
		poll(t, time.Minute, "the root CA rotation completes", func() error {
			out, err := h1.CLI(t.Context(), "cluster", "ca")
			if err == nil && strings.Contains(out, "Rotating to") {
				err = fmt.Errorf("still rotating:\n%s", out)
			}
			return err
		})
		rotated = time.Since(start)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("root-ca-rotation scenario: %s, rotation %s", run.summary(), rotated.Round(time.Millisecond))
	if run.failed.Load() != 0 || run.sent.Load() < minRequests {
		t.Fatalf("root CA rotation under load: %s", run.summary())
	}
	out, err := h1.CLI(t.Context(), "cluster", "ca")
	if err != nil {
		t.Fatal(out, err)
	}
	digest := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(out, "\n", 2)[0], "Root CA digest:"))
	tokAfter, err := h1.CLI(t.Context(), "cluster", "join-token", "-q", "worker")
	if err != nil || tokAfter == tokBefore || !strings.Contains(tokAfter, digest) {
		t.Fatalf("join token after the rotation: %v %q (before %q, root %s)", err, tokAfter, tokBefore, digest)
	}
	poll(t, 10*time.Second, "every host on a certificate from the new root", func() error {
		for _, h := range c.Hosts {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(h.Socket), "certificates", ca.NodeRootsFile))
			if err != nil {
				return err
			}
			roots, err := ca.ParseCertificates(b)
			if err != nil || len(roots) != 1 || ca.DigestOf(roots[0]) != digest {
				return fmt.Errorf("%s trusts %d roots (%v)", h.Name, len(roots), err)
			}
		}
		return nil
	})
	if out, err := h1.CLI(t.Context(), "node", "ls"); err != nil || strings.Count(out, "Ready") != 3 {
		t.Fatalf("nodes after the rotation: %v\n%s", err, out)
	}
}
