package allocator

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/shoalhq/shoal/manager/ipam"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// tb is what the helpers need of *testing.T and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
}

func newStore(t tb) *store.MemoryStore {
	st := store.New(nil)
	st.SetProposer(store.NewLocalProposer(st))
	update(t, st, func(tx store.Tx) error {
		return tx.CreateCluster(&api.Cluster{Id: "c", Spec: &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}}})
	})
	return st
}

func update(t tb, st *store.MemoryStore, fn func(tx store.Tx) error) {
	t.Helper()
	if err := st.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// addNetwork creates an overlay network with the given subnet.
func addNetwork(t tb, st *store.MemoryStore, name, subnet string) *api.Network {
	var n *api.Network
	update(t, st, func(tx store.Tx) error {
		spec := &api.NetworkSpec{Annotations: &api.Annotations{Name: name}, Driver: "overlay",
			Ipam: []*api.IPAMConfig{{Subnet: subnet}}}
		var err error
		if n, err = ipam.NewNetwork(tx.FindNetworks(store.All()), ipam.DefaultPool, 24, name+"-id", spec); err != nil {
			return err
		}
		return tx.CreateNetwork(n)
	})
	return n
}

func addService(t tb, st *store.MemoryStore, id string, nets []string, ports ...*api.PortConfig) {
	spec := &api.ServiceSpec{Annotations: &api.Annotations{Name: id},
		Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: "x"}}}
	for _, n := range nets {
		spec.Task.Networks = append(spec.Task.Networks, &api.NetworkAttachmentConfig{Target: n})
	}
	if len(ports) > 0 {
		spec.Endpoint = &api.EndpointSpec{Ports: ports}
	}
	update(t, st, func(tx store.Tx) error { return tx.CreateService(&api.Service{Id: id, Spec: spec}) })
}

// addTasks creates n NEW tasks of the service, made as the orchestrator
// makes them.
func addTasks(t tb, st *store.MemoryStore, svcID string, first, n int) {
	update(t, st, func(tx store.Tx) error {
		svc := tx.GetService(svcID)
		for i := first; i < first+n; i++ {
			if err := tx.CreateTask(&api.Task{Id: fmt.Sprintf("%s-t%d", svcID, i), ServiceId: svcID, Slot: uint64(i),
				Spec:         proto.Clone(svc.GetSpec().GetTask()).(*api.TaskSpec),
				Status:       &api.TaskStatus{State: api.TaskState_TASK_STATE_NEW},
				DesiredState: api.TaskState_TASK_STATE_RUNNING}); err != nil {
				return err
			}
		}
		return nil
	})
}

func tasks(st *store.MemoryStore) (out []*api.Task) {
	st.View(func(tx store.ReadTx) { out = tx.FindTasks(store.All()) })
	return out
}

