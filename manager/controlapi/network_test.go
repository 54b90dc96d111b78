package controlapi

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

func netSpec(name, subnet, gateway string) *api.NetworkSpec {
	s := &api.NetworkSpec{Annotations: &api.Annotations{Name: name}}
	if subnet != "" || gateway != "" {
		s.Ipam = []*api.IPAMConfig{{Subnet: subnet, Gateway: gateway}}
	}
	return s
}

func createNet(t *testing.T, srv *Server, spec *api.NetworkSpec) (*api.Network, error) {
	t.Helper()
	resp, err := srv.CreateNetwork(context.Background(), &api.CreateNetworkRequest{Spec: spec})
	return resp.GetNetwork(), err
}

func TestCreateNetworkAllocates(t *testing.T) {
	srv, _, _ := newTestServer(t) // holds app (VNI 4096) and db (4097), no subnets
	a, err := createNet(t, srv, netSpec("front", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	if a.GetVni() != 4098 || a.GetIpam()[0].GetSubnet() != "10.0.0.0/24" || a.GetIpam()[0].GetGateway() != "10.0.0.1" || a.GetSpec().GetDriver() != DriverOverlay {
		t.Fatalf("first network: vni %d ipam %v driver %q", a.GetVni(), a.GetIpam(), a.GetSpec().GetDriver())
	}
	b, err := createNet(t, srv, netSpec("back", "", ""))
	if err != nil || b.GetVni() != 4099 || b.GetIpam()[0].GetSubnet() != "10.0.1.0/24" {
		t.Fatalf("second network: %v %v", b, err)
	}
	c, err := createNet(t, srv, netSpec("mine", "192.168.50.0/26", "192.168.50.62"))
	if err != nil || c.GetIpam()[0].GetSubnet() != "192.168.50.0/26" || c.GetIpam()[0].GetGateway() != "192.168.50.62" {
		t.Fatalf("explicit subnet: %v %v", c, err)
	}
}

func TestCreateNetworkRefusals(t *testing.T) {
	srv, st, _ := newTestServer(t)
	if _, err := createNet(t, srv, netSpec("taken", "10.7.0.0/16", "")); err != nil {
		t.Fatal(err)
	}
	before := st.AppliedIndex()
	for _, tc := range []struct {
		name string
		spec *api.NetworkSpec
		code codes.Code
		want string
	}{
		{"overlapping subnet", netSpec("other", "10.7.3.0/24", ""), codes.AlreadyExists, "overlaps 10.7.0.0/16 of network taken"},
		{"name in use", netSpec("taken", "", ""), codes.AlreadyExists, `network name "taken" is already in use`},
		{"reserved name", netSpec("ingress", "", ""), codes.InvalidArgument, "annotations.name"},
		{"bad name", netSpec("-x", "", ""), codes.InvalidArgument, "annotations.name"},
		{"bridge driver", &api.NetworkSpec{Annotations: &api.Annotations{Name: "b"}, Driver: "bridge"}, codes.InvalidArgument, "predefined on every node"},
		{"unknown driver", &api.NetworkSpec{Annotations: &api.Annotations{Name: "b"}, Driver: "macvlan"}, codes.InvalidArgument, "unknown driver"},
		{"host bits", netSpec("h", "10.9.0.1/24", ""), codes.InvalidArgument, "write 10.9.0.0/24"},
		{"IPv6", netSpec("v6", "fd00::/64", ""), codes.InvalidArgument, "not IPv4"},
		{"too small", netSpec("tiny", "10.9.0.0/31", ""), codes.InvalidArgument, "too small"},
		{"gateway outside", netSpec("g", "10.9.0.0/24", "10.9.1.1"), codes.InvalidArgument, "ipam[0].gateway"},
		{"gateway without subnet", netSpec("g", "", "10.9.0.1"), codes.InvalidArgument, "needs a subnet"},
		{"two subnets", &api.NetworkSpec{Annotations: &api.Annotations{Name: "two"}, Ipam: []*api.IPAMConfig{{Subnet: "10.9.0.0/24"}, {Subnet: "10.9.1.0/24"}}}, codes.InvalidArgument, "one subnet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := createNet(t, srv, tc.spec)
			wantCode(t, err, tc.code, tc.want)
		})
	}
	if st.AppliedIndex() != before {
		t.Fatalf("refused creates wrote (index %d, was %d)", st.AppliedIndex(), before)
	}
}

func TestCreateNetworkPoolExhausted(t *testing.T) {
	srv, st, _ := newTestServer(t)
	seed(t, st, func(tx store.Tx) error {
		return tx.CreateCluster(&api.Cluster{Id: "c", Spec: &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}},
			DefaultAddressPool: []string{"10.50.0.0/23"}, SubnetSize: 24})
	})
	for _, name := range []string{"one", "two"} {
		if _, err := createNet(t, srv, netSpec(name, "", "")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := createNet(t, srv, netSpec("three", "", ""))
	wantCode(t, err, codes.ResourceExhausted, "no free /24 left", "--subnet")
}

func TestRemoveNetworkInUse(t *testing.T) {
	srv, st, _ := newTestServer(t)
	n, err := createNet(t, srv, netSpec("app2", "", ""))
	if err != nil {
		t.Fatal(err)
	}
	spec := validSpec()
	spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "app2"}}
	svc, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.GetService().GetSpec().GetTask().GetNetworks()[0].GetTarget(); got != n.GetId() {
		t.Fatalf("stored target %q, want the network ID %s", got, n.GetId())
	}
	_, err = srv.RemoveNetwork(context.Background(), &api.RemoveNetworkRequest{NetworkId: "app2"})
	wantCode(t, err, codes.FailedPrecondition, "in use by service web")
	if _, err := srv.RemoveService(context.Background(), &api.RemoveServiceRequest{ServiceId: "web"}); err != nil {
		t.Fatal(err)
	}
	// A task still running on the network keeps it.
	seed(t, st, func(tx store.Tx) error {
		return tx.CreateTask(&api.Task{Id: "t1", Status: &api.TaskStatus{State: api.TaskState_TASK_STATE_RUNNING},
			Networks: []*api.NetworkAttachment{{NetworkId: n.GetId(), Addresses: []string{"10.0.0.2/24"}}}})
	})
	_, err = srv.RemoveNetwork(context.Background(), &api.RemoveNetworkRequest{NetworkId: "app2"})
	wantCode(t, err, codes.FailedPrecondition, "1 task(s)")
	seed(t, st, func(tx store.Tx) error {
		task := clone(tx.GetTask("t1"))
		task.Status.State = api.TaskState_TASK_STATE_SHUTDOWN
		return tx.UpdateTask(task)
	})
	if _, err := srv.RemoveNetwork(context.Background(), &api.RemoveNetworkRequest{NetworkId: "app2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.GetNetwork(context.Background(), &api.GetNetworkRequest{NetworkId: "app2"}); err == nil {
		t.Fatal("network still there")
	}
}

