package nsrun

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"testing"
)

// TestSocketStaysInNamespace: a listener made inside a fresh namespace
// is not reachable from the caller's, and the caller's thread never left.
func TestSocketStaysInNamespace(t *testing.T) {
	name := "nsrun-test-" + randHex()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	path := "/run/netns/" + name
	before, _ := os.Readlink("/proc/thread-self/ns/net")
	var inside string
	err := Do(path, func() error {
		inside, _ = os.Readlink("/proc/thread-self/ns/net")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Readlink("/proc/thread-self/ns/net"); after != before {
		t.Fatalf("caller's namespace changed: %s → %s", before, after)
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	if inside == self {
		t.Fatalf("fn ran in the caller's namespace %s", inside)
	}
	// A fresh namespace has its loopback down: dialing there fails
	// while it succeeds here, so the socket really was made there.
	err = Do(path, func() error {
		_, err := net.Dial("tcp", "127.0.0.1:1")
		return err
	})
	if err == nil {
		t.Fatal("dial in a namespace without loopback succeeded")
	}
	boom := errors.New("boom")
	if err := Do(path, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn's error lost: %v", err)
	}
	if err := Do("/nonexistent", func() error { return nil }); !errors.Is(err, ErrNamespace) {
		t.Fatalf("missing namespace: %v", err)
	}
}

func randHex() string {
	b := make([]byte, 4)
	f, _ := os.Open("/dev/urandom")
	defer f.Close()
	f.Read(b)
	const hex = "0123456789abcdef"
	out := make([]byte, 8)
	for i, c := range b {
		out[2*i], out[2*i+1] = hex[c>>4], hex[c&15]
	}
	return string(out)
}
