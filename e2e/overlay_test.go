package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// createOn creates a service of image on the given networks (names),
// replicas tasks, at most maxPerNode per node (0: no limit), on nodes
// matching constraints.
func (c *cluster) createOn(name, image string, replicas uint64, nets []string, maxPerNode uint64, constraints ...string) *api.Service {
	c.t.Helper()
	spec := &api.ServiceSpec{
		Annotations: &api.Annotations{Name: name},
		Task: &api.TaskSpec{
			Container: &api.ContainerSpec{Image: c.ref(image)},
			Placement: &api.Placement{Constraints: constraints, MaxReplicas: maxPerNode},
		},
		Mode: &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: replicas}}},
	}
	for _, n := range nets {
		spec.Task.Networks = append(spec.Task.Networks, &api.NetworkAttachmentConfig{Target: n})
	}
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	resp, err := c.control().CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		c.t.Fatalf("create service %s: %v", name, err)
	}
	return resp.GetService()
}

// service reads a service again.
func (c *cluster) service(id string) *api.Service {
	c.t.Helper()
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	resp, err := c.control().GetService(ctx, &api.GetServiceRequest{ServiceId: id})
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.GetService()
}

// network reads a network by name.
func (c *cluster) network(name string) *api.Network {
	c.t.Helper()
	ctx, cancel := ctxT(5 * time.Second)
	defer cancel()
	resp, err := c.control().GetNetwork(ctx, &api.GetNetworkRequest{NetworkId: name})
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.GetNetwork()
}

// only returns the one task of a map.
func only(t *testing.T, tasks map[string]*api.Task) *api.Task {
	t.Helper()
	if len(tasks) != 1 {
		t.Fatalf("%d tasks, want 1", len(tasks))
	}
	for _, tk := range tasks {
		return tk
	}
	return nil
}