func TestServiceNetworkTargets(t *testing.T) {
	srv, _, _ := newTestServer(t)
	spec := validSpec()
	spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "nope"}}
	_, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	wantCode(t, err, codes.NotFound, "task.networks[0]", "network nope not found")
	spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "app"}, {Target: "ap"}}
	_, err = srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	wantCode(t, err, codes.InvalidArgument, "same network as networks[0]")
	spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "app"}, {Target: "host"}}
	_, err = srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	wantCode(t, err, codes.InvalidArgument, `"host" is a node-local network mode and must be the only network`)
	spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "host"}}
	_, err = srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec}) // validSpec publishes ingress ports
	wantCode(t, err, codes.InvalidArgument, "publish with mode=host")
	spec.Endpoint = nil
	resp, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	if err != nil || resp.GetService().GetSpec().GetTask().GetNetworks()[0].GetTarget() != "host" {
		t.Fatalf("host network: %v %v", resp, err)
	}
}

func TestListAndGetNetworks(t *testing.T) {
	srv, _, _ := newTestServer(t)
	resp, err := srv.ListNetworks(context.Background(), &api.ListNetworksRequest{})
	if err != nil || len(resp.GetNetworks()) != 2 || resp.GetNetworks()[0].GetSpec().GetAnnotations().GetName() != "app" {
		t.Fatalf("list: %v %v", resp, err)
	}
	resp, _ = srv.ListNetworks(context.Background(), &api.ListNetworksRequest{Names: []string{"db"}})
	if len(resp.GetNetworks()) != 1 {
		t.Fatalf("list by name: %v", resp)
	}
	if g, err := srv.GetNetwork(context.Background(), &api.GetNetworkRequest{NetworkId: "db"}); err != nil || g.GetNetwork().GetVni() != 4097 {
		t.Fatalf("get: %v %v", g, err)
	}
}

func TestPublishedPortTaken(t *testing.T) {
	srv, st, _ := newTestServer(t)
	if _, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: validSpec()}); err != nil {
		t.Fatal(err)
	}
	before := st.AppliedIndex()
	other := validSpec()
	other.Annotations.Name = "other"
	other.Endpoint.Ports = []*api.PortConfig{{TargetPort: 81, PublishedPort: 8080}}
	_, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: other})
	wantCode(t, err, codes.AlreadyExists, "published port 8080/tcp is already published by service web (ingress mode)")
	if st.AppliedIndex() != before {
		t.Fatal("a refused create wrote")
	}
	// The mesh takes the port on every node, host mode too.
	other.Endpoint.Ports[0].PublishMode = api.PortConfig_PUBLISH_MODE_HOST
	_, err = srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: other})
	wantCode(t, err, codes.AlreadyExists, "(ingress mode)")
	// Host-mode ports of two services: the scheduler keeps them apart.
	other.Endpoint.Ports[0].PublishedPort = 9090
	if _, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: other}); err != nil {
		t.Fatalf("host-mode port: %v", err)
	}
	third := validSpec()
	third.Annotations.Name = "third"
	third.Endpoint.Ports = []*api.PortConfig{{TargetPort: 80, PublishedPort: 9090, PublishMode: api.PortConfig_PUBLISH_MODE_HOST}}
	if _, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: third}); err != nil {
		t.Fatalf("a second host-mode service on 9090: %v", err)
	}
	third.Annotations.Name = "fourth"
	third.Endpoint.Ports[0].PublishMode = api.PortConfig_PUBLISH_MODE_INGRESS
	_, err = srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: third})
	wantCode(t, err, codes.AlreadyExists, "(host mode)")
}

func TestSubnetTooSmallForReplicas(t *testing.T) {
	srv, st, _ := newTestServer(t)
	if _, err := createNet(t, srv, netSpec("tiny", "10.60.0.0/29", "")); err != nil { // 6 hosts - gateway = 5
		t.Fatal(err)
	}
	before := st.AppliedIndex()
	spec := validSpec()
	spec.Endpoint = nil
	spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "tiny"}}
	spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 5}}}
	_, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec})
	wantCode(t, err, codes.ResourceExhausted, "network tiny (10.60.0.0/29) has 5 free addresses; the service needs 5 replicas and its virtual IP")
	if st.AppliedIndex() != before {
		t.Fatal("a refused create wrote")
	}
	spec.Mode = &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 4}}}
	if _, err := srv.CreateService(context.Background(), &api.CreateServiceRequest{Spec: spec}); err != nil {
		t.Fatalf("4 replicas and a VIP fit 5 addresses: %v", err)
	}
}