func runAllocator(t *testing.T, st *store.MemoryStore) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a := New(st, Config{RetryInterval: 50 * time.Millisecond})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, ok func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAllocatesVIPsTaskAddressesAndIngress(t *testing.T) {
	st := newStore(t)
	app := addNetwork(t, st, "app", "10.20.0.0/24")
	addService(t, st, "web", []string{app.GetId()}, &api.PortConfig{TargetPort: 80, PublishedPort: 8080},
		&api.PortConfig{TargetPort: 81})
	addTasks(t, st, "web", 1, 3)
	update(t, st, func(tx store.Tx) error {
		for _, id := range []string{"n1", "n2"} {
			if err := tx.CreateNode(&api.Node{Id: id}); err != nil {
				return err
			}
		}
		return nil
	})
	runAllocator(t, st)
	waitFor(t, "tasks pending", func() error {
		for _, tk := range tasks(st) {
			if tk.GetStatus().GetState() != api.TaskState_TASK_STATE_PENDING {
				return fmt.Errorf("%s is %v", tk.GetId(), tk.GetStatus())
			}
		}
		return nil
	})
	var svc *api.Service
	var ingress *api.Network
	st.View(func(tx store.ReadTx) {
		svc = tx.GetService("web")
		for _, n := range tx.FindNetworks(store.All()) {
			if n.GetIngress() {
				ingress = n
			}
		}
	})
	if ingress == nil || ingress.GetSpec().GetAnnotations().GetName() != IngressNetworkName || ingress.GetIpam()[0].GetSubnet() != "10.0.0.0/24" {
		t.Fatalf("ingress network: %v", ingress)
	}
	vips := map[string]string{}
	for _, v := range svc.GetEndpoint().GetVirtualIps() {
		vips[v.GetNetworkId()] = v.GetAddr()
	}
	if vips[app.GetId()] != "10.20.0.2/24" || vips[ingress.GetId()] != "10.0.0.2/24" {
		t.Fatalf("VIPs %v", vips)
	}
	ports := svc.GetEndpoint().GetPorts()
	if len(ports) != 2 || ports[0].GetPublishedPort() != 8080 || ports[1].GetPublishedPort() != MinDynamicPort {
		t.Fatalf("ports %v", ports)
	}
	seen := map[string]string{}
	var nodes []*api.Node
	st.View(func(tx store.ReadTx) { nodes = tx.FindNodes(store.All()) })
	for _, n := range nodes {
		if len(n.GetAttachments()) != 1 || n.GetAttachments()[0].GetNetworkId() != ingress.GetId() {
			t.Fatalf("node %s attachments %v, want one on ingress", n.GetId(), n.GetAttachments())
		}
		addr := n.GetAttachments()[0].GetAddresses()[0]
		if other, dup := seen[addr]; dup || addr == vips[ingress.GetId()] {
			t.Fatalf("node %s got %s, also held by %s / the VIP", n.GetId(), addr, other)
		}
		seen[addr] = "node " + n.GetId()
	}
	for _, tk := range tasks(st) {
		if len(tk.GetNetworks()) != 2 || tk.GetNetworks()[0].GetNetworkId() != app.GetId() || tk.GetNetworks()[1].GetNetworkId() != ingress.GetId() {
			t.Fatalf("%s attachments %v", tk.GetId(), tk.GetNetworks())
		}
		for _, a := range tk.GetNetworks() {
			addr := a.GetAddresses()[0]
			if other, dup := seen[addr]; dup || addr == vips[a.GetNetworkId()] {
				t.Fatalf("%s got %s, also held by %s / a VIP", tk.GetId(), addr, other)
			}
			seen[addr] = tk.GetId()
			if want := MACFor(netip.MustParsePrefix(addr).Addr()).String(); a.GetMac() != want {
				t.Fatalf("MAC %s for %s, want %s", a.GetMac(), addr, want)
			}
		}
		if len(tk.GetEndpoint().GetVirtualIps()) != 2 {
			t.Fatalf("%s has no copy of the service endpoint: %v", tk.GetId(), tk.GetEndpoint())
		}
	}
}