// TestOverlayAcrossHosts runs web (3 replicas, one per host) and a
// client on network app, and a loner on network other, over 3 namespace
// hosts with real containers. From the client's namespace: web resolves
// to its VIP and tasks.web to the 3 task addresses; 300 requests through
// the VIP reach all 3 tasks, crossing hosts as VXLAN; the container's
// resolv.conf points at 127.0.0.11. The loner can neither resolve nor
// reach web. Host 3 is powered off: its endpoint leaves host 1's tables
// and the replacement is reachable. Scaled to 1, web's name and VIP lead
// to the one task left.
func TestOverlayAcrossHosts(t *testing.T) {
	c := newCluster(t, 3, 1)
	h1 := c.Host(1)
	for _, n := range []string{"app", "other"} {
		if out, err := h1.CLI(t.Context(), "network", "create", n); err != nil {
			t.Fatal(out, err)
		}
	}
	app := c.network("app")
	web := c.createOn("web", "web:v1", 3, []string{"app"}, 0)
	client := c.createOn("client", "web:v1", 1, []string{"app"}, 0, "node.hostname==h1")
	loner := c.createOn("loner", "web:v1", 1, []string{"other"}, 0, "node.hostname==h1")
	webTasks := c.waitRunning(web.GetId(), 3, 90*time.Second)
	clientNS := taskNetNS(h1, only(t, c.waitRunning(client.GetId(), 1, 60*time.Second)).GetId())
	lonerNS := taskNetNS(h1, only(t, c.waitRunning(loner.GetId(), 1, 60*time.Second)).GetId())
	if got := c.perHost(webTasks); got["h1"] != 1 || got["h2"] != 1 || got["h3"] != 1 {
		t.Fatalf("web tasks per host %v, want one on each", got)
	}
	web = c.service(web.GetId())
	vip := vipOf(web, app.GetId())
	if vip == "" {
		t.Fatalf("web has no VIP on app: %v", web.GetEndpoint())
	}

	// Names, as the client sees them (published once RUNNING: poll).
	want := addrsOn(webTasks, app.GetId())
	poll(t, 10*time.Second, "tasks.web answers the 3 task addresses", func() error {
		got, _, err := lookupIn(clientNS, "tasks.web")
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("tasks.web = %v, want %v", got, want)
		}
		return err
	})
	if got, _, err := lookupIn(clientNS, "web"); err != nil || !slices.Equal(got, []string{vip}) {
		t.Fatalf("web = %v (%v), want the VIP %s", got, err, vip)
	}
	if got, rcode, err := lookupIn(lonerNS, "web"); err != nil || rcode != mdns.RcodeNameError || len(got) != 0 {
		t.Fatalf("from network other, web = %v rcode %d (%v), want NXDOMAIN", got, rcode, err)
	}
	for _, tk := range c.waitRunning(client.GetId(), 1, time.Second) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", tk.GetStatus().GetContainer().GetPid()))
		if err != nil || !strings.Contains(string(b), "nameserver 127.0.0.11") {
			t.Fatalf("client's resolv.conf: %q (%v)", b, err)
		}
	}

	// Load balancing through the VIP, across hosts.
	before := vxlanBytes(h1, app.GetVni())
	hc := httpClientIn(clientNS, 3*time.Second)
	seen := map[string]int{}
	for i := 0; i < 300; i++ {
		a, err := getEcho(hc, "http://"+vip+"/")
		if err != nil {
			t.Fatalf("request %d through the VIP: %v", i, err)
		}
		seen[a.TaskID]++
	}
	if len(seen) != 3 {
		t.Fatalf("300 requests reached %d tasks, want 3: %v", len(seen), seen)
	}
	if after := vxlanBytes(h1, app.GetVni()); after <= before {
		t.Fatalf("host 1's VXLAN device carried nothing (%d → %d bytes)", before, after)
	}
	t.Logf("300 requests through VIP %s: %v", vip, seen)

	// The loner cannot reach web's VIP: no rule for it in its namespace,
	// and app is not routed from other.
	if _, err := getEcho(httpClientIn(lonerNS, time.Second), "http://"+vip+"/"); err == nil {
		t.Fatal("a container on network other reached web's VIP")
	}

	// Host 3 dies: its endpoint leaves host 1's tables; the replacement
	// is reachable.
	var dead string
	for _, tk := range webTasks {
		if c.perHost(map[string]*api.Task{tk.GetId(): tk})["h3"] == 1 {
			dead = addrsOn(map[string]*api.Task{tk.GetId(): tk}, app.GetId())[0]
		}
	}
	start := time.Now()
	if err := c.Host(3).Kill(); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "the dead host's endpoint leaves tasks.web", func() error {
		got, _, err := lookupIn(clientNS, "tasks.web")
		if err == nil && slices.Contains(got, dead) {
			err = fmt.Errorf("tasks.web = %v still holds %s", got, dead)
		}
		return err
	})
	gone := time.Since(start)
	var replaced []string
	poll(t, 60*time.Second, "3 web tasks answer again", func() error {
		ts, err := c.running(web.GetId())
		if err != nil {
			return err
		}
		if n := c.perHost(ts)["h3"]; n != 0 || len(ts) != 3 {
			return fmt.Errorf("%d running, %d on the dead host", len(ts), n)
		}
		replaced = addrsOn(ts, app.GetId())
		got, _, err := lookupIn(clientNS, "tasks.web")
		if err == nil && !slices.Equal(got, replaced) {
			err = fmt.Errorf("tasks.web = %v, want %v", got, replaced)
		}
		return err
	})
	seen = map[string]int{}
	for i := 0; i < 60; i++ {
		a, err := getEcho(hc, "http://"+vip+"/")
		if err != nil {
			t.Fatalf("request %d after host 3 died: %v", i, err)
		}
		seen[a.TaskID]++
	}
	if len(seen) != 3 {
		t.Fatalf("after the replacement, requests reached %v, want 3 tasks", seen)
	}
	t.Logf("overlay scenario=kill-host endpoint-gone=%s replacements-answering=%s", gone.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// Scale to 1: the name and the VIP lead to the one task left.
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	cur := c.service(web.GetId())
	spec := proto.Clone(cur.GetSpec()).(*api.ServiceSpec)
	spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 1}}}
	if _, err := c.control().UpdateService(ctx, &api.UpdateServiceRequest{ServiceId: web.GetId(), Version: cur.GetMeta().GetVersion(), Spec: spec}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	var left []string
	poll(t, 30*time.Second, "tasks.web answers one address", func() error {
		got, _, err := lookupIn(clientNS, "tasks.web")
		if err == nil && len(got) != 1 {
			err = fmt.Errorf("tasks.web = %v", got)
		}
		left = got
		return err
	})
	t.Logf("overlay scenario=scale-down one-address-left=%s", time.Since(start).Round(time.Millisecond))
	last := only(t, c.waitRunning(web.GetId(), 1, 30*time.Second))
	if got := addrsOn(map[string]*api.Task{last.GetId(): last}, app.GetId()); !slices.Equal(got, left) {
		t.Fatalf("tasks.web = %v but the running task has %v", left, got)
	}
	for i := 0; i < 50; i++ {
		a, err := getEcho(hc, "http://"+vip+"/")
		if err != nil {
			t.Fatalf("request %d after the scale-down: %v", i, err)
		}
		if a.TaskID != last.GetId() {
			t.Fatalf("request %d reached task %s, a removed one (left: %s)", i, a.TaskID, last.GetId())
		}
	}
}

