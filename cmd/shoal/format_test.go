package main

import (
	"bytes"
	"testing"

	"github.com/shoalhq/shoal/proto/api"
)

// Fixed objects for the golden tests: a cluster of three managers and
// three workers, and one service of each mode.

func ptr[T any](v T) *T { return &v }

const selfID = "a1b2c3d4e5f6g7h8i9j0k1l2m"

func manager(leader bool, r api.Reachability, addr string) *api.ManagerStatus {
	return &api.ManagerStatus{Addr: addr, Leader: leader, Reachability: r}
}

func testNodes() []*api.Node {
	node := func(id, host string, state api.NodeState, avail api.NodeAvailability, ms *api.ManagerStatus) *api.Node {
		role := api.NodeRole_NODE_ROLE_WORKER
		if ms != nil {
			role = api.NodeRole_NODE_ROLE_MANAGER
		}
		return &api.Node{
			Id:   id,
			Meta: &api.Meta{Version: 42, CreatedAt: 1_700_000_000_000_000_000},
			Spec: &api.NodeSpec{Availability: avail, DesiredRole: role},
			Description: &api.NodeDescription{
				Hostname:  host,
				Platform:  &api.Platform{Os: "linux", Architecture: "x86_64"},
				Resources: &api.Resources{NanoCpus: 4e9, MemoryBytes: 8 << 30},
				Version:   "0.1.0",
			},
			Status:        &api.NodeStatus{State: state, Addr: "10.0.0.1"},
			ManagerStatus: ms,
			Role:          role,
		}
	}
	ready, down := api.NodeState_NODE_STATE_READY, api.NodeState_NODE_STATE_DOWN
	active := api.NodeAvailability_NODE_AVAILABILITY_ACTIVE
	worker := node("zz9y8x7w6v5u4t3s2r1q0p9o8", "worker-2", api.NodeState_NODE_STATE_DISCONNECTED, api.NodeAvailability_NODE_AVAILABILITY_PAUSE, nil)
	worker.Spec.Annotations = &api.Annotations{Labels: map[string]string{"zone": "eu", "ssd": ""}}
	worker.Description.EngineLabels = map[string]string{"kernel": "6.8"}
	return []*api.Node{
		worker,
		node("c3d4e5f6g7h8i9j0k1l2m3n4o", "manager-3", down, api.NodeAvailability_NODE_AVAILABILITY_DRAIN,
			manager(false, api.Reachability_REACHABILITY_UNREACHABLE, "10.0.0.3:4242")),
		node(selfID, "manager-1", ready, active, manager(true, api.Reachability_REACHABILITY_REACHABLE, "10.0.0.1:4242")),
		node("b2c3d4e5f6g7h8i9j0k1l2m3n", "manager-2", ready, active, manager(false, api.Reachability_REACHABILITY_REACHABLE, "10.0.0.2:4242")),
		node("aa1b2c3d4e5f6g7h8i9j0k1l2", "worker-2", ready, active, nil),
		node("d4e5f6g7h8i9j0k1l2m3n4o5p", "worker-1", api.NodeState_NODE_STATE_UNKNOWN, active, nil),
	}
}

