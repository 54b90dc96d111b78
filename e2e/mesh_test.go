package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/shoalhq/shoal/proto/api"
)

// hostOf is the host part of HOST:PORT.
func hostOf(hostport string) string {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return h
}

// TestRoutingMesh publishes web's port 80 as 8080/tcp and 81 as 8081/udp
// through the routing mesh, with web's two tasks kept off host 1. A
// client outside the cluster (in the underlay's namespace) reaches both
// ports on every host, host 1 included, and the tasks see the client's
// own address and port: no SNAT.
func TestRoutingMesh(t *testing.T) {
	c := newCluster(t, 3, 1)
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "web"},
		Task: &api.TaskSpec{
			Container: &api.ContainerSpec{Image: c.ref("web:v1"), Env: []string{"UDP_PORT=81"}},
			Placement: &api.Placement{Constraints: []string{"node.hostname!=h1"}},
		},
		Mode: &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 2}}},
		Endpoint: &api.EndpointSpec{Ports: []*api.PortConfig{
			{TargetPort: 80, PublishedPort: 8080},
			{TargetPort: 81, PublishedPort: 8081, Protocol: api.PortConfig_PROTOCOL_UDP},
		}},
	}
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	resp, err := c.control().CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	tasks := c.waitRunning(resp.GetService().GetId(), 2, 90*time.Second)
	if n := c.perHost(tasks)["h1"]; n != 0 {
		t.Fatalf("%d web tasks on h1", n)
	}

	// TCP: every request is answered, and names the client's own
	// address and port as the task saw them.
	var mu sync.Mutex
	local := map[string]bool{}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := c.DialContext(ctx, network, addr)
			if err == nil {
				mu.Lock()
				local[hostOf(conn.LocalAddr().String())] = true
				mu.Unlock()
			}
			return conn, err
		}}}
	for _, h := range c.Hosts {
		url := "http://" + h.Addr + ":8080/"
		poll(t, 20*time.Second, "port 8080 answers on "+h.Name, func() error { _, err := getEcho(hc, url); return err })
		// Each task's endpoint reaches the host's routing mesh through the
		// gossip a few milliseconds after the other: once the port
		// answers, every request must be answered, and 30 in a row must
		// reach both tasks before the deadline.
		poll(t, 20*time.Second, "port 8080 on "+h.Name+" reaches both tasks", func() error {
			seen := map[string]int{}
			for i := 0; i < 30; i++ {
				a, err := getEcho(hc, url)
				if err != nil {
					t.Fatalf("%s: request %d: %v", url, i, err)
				}
				// The address must be the client's; the port may differ
				// when conntrack remaps it to keep two flows' replies
				// apart (the same client port reused through another
				// node).
				mu.Lock()
				own := local[hostOf(a.Client)]
				mu.Unlock()
				if !own {
					t.Fatalf("%s: the task saw client %s, not the client's own address (SNAT?)", url, a.Client)
				}
				seen[a.TaskID]++
			}
			if len(seen) != 2 {
				return fmt.Errorf("30 requests reached %v, want both tasks", seen)
			}
			return nil
		})
	}

	// UDP: a datagram to 8081 on any host is answered by a task that saw
	// the client's address.
	for _, h := range c.Hosts {
		addr := h.Addr + ":8081"
		poll(t, 20*time.Second, "udp 8081 answers on "+h.Name, func() error {
			dctx, dcancel := ctxT(2 * time.Second)
			defer dcancel()
			conn, err := c.DialContext(dctx, "udp", addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
			if _, err := conn.Write([]byte("ping")); err != nil {
				return err
			}
			buf := make([]byte, 2048)
			n, err := conn.Read(buf)
			if err != nil {
				return err
			}
			var a echoAnswer
			if err := json.Unmarshal(buf[:n], &a); err != nil {
				return err
			}
			if hostOf(a.Client) != hostOf(conn.LocalAddr().String()) {
				return fmt.Errorf("udp via %s: task saw %s, client is %s", h.Name, a.Client, conn.LocalAddr())
			}
			return nil
		})
	}

	// Host mode: the port answers only on the node running the task,
	// which needs no network of its own (the node's bridge).
	hostSpec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "onh1"},
		Task: &api.TaskSpec{
			Container: &api.ContainerSpec{Image: c.ref("web:v1")},
			Placement: &api.Placement{Constraints: []string{"node.hostname==h1"}},
		},
		Mode:     &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 1}}},
		Endpoint: &api.EndpointSpec{Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: 9090, PublishMode: api.PortConfig_PUBLISH_MODE_HOST}}},
	}
	hresp, err := c.control().CreateService(ctx, &api.CreateServiceRequest{Spec: hostSpec})
	if err != nil {
		t.Fatal(err)
	}
	onh1 := only(t, c.waitRunning(hresp.GetService().GetId(), 1, 60*time.Second))
	poll(t, 20*time.Second, "host-mode port 9090 on h1", func() error {
		a, err := getEcho(hc, "http://"+c.Host(1).Addr+":9090/")
		if err == nil && a.TaskID != onh1.GetId() {
			err = fmt.Errorf("answered by %s", a.TaskID)
		}
		return err
	})
	if _, err := getEcho(hc, "http://"+c.Host(2).Addr+":9090/"); err == nil {
		t.Fatal("host-mode port 9090 answered on h2, which runs no task of the service")
	}
}