func TestWaitsForAnAddressAndGetsTheFreedOne(t *testing.T) {
	st := newStore(t)
	n := addNetwork(t, st, "small", "10.30.0.0/29") // 6 hosts: gateway, VIP, 4 tasks
	addService(t, st, "s", []string{n.GetId()})
	addTasks(t, st, "s", 1, 5)
	runAllocator(t, st)
	var waiting *api.Task
	waitFor(t, "4 pending, 1 waiting", func() error {
		pending := 0
		waiting = nil
		for _, tk := range tasks(st) {
			switch {
			case tk.GetStatus().GetState() == api.TaskState_TASK_STATE_PENDING:
				pending++
			case strings.Contains(tk.GetStatus().GetErr(), "no free address"):
				waiting = tk
			}
		}
		if pending != 4 || waiting == nil {
			return fmt.Errorf("%d pending, waiting %v", pending, waiting)
		}
		return nil
	})
	// One task dies: its address goes to the waiting one.
	var freed string
	update(t, st, func(tx store.Tx) error {
		for _, tk := range tx.FindTasks(store.All()) {
			if tk.GetStatus().GetState() == api.TaskState_TASK_STATE_PENDING {
				tk = proto.Clone(tk).(*api.Task)
				freed = tk.GetNetworks()[0].GetAddresses()[0]
				tk.Status = &api.TaskStatus{State: api.TaskState_TASK_STATE_FAILED}
				return tx.UpdateTask(tk)
			}
		}
		return nil
	})
	waitFor(t, "the waiting task gets the freed address", func() error {
		var tk *api.Task
		st.View(func(tx store.ReadTx) { tk = tx.GetTask(waiting.GetId()) })
		if tk.GetStatus().GetState() != api.TaskState_TASK_STATE_PENDING {
			return fmt.Errorf("still %v", tk.GetStatus())
		}
		if got := tk.GetNetworks()[0].GetAddresses()[0]; got != freed {
			return fmt.Errorf("got %s, the only free address is %s", got, freed)
		}
		return nil
	})
}

// TestNoAddressHeldTwice is the allocator's invariant under any sequence
// of service creations, task creations, task deaths and leader changes
// (a fresh allocator, with nothing in memory, for each pass): no address
// of a network is held twice by live tasks and VIPs, none is the gateway
// or outside the subnet, and no live allocated task changes address.
func TestNoAddressHeldTwice(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		st := newStore(rt)
		nets := []*api.Network{addNetwork(rt, st, "a", "10.40.0.0/28"), addNetwork(rt, st, "b", "10.41.0.0/29")}
		services := 0
		nextTask := 0
		seenAddr := map[string]string{} // task ID → first addresses seen
		for step := rapid.IntRange(1, 40).Draw(rt, "steps"); step > 0; step-- {
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0:
				var ids []string
				for _, n := range nets {
					if rapid.Bool().Draw(rt, "on "+n.GetId()) {
						ids = append(ids, n.GetId())
					}
				}
				if len(ids) == 0 {
					ids = []string{nets[0].GetId()}
				}
				services++
				addService(rt, st, fmt.Sprintf("s%d", services), ids)
			case 1:
				if services == 0 {
					continue
				}
				svc := fmt.Sprintf("s%d", rapid.IntRange(1, services).Draw(rt, "svc"))
				n := rapid.IntRange(1, 4).Draw(rt, "n")
				addTasks(rt, st, svc, nextTask, n)
				nextTask += n
			case 2:
				all := tasks(st)
				if len(all) == 0 {
					continue
				}
				victim := all[rapid.IntRange(0, len(all)-1).Draw(rt, "victim")]
				if dead(victim) {
					continue
				}
				update(rt, st, func(tx store.Tx) error {
					tk := proto.Clone(tx.GetTask(victim.GetId())).(*api.Task)
					tk.Status = &api.TaskStatus{State: api.TaskState_TASK_STATE_SHUTDOWN}
					return tx.UpdateTask(tk)
				})
			case 3:
				if _, err := New(st, Config{}).pass(context.Background()); err != nil {
					rt.Fatal(err)
				}
			}
			checkUnique(rt, st, seenAddr)
		}
	})
}