func testServices() *api.ListServicesResponse {
	svc := func(id, name, image string, mode *api.ServiceMode) *api.Service {
		return &api.Service{
			Id:   id,
			Meta: &api.Meta{Version: 7, CreatedAt: 1_700_000_000_000_000_000},
			Spec: &api.ServiceSpec{
				Annotations: &api.Annotations{Name: name},
				Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: image}},
				Mode:        mode,
			},
		}
	}
	web := svc("kq8p7l2sd6yaw9x3m0v5c1b4n", "web", "nginx:1.25@sha256:0123456789abcdef",
		&api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 3}}})
	web.Endpoint = &api.Endpoint{Ports: []*api.PortConfig{
		{TargetPort: 80, PublishedPort: 8080},
		{TargetPort: 53, PublishedPort: 30001, Protocol: api.PortConfig_PROTOCOL_UDP},
	}}
	web.Spec.Endpoint = &api.EndpointSpec{Ports: []*api.PortConfig{
		{TargetPort: 80, PublishedPort: 8080},
		{TargetPort: 53, Protocol: api.PortConfig_PROTOCOL_UDP},
	}}
	web.Spec.Annotations.Labels = map[string]string{"tier": "front"}
	web.Spec.Task.Container.Env = []string{"A=1", "B=2"}
	web.Spec.Task.Container.StopGracePeriod = ptr(int64(20e9))
	web.Spec.Task.Placement = &api.Placement{Constraints: []string{"node.role==worker"},
		Preferences: []*api.PlacementPreference{{Spread: "node.labels.zone"}}}
	web.Spec.Task.Resources = &api.ResourceRequirements{Reservations: &api.Resources{NanoCpus: 5e8, MemoryBytes: 64 << 20}}
	web.Spec.Task.Restart = &api.RestartPolicy{Condition: api.RestartPolicy_CONDITION_ON_FAILURE, Delay: ptr(int64(5e9)), MaxAttempts: 3}
	web.Spec.Task.Networks = []*api.NetworkAttachmentConfig{{Target: "app", Aliases: []string{"www"}}}
	web.Spec.Update = &api.UpdateConfig{Parallelism: ptr(uint64(2)), Delay: 10e9, Order: api.UpdateConfig_ORDER_START_FIRST, Drain: 2e9}
	web.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_STATE_UPDATING, StartedAt: 1_700_000_100_000_000_000, Message: "update in progress", SpecVersion: 2}
	web.Endpoint.VirtualIps = []*api.VirtualIP{{NetworkId: "net1", Addr: "10.1.0.2/24"}}

	agent := svc("m3n4o5p6q7r8s9t0u1v2w3x4y", "agent", "shoal/agent:latest",
		&api.ServiceMode{Mode: &api.ServiceMode_Global{Global: &api.Global{}}})
	agent.Spec.Endpoint = &api.EndpointSpec{Ports: []*api.PortConfig{
		{TargetPort: 9100, PublishedPort: 9100, PublishMode: api.PortConfig_PUBLISH_MODE_HOST}}}
	migrate := svc("p6q7r8s9t0u1v2w3x4y5z6a7b", "migrate", "shop/migrate:2",
		&api.ServiceMode{Mode: &api.ServiceMode_ReplicatedJob{ReplicatedJob: &api.ReplicatedJob{MaxConcurrent: 2, TotalCompletions: 5}}})
	cleanup := svc("q7r8s9t0u1v2w3x4y5z6a7b8c", "cleanup", "busybox",
		&api.ServiceMode{Mode: &api.ServiceMode_GlobalJob{GlobalJob: &api.GlobalJob{}}})
	apiSvc := svc("r8s9t0u1v2w3x4y5z6a7b8c9d", "api", "shop/api:1.4",
		&api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 2}}})
	apiSvc.Spec.Task.Placement = &api.Placement{MaxReplicas: 1}
	apiSvc.Spec.Endpoint = &api.EndpointSpec{Ports: []*api.PortConfig{{TargetPort: 8080}}}
	apiSvc.UpdateStatus = &api.UpdateStatus{State: api.UpdateStatus_STATE_ROLLBACK_COMPLETED, StartedAt: 1_700_000_100_000_000_000,
		CompletedAt: 1_700_000_160_000_000_000, Message: "rollback completed", SpecVersion: 4}

	return &api.ListServicesResponse{
		Services: []*api.Service{web, agent, migrate, cleanup, apiSvc},
		Counts: map[string]*api.ReplicaCount{
			web.Id:     {Running: 2, Desired: 3},
			agent.Id:   {Running: 4, Desired: 4},
			migrate.Id: {Running: 1, Desired: 2, Completed: 3},
			cleanup.Id: {Running: 0, Desired: 3, Completed: 3},
		},
	}
}

