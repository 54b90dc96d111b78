package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/shoalhq/shoal/overlay/nsrun"
)

// netnsDir is where `ip netns` keeps named network namespaces.
const netnsDir = "/run/netns"

// ip runs iproute2's ip with args and returns its error with its output.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// nsExists reports whether the named network namespace exists.
func nsExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// addNS creates the named network namespace with its loopback up,
// replacing a leftover of the same name.
func addNS(name string) error {
	if nsExists(name) {
		if err := ip("netns", "del", name); err != nil {
			return err
		}
	}
	if err := ip("netns", "add", name); err != nil {
		return err
	}
	return ip("-n", name, "link", "set", "lo", "up")
}

// delNS removes the named network namespace if it exists.
func delNS(name string) error {
	if !nsExists(name) {
		return nil
	}
	return ip("netns", "del", name)
}

// namespacesWithPrefix lists the named network namespaces starting with
// prefix.
func namespacesWithPrefix(prefix string) []string {
	entries, _ := os.ReadDir(netnsDir)
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

// inNS runs fn inside the named network namespace (see nsrun.Do);
// sockets fn creates stay in that namespace.
func inNS(name string, fn func() error) error {
	return nsrun.Do(filepath.Join(netnsDir, name), fn)
}

// dialIn connects from inside the named network namespace.
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := inNS(ns, func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}