// TestHostNetworkMode: a task on the host network listens on the host's
// own addresses (here its underlay address) with no network namespace
// of its own.
func TestHostNetworkMode(t *testing.T) {
	c := newCluster(t, 1, 1)
	svc := c.createOn("hostweb", "web:v1", 1, []string{"host"}, 0)
	task := only(t, c.waitRunning(svc.GetId(), 1, 60*time.Second))
	if _, err := os.Stat(taskNetNS(c.Host(1), task.GetId())); !os.IsNotExist(err) {
		t.Fatalf("a host-network task got a namespace of its own (%v)", err)
	}
	hc := c.HTTPClient(2 * time.Second)
	poll(t, 10*time.Second, "the task answers on the host's address", func() error {
		a, err := getEcho(hc, "http://"+c.Host(1).Addr+":80/")
		if err == nil && a.TaskID != task.GetId() {
			err = fmt.Errorf("answered by %q, want %s", a.TaskID, task.GetId())
		}
		return err
	})
}

// TestDiscoveryWithoutQuorum: with two of three managers gone, the
// cluster cannot change, but containers still find and reach services:
// the endpoint table lives in the agents' gossip. Also: a dnsrr service's
// name answers its task addresses (no VIP).
func TestDiscoveryWithoutQuorum(t *testing.T) {
	c := newCluster(t, 5, 3)
	if out, err := c.Host(1).CLI(t.Context(), "network", "create", "app"); err != nil {
		t.Fatal(out, err)
	}
	app := c.network("app")
	web := c.createOn("web", "web:v1", 3, []string{"app"}, 0, "node.role==worker")
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	dbResp, err := c.control().CreateService(ctx, &api.CreateServiceRequest{Spec: &api.ServiceSpec{
		Annotations: &api.Annotations{Name: "db"},
		Task: &api.TaskSpec{
			Container: &api.ContainerSpec{Image: c.ref("web:v1")},
			Placement: &api.Placement{Constraints: []string{"node.role==worker"}},
			Networks:  []*api.NetworkAttachmentConfig{{Target: "app"}},
		},
		Mode:     &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 2}}},
		Endpoint: &api.EndpointSpec{Mode: api.EndpointSpec_MODE_DNSRR},
	}})
	if err != nil {
		t.Fatal(err)
	}
	db := dbResp.GetService()
	client := c.createOn("client", "web:v1", 1, []string{"app"}, 0, "node.hostname==h4")
	webTasks := c.waitRunning(web.GetId(), 3, 90*time.Second)
	clientNS := taskNetNS(c.Host(4), only(t, c.waitRunning(client.GetId(), 1, 60*time.Second)).GetId())
	vip := vipOf(c.service(web.GetId()), app.GetId())
	want := addrsOn(webTasks, app.GetId())
	poll(t, 20*time.Second, "tasks.web and dnsrr db", func() error {
		got, _, err := lookupIn(clientNS, "tasks.web")
		if err == nil && !slices.Equal(got, want) {
			return fmt.Errorf("tasks.web = %v, want %v", got, want)
		}
		dbTasks, err := c.running(db.GetId())
		if err != nil {
			return err
		}
		dbWant := addrsOn(dbTasks, app.GetId())
		got, _, err = lookupIn(clientNS, "db")
		if err == nil && (len(dbWant) != 2 || !slices.Equal(got, dbWant)) {
			return fmt.Errorf("dnsrr db = %v, want its task addresses %v", got, dbWant)
		}
		return err
	})

	// Two managers go: no quorum.
	for _, h := range []int{1, 2} {
		if err := c.Host(h).KillDaemon(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Host(3).CLI(t.Context(), "--timeout", "3s", "service", "scale", "-d", "web=4"); err == nil {
		t.Fatal("a write succeeded without quorum")
	}
	hc := httpClientIn(clientNS, 2*time.Second)
	// Long enough for the gossip to declare the dead managers dead.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		got, _, err := lookupIn(clientNS, "tasks.web")
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("without quorum, tasks.web = %v (%v), want %v", got, err, want)
		}
		if _, err := getEcho(hc, "http://"+vip+"/"); err != nil {
			t.Fatalf("without quorum, the VIP failed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