func checkUnique(t *rapid.T, st *store.MemoryStore, seen map[string]string) {
	st.View(func(tx store.ReadTx) {
		held := map[string]string{}
		subnets := map[string]netip.Prefix{}
		gateways := map[string]string{}
		for _, n := range tx.FindNetworks(store.All()) {
			s, gw, _ := ipam.Subnet(n)
			subnets[n.GetId()] = s
			gateways[n.GetId()] = gw.String()
		}
		hold := func(netID, addr, who string) {
			key := netID + "/" + addr
			if other, dup := held[key]; dup {
				t.Fatalf("%s held by %s and %s", key, other, who)
			}
			held[key] = who
			a := netip.MustParsePrefix(addr).Addr()
			if !subnets[netID].Contains(a) || a.String() == gateways[netID] {
				t.Fatalf("%s got %s: outside %s or the gateway", who, addr, subnets[netID])
			}
		}
		for _, s := range tx.FindServices(store.All()) {
			for _, v := range s.GetEndpoint().GetVirtualIps() {
				hold(v.GetNetworkId(), v.GetAddr(), "service "+s.GetId())
			}
		}
		for _, tk := range tx.FindTasks(store.All()) {
			if dead(tk) {
				continue
			}
			var addrs []string
			for _, a := range tk.GetNetworks() {
				hold(a.GetNetworkId(), a.GetAddresses()[0], "task "+tk.GetId())
				addrs = append(addrs, a.GetNetworkId()+"/"+a.GetAddresses()[0])
			}
			got := strings.Join(addrs, ",")
			if prev, ok := seen[tk.GetId()]; ok && prev != "" && prev != got {
				t.Fatalf("task %s changed addresses from %s to %s", tk.GetId(), prev, got)
			}
			seen[tk.GetId()] = got
		}
	})
}

func TestFreedAddressIsNotHandedOutAgainAtOnce(t *testing.T) {
	st := newStore(t)
	n := addNetwork(t, st, "app", "10.50.0.0/24")
	addService(t, st, "s", []string{n.GetId()})
	addTasks(t, st, "s", 1, 3)
	a := New(st, Config{})
	if _, err := a.pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	var freed string
	update(t, st, func(tx store.Tx) error {
		tk := proto.Clone(tx.GetTask("s-t3")).(*api.Task)
		freed = tk.GetNetworks()[0].GetAddresses()[0]
		tk.Status = &api.TaskStatus{State: api.TaskState_TASK_STATE_ORPHANED}
		return tx.UpdateTask(tk)
	})
	addTasks(t, st, "s", 4, 1)
	if _, err := a.pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got string
	st.View(func(tx store.ReadTx) { got = tx.GetTask("s-t4").GetNetworks()[0].GetAddresses()[0] })
	if got == freed {
		t.Fatalf("the replacement got %s, the address of the task that just died (peers may still route it there)", got)
	}
}

// A new leader's allocator goes on after the newest task's address, as
// the last leader's would have, instead of starting from the bottom of
// the subnet and handing out the address of a task that just died.
func TestNewLeaderDoesNotHandOutAFreedAddressAtOnce(t *testing.T) {
	st := newStore(t)
	n := addNetwork(t, st, "app", "10.50.0.0/24")
	addService(t, st, "s", []string{n.GetId()})
	addTasks(t, st, "s", 1, 3)
	if _, err := New(st, Config{}).pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	var freed string
	update(t, st, func(tx store.Tx) error {
		tk := proto.Clone(tx.GetTask("s-t1")).(*api.Task)
		freed = tk.GetNetworks()[0].GetAddresses()[0]
		tk.Status = &api.TaskStatus{State: api.TaskState_TASK_STATE_SHUTDOWN}
		return tx.UpdateTask(tk)
	})
	addTasks(t, st, "s", 4, 1)
	if _, err := New(st, Config{}).pass(context.Background()); err != nil { // another leader
		t.Fatal(err)
	}
	var got, third string
	st.View(func(tx store.ReadTx) {
		got = tx.GetTask("s-t4").GetNetworks()[0].GetAddresses()[0]
		third = tx.GetTask("s-t3").GetNetworks()[0].GetAddresses()[0]
	})
	if got == freed {
		t.Fatalf("the new leader handed out %s, the address of the task that just stopped", got)
	}
	if want := netip.MustParsePrefix(third).Addr().Next(); netip.MustParsePrefix(got).Addr() != want {
		t.Fatalf("the new leader handed out %s, want %s (after the newest task's %s)", got, want, third)
	}
}
