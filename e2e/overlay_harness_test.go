package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/shoalhq/shoal/deploy/lab"
	"github.com/shoalhq/shoal/overlay/nsrun"
	"github.com/shoalhq/shoal/proto/api"
)

// taskNetNS is the network namespace file of a task on a lab host.
func taskNetNS(h *lab.Host, taskID string) string {
	return filepath.Join(h.Dir, "data", "containerd", "netns", taskID)
}

// inNetNS runs fn inside the network namespace at path: sockets fn
// creates belong to it, as a container's would.
func inNetNS(path string, fn func() error) error { return nsrun.Do(path, fn) }

// lookupIn asks the DNS server at 127.0.0.11 inside the namespace for the
// A records of name; it returns the addresses, sorted, and the rcode.
func lookupIn(ns, name string) ([]string, int, error) {
	var resp *mdns.Msg
	err := inNetNS(ns, func() error {
		m := new(mdns.Msg)
		m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
		c := &mdns.Client{Timeout: 2 * time.Second}
		var err error
		resp, _, err = c.Exchange(m, "127.0.0.11:53")
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	var out []string
	for _, rr := range resp.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	slices.Sort(out)
	return out, resp.Rcode, nil
}

// echoAnswer is what the echo program answers.
type echoAnswer struct {
	Hostname string `json:"hostname"`
	TaskID   string `json:"task_id"`
	Version  string `json:"version"`
	Client   string `json:"client"`
}

// httpClientIn returns an HTTP client whose connections are opened inside
// the namespace (as a container's would be).
func httpClientIn(ns string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := inNetNS(ns, func() error {
				var err error
				conn, err = (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
	}}
}

// getEcho makes one request and decodes the answer.
func getEcho(c *http.Client, url string) (echoAnswer, error) {
	var a echoAnswer
	resp, err := c.Get(url)
	if err != nil {
		return a, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return a, err
	}
	if resp.StatusCode != http.StatusOK {
		return a, fmt.Errorf("%s: %s", resp.Status, b)
	}
	return a, json.Unmarshal(b, &a)
}

// vipOf returns a service's VIP on a network (without prefix length).
func vipOf(svc *api.Service, networkID string) string {
	for _, v := range svc.GetEndpoint().GetVirtualIps() {
		if v.GetNetworkId() == networkID {
			if p, err := netip.ParsePrefix(v.GetAddr()); err == nil {
				return p.Addr().String()
			}
		}
	}
	return ""
}

// addrsOn returns the tasks' addresses on a network, sorted.
func addrsOn(tasks map[string]*api.Task, networkID string) []string {
	var out []string
	for _, t := range tasks {
		for _, a := range t.GetNetworks() {
			if a.GetNetworkId() == networkID {
				if p, err := netip.ParsePrefix(a.GetAddresses()[0]); err == nil {
					out = append(out, p.Addr().String())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// vxlanBytes returns the tx+rx bytes of the VXLAN device of a VNI in a
// host's namespace (0 if it has none).
func vxlanBytes(h *lab.Host, vni uint32) uint64 {
	var total uint64
	// /proc/thread-self/net/dev lists the devices of the reading
	// thread's network namespace (sysfs would show the machine's).
	_ = inNetNS(filepath.Join("/run/netns", h.NetNS), func() error {
		b, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		name := fmt.Sprintf("shvx%d:", vni)
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, name) {
				continue
			}
			f := strings.Fields(strings.TrimPrefix(line, name))
			var rx, tx uint64
			fmt.Sscan(f[0], &rx)
			fmt.Sscan(f[8], &tx)
			total = rx + tx
		}
		return nil
	})
	return total
}