func testClusterInfo() *api.GetClusterInfoResponse {
	return &api.GetClusterInfoResponse{
		Cluster: &api.Cluster{
			Id:         "cl7u8s9t0e1r2i3d4",
			Meta:       &api.Meta{Version: 3},
			Spec:       &api.ClusterSpec{Annotations: &api.Annotations{Name: "default"}},
			JoinTokens: &api.JoinTokens{Worker: "SHOAL-1-worker", Manager: "SHOAL-1-manager"},
		},
		Members: []*api.RaftMember{
			{NodeId: selfID, Addr: "10.0.0.1:4242", Reachability: api.Reachability_REACHABILITY_REACHABLE},
			{NodeId: "b2c3d4e5f6g7h8i9j0k1l2m3n", Addr: "10.0.0.2:4242", Leader: true, Reachability: api.Reachability_REACHABILITY_REACHABLE},
			{NodeId: "c3d4e5f6g7h8i9j0k1l2m3n4o", Addr: "10.0.0.3:4242", Reachability: api.Reachability_REACHABILITY_UNREACHABLE},
		},
		NodeId:       selfID,
		AppliedIndex: 1234,
		Nodes:        6,
		Services:     5,
		Tasks:        17,
	}
}

func TestNodeLsGolden(t *testing.T) {
	for _, tc := range []struct {
		golden, format string
		quiet          bool
	}{
		{"node_ls", formatTable, false},
		{"node_ls_json", formatJSON, false},
		{"node_ls_quiet", formatTable, true},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeNodeList(&out, testNodes(), selfID, tc.format, tc.quiet); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.golden, out.Bytes())
		})
	}
}

func TestServiceLsGolden(t *testing.T) {
	for _, tc := range []struct {
		golden, format string
		quiet          bool
	}{
		{"service_ls", formatTable, false},
		{"service_ls_json", formatJSON, false},
		{"service_ls_quiet", formatTable, true},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeServiceList(&out, testServices(), tc.format, tc.quiet); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.golden, out.Bytes())
		})
	}
}

func TestInspectGolden(t *testing.T) {
	nodes := testNodes()[:2]
	services := testServices().Services[:2]
	for _, tc := range []struct {
		golden string
		write  func(*bytes.Buffer) error
	}{
		{"node_inspect", func(b *bytes.Buffer) error { return writeProtoArray(b, nodes) }},
		{"node_inspect_pretty", func(b *bytes.Buffer) error { return writeNodesPretty(b, nodes) }},
		{"service_inspect", func(b *bytes.Buffer) error { return writeProtoArray(b, services) }},
		{"service_inspect_pretty", func(b *bytes.Buffer) error { return writeServicesPretty(b, services) }},
		{"empty_inspect", func(b *bytes.Buffer) error { return writeProtoArray(b, []*api.Node{}) }},
		{"cluster_info", func(b *bytes.Buffer) error { return writeClusterInfo(b, testClusterInfo()) }},
		{"cluster_info_json", func(b *bytes.Buffer) error { return writeClusterInfoJSON(b, testClusterInfo()) }},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var out bytes.Buffer
			if err := tc.write(&out); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.golden, out.Bytes())
		})
	}
}

func TestJoinTokenOutput(t *testing.T) {
	info := testClusterInfo()
	if got, want := joinAddr(info), "10.0.0.2:4242"; got != want {
		t.Errorf("joinAddr = %q, want the leader's %q", got, want)
	}
	info.Members[1].Leader = false
	if got, want := joinAddr(info), "10.0.0.1:4242"; got != want {
		t.Errorf("joinAddr without a leader = %q, want the answering manager's %q", got, want)
	}
	var out bytes.Buffer
	if err := writeJoinToken(&out, "worker", "SHOAL-1-abc", "10.0.0.2:4242", false); err != nil {
		t.Fatal(err)
	}
	want := "To add a worker to this cluster, run the following command:\n\n    shoal daemon --join 10.0.0.2:4242 --token SHOAL-1-abc\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	out.Reset()
	_ = writeJoinToken(&out, "manager", "SHOAL-1-abc", "x", true)
	if out.String() != "SHOAL-1-abc\n" {
		t.Errorf("quiet: got %q", out.String())
	}
}
