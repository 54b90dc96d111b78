package bridge_test

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"

	"pgregory.net/rapid"

	"github.com/shoalhq/shoal/overlay/bridge"
)

// TestRandomAttachDetachNeverSharesAnAddress runs random sequences of
// Attach, Detach and restarts (Close, then Open on the same state file)
// of real task namespaces on a /29 (five task addresses for six tasks, so
// the subnet fills up), and after every step reads the kernel back: no
// two tasks' eth0 hold the same address, every attached task's eth0
// holds exactly its allocation, and a detached task has no eth0. Every
// check starts from a fresh state file on the same host, so Open must
// also remove the veths the previous check left.
func TestRandomAttachDetachNeverSharesAnAddress(t *testing.T) {
	w := newWorld(t)
	names := []string{"p0", "p1", "p2", "p3", "p4", "p5"}
	nss := map[string]string{}
	for _, name := range names {
		nss[name] = w.task(t, name)
	}
	dir := t.TempDir()
	run := 0
	limitChecks(t, 15) // each check takes about 0.1 s of kernel work
	rapid.Check(t, func(rt *rapid.T) {
		run++
		cfg := bridge.Config{HostNS: w.host, Subnet: netip.MustParsePrefix("10.44.0.0/29"), StateFile: filepath.Join(dir, fmt.Sprintf("run%d.json", run))}
		// A fresh state file: Open must remove the previous run's veths,
		// which it knows nothing of.
		n, err := bridge.Open(cfg)
		if err != nil {
			rt.Fatal(err)
		}
		defer n.Close()
		checkKernel(rt, n, names, nss)
		task := rapid.SampledFrom(names)
		for range rapid.IntRange(1, 12).Draw(rt, "steps") {
			switch op := rapid.IntRange(0, 4).Draw(rt, "op"); op {
			case 0, 1:
				name := task.Draw(rt, "attach")
				_, err := n.Attach(name, nss[name])
				if err != nil && !(len(n.Tasks()) == 5 && isExhausted(err)) {
					rt.Fatalf("Attach(%s): %v", name, err)
				}
			case 2, 3:
				name := task.Draw(rt, "detach")
				if err := n.Detach(name); err != nil {
					rt.Fatalf("Detach(%s): %v", name, err)
				}
			case 4:
				before := n.Tasks()
				n.Close()
				if n, err = bridge.Open(cfg); err != nil {
					rt.Fatalf("reopen: %v", err)
				}
				if after := n.Tasks(); fmt.Sprint(after) != fmt.Sprint(before) {
					rt.Fatalf("reopen: Tasks %v, before %v", after, before)
				}
			}
			checkKernel(rt, n, names, nss)
		}
	})
}

// limitChecks lowers rapid's number of checks to n for this test, unless
// -rapid.checks was given on the command line.
func limitChecks(t *testing.T, n int) {
	f := flag.Lookup("rapid.checks")
	if f == nil {
		return
	}
	given := false
	flag.Visit(func(v *flag.Flag) { given = given || v.Name == f.Name })
	if given {
		return
	}
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}

func isExhausted(err error) bool { return err != nil && errors.Is(err, bridge.ErrExhausted) }

// checkKernel compares every task namespace's eth0 with the allocations.
func checkKernel(rt *rapid.T, n *bridge.Network, names []string, nss map[string]string) {
	alloc := n.Tasks()
	owner := map[netip.Addr]string{}
	for _, name := range names {
		addrs, ok := eth0Addrs(rt, nss[name])
		want, attached := alloc[name]
		if ok != attached {
			rt.Fatalf("task %s: eth0 present %v, allocated %v", name, ok, attached)
		}
		if !ok {
			continue
		}
		if len(addrs) != 1 || addrs[0] != want {
			rt.Fatalf("task %s: eth0 holds %v, allocation %v", name, addrs, want)
		}
		if other, dup := owner[want]; dup {
			rt.Fatalf("%v held by both %s and %s", want, other, name)
		}
		owner[want] = name
	}
}
