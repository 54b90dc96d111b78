package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	shoalmanager "github.com/shoalhq/shoal/manager"
	"github.com/shoalhq/shoal/manager/authz"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// fakeControl is a Control server with canned answers that records what
// it was sent.
type fakeControl struct {
	api.UnimplementedControlServer

	mu sync.Mutex
	// stale, when set, is sent as the shoal-stale header on reads.
	stale string
	// conflicts is how many writes fail out of sequence before one succeeds.
	conflicts int
	// writeErr, when set, fails every write.
	writeErr error
	// lastClusterUpdate is the last UpdateCluster request received.
	lastClusterUpdate *api.UpdateClusterRequest
	nodes             []*api.Node
	services          []*api.Service
	// tasks is what ListTasks answers from (filtered by the request);
	// when taskFrames is set, each ListTasks answers from the next frame
	// instead, the last one repeating.
	tasks      []*api.Task
	taskFrames [][]*api.Task
	info       *api.GetClusterInfoResponse
	calls      []string
	sent       []proto.Message
}

func (f *fakeControl) record(ctx context.Context, name string, req proto.Message, isRead bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	f.sent = append(f.sent, proto.Clone(req))
	if isRead {
		if f.stale != "" {
			return grpc.SetHeader(ctx, metadata.Pairs(staleHeader, f.stale))
		}
		return nil
	}
	if f.writeErr != nil {
		return f.writeErr
	}
	if f.conflicts > 0 {
		f.conflicts--
		return status.Error(codes.FailedPrecondition, "update out of sequence: read again and retry")
	}
	return nil
}

func (f *fakeControl) GetClusterInfo(ctx context.Context, req *api.GetClusterInfoRequest) (*api.GetClusterInfoResponse, error) {
	if err := f.record(ctx, "GetClusterInfo", req, true); err != nil {
		return nil, err
	}
	return f.info, nil
}

func (f *fakeControl) UpdateCluster(ctx context.Context, req *api.UpdateClusterRequest) (*api.UpdateClusterResponse, error) {
	if err := f.record(ctx, "UpdateCluster", req, false); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.lastClusterUpdate = req
	f.mu.Unlock()
	cl := proto.Clone(f.info.Cluster).(*api.Cluster)
	if req.RotateWorkerToken {
		cl.JoinTokens.Worker = "SHOAL-1-rotated"
	}
	return &api.UpdateClusterResponse{Cluster: cl}, nil
}

func (f *fakeControl) findNode(name string) *api.Node {
	for _, n := range f.nodes {
		if n.Id == name || n.Description.GetHostname() == name {
			return n
		}
	}
	return nil
}

func (f *fakeControl) GetNode(ctx context.Context, req *api.GetNodeRequest) (*api.GetNodeResponse, error) {
	if err := f.record(ctx, "GetNode", req, true); err != nil {
		return nil, err
	}
	if n := f.findNode(req.NodeId); n != nil {
		return &api.GetNodeResponse{Node: n}, nil
	}
	return nil, status.Errorf(codes.NotFound, "no node %q: see shoal node ls for node IDs and hostnames", req.NodeId)
}

func (f *fakeControl) ListNodes(ctx context.Context, req *api.ListNodesRequest) (*api.ListNodesResponse, error) {
	if err := f.record(ctx, "ListNodes", req, true); err != nil {
		return nil, err
	}
	return &api.ListNodesResponse{Nodes: f.nodes}, nil
}

func (f *fakeControl) UpdateNode(ctx context.Context, req *api.UpdateNodeRequest) (*api.UpdateNodeResponse, error) {
	if err := f.record(ctx, "UpdateNode", req, false); err != nil {
		return nil, err
	}
	n := f.findNode(req.NodeId)
	n.Spec = req.Spec
	n.Meta.Version++
	return &api.UpdateNodeResponse{Node: n}, nil
}

func (f *fakeControl) CreateService(ctx context.Context, req *api.CreateServiceRequest) (*api.CreateServiceResponse, error) {
	if err := f.record(ctx, "CreateService", req, false); err != nil {
		return nil, err
	}
	svc := &api.Service{Id: "newserviceid0123456789abc", Meta: &api.Meta{Version: 1}, Spec: req.Spec, SpecVersion: 1}
	f.mu.Lock()
	f.services = append(f.services, svc)
	f.mu.Unlock()
	return &api.CreateServiceResponse{Service: svc}, nil
}

func (f *fakeControl) GetService(ctx context.Context, req *api.GetServiceRequest) (*api.GetServiceResponse, error) {
	if err := f.record(ctx, "GetService", req, true); err != nil {
		return nil, err
	}
	for _, s := range f.services {
		if s.Id == req.ServiceId || s.Spec.Annotations.GetName() == req.ServiceId {
			return &api.GetServiceResponse{Service: s}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "no service %q", req.ServiceId)
}

func (f *fakeControl) RemoveService(ctx context.Context, req *api.RemoveServiceRequest) (*api.RemoveServiceResponse, error) {
	if err := f.record(ctx, "RemoveService", req, false); err != nil {
		return nil, err
	}
	return &api.RemoveServiceResponse{}, nil
}

// callNames returns the RPCs the server received.
func (f *fakeControl) callNames() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, ",")
}

// startFake serves f on a unix socket and returns the --host value.
func startFake(t *testing.T, f api.ControlServer) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "shoal")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, socketName)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	api.RegisterControlServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return "unix://" + sock
}

// writeClientCerts makes a root CA and an admin client's ca.pem, cert.pem
// and key.pem in a new folder.
func writeClientCerts(t *testing.T) (dir string, root *ca.RootCA, clusterID string) {
	t.Helper()
	root, err := ca.NewRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	clusterID = "cluster1"
	dir = t.TempDir()
	key, csr, err := ca.NewKeyAndCSR("alice")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := root.Sign(csr, ca.Identity{ClusterID: clusterID, ID: "alice", Role: ca.RoleAdmin}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(dir, ca.ClientCertFile, ca.ClientKeyFile, ca.ClientCAFile, leaf, key, root.CertPEM); err != nil {
		t.Fatal(err)
	}
	return dir, root, clusterID
}

// startTLSFake serves f on a loopback port with a manager certificate of
// root's cluster, authorizing calls as a node does, and returns the
// address.
func startTLSFake(t *testing.T, f api.ControlServer, root *ca.RootCA, clusterID string) string {
	t.Helper()
	key, csr, err := ca.NewKeyAndCSR("m1")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := root.Sign(csr, ca.Identity{ClusterID: clusterID, ID: "m1", Role: ca.RoleManager}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	creds, err := ca.NewCredentials(append(leaf, root.CertPEM...), key, root.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := shoalmanager.NewTransport(ln, nil, creds, func() authz.Membership { return nil })
	api.RegisterControlServer(tr.GRPC, f)
	go tr.GRPC.Serve(tr.Mux.GRPCListener())
	t.Cleanup(tr.Close)
	return ln.Addr().String()
}

// Over TCP the CLI presents its certificate (from the flags or from
// SHOAL_CERT_PATH) and checks the manager's; without one it says how to
// get one.
func TestTCPWithCertificates(t *testing.T) {
	dir, root, clusterID := writeClientCerts(t)
	addr := startTLSFake(t, newFake(), root, clusterID)
	_, _, err := runCLI("--host", addr, "service", "ls")
	if err == nil || !strings.Contains(err.Error(), "issue-client") {
		t.Fatalf("no certificate: %v, want how to get one", err)
	}
	out, _, err := runCLI("--host", addr, "--tlscacert", filepath.Join(dir, "ca.pem"), "--tlscert", filepath.Join(dir, "cert.pem"), "--tlskey", filepath.Join(dir, "key.pem"), "service", "ls", "-q")
	if err != nil || !strings.Contains(out, "\n") {
		t.Fatalf("with --tls flags: %v\n%s", err, out)
	}
	if _, _, err := runCLI("--host", addr, "--tlscert", filepath.Join(dir, "cert.pem"), "service", "ls"); err == nil || !strings.Contains(err.Error(), "all of --tlscacert") {
		t.Fatalf("an incomplete set of files: %v", err)
	}
	t.Setenv(certPathEnv, dir)
	if out, _, err := runCLI("--host", addr, "service", "ls", "-q"); err != nil {
		t.Fatalf("with %s: %v\n%s", certPathEnv, err, out)
	}
	// A manager of another cluster's CA is refused by the client.
	_, otherRoot, _ := writeClientCerts(t)
	other := startTLSFake(t, newFake(), otherRoot, clusterID)
	if _, _, err := runCLI("--host", other, "service", "ls"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server under another CA: %v", err)
	}
}

// newFake returns a server holding the golden-test cluster.
func newFake() *fakeControl {
	return &fakeControl{nodes: testNodes(), services: testServices().Services, info: testClusterInfo()}
}

// runCLI runs the shoal command line with args and returns its output.
func runCLI(args ...string) (stdout, stderr string, err error) {
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func TestStaleReadWarning(t *testing.T) {
	f := newFake()
	f.stale = "this manager cannot reach the Raft leader; the answer may be out of date"
	host := startFake(t, f)
	stdout, stderr, err := runCLI("--host", host, "node", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if want := "WARNING: " + f.stale + "\n"; stderr != want {
		t.Errorf("stderr %q, want the warning once: %q", stderr, want)
	}
	golden, _ := os.ReadFile("testdata/node_ls.golden")
	if stdout != string(golden) {
		t.Errorf("stdout differs from testdata/node_ls.golden:\n%s", stdout)
	}

	f.stale = ""
	_, stderr, err = runCLI("--host", host, "node", "ls")
	if err != nil || stderr != "" {
		t.Errorf("fresh read: err %v, stderr %q; want neither", err, stderr)
	}
}

func TestErrorMessageIsTheServers(t *testing.T) {
	f := newFake()
	host := startFake(t, f)

	stdout, _, err := runCLI("--host", host, "node", "inspect", "manager-1", "nope")
	want := `no node "nope": see shoal node ls for node IDs and hostnames`
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want exactly %q", err, want)
	}
	if !strings.HasPrefix(stdout, "[\n  {\n    \"id\": \""+selfID) {
		t.Errorf("the node found should still be printed; got %q", stdout)
	}

	f.writeErr = status.Error(codes.Unavailable, "no Raft leader: writes need a majority of managers (2 of 3 unreachable)")
	_, _, err = runCLI("--host", host, "node", "update", "--availability", "drain", "manager-1")
	if err == nil || err.Error() != "no Raft leader: writes need a majority of managers (2 of 3 unreachable)" {
		t.Errorf("write without leader: error %v", err)
	}
	if isCode(err, codes.Unavailable) != true {
		t.Errorf("the error should keep its code, got %v", status.Code(err))
	}
}

func TestUnreachable(t *testing.T) {
	_, _, err := runCLI("--host", "unix:///nonexistent/shoal.sock", "service", "ls")
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the shoal API at unix:///nonexistent/shoal.sock: ") ||
		!strings.HasSuffix(err.Error(), "(is the daemon running? set --host or SHOAL_HOST)") {
		t.Errorf("error %v", err)
	}

	t.Setenv(hostEnv, "unix:///nonexistent/from-env.sock")
	_, _, err = runCLI("node", "ls")
	if err == nil || !strings.Contains(err.Error(), "unix:///nonexistent/from-env.sock") {
		t.Errorf("SHOAL_HOST not used: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	// A listener that accepts and never answers.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skip("no loopback:", err)
	}
	defer lis.Close()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	dir, _, _ := writeClientCerts(t)
	start := time.Now()
	_, _, err = runCLI("--host", lis.Addr().String(), "--timeout", "300ms",
		"--tlscacert", filepath.Join(dir, "ca.pem"), "--tlscert", filepath.Join(dir, "cert.pem"), "--tlskey", filepath.Join(dir, "key.pem"), "service", "ls")
	if err == nil || !strings.Contains(err.Error(), lis.Addr().String()) || !strings.Contains(err.Error(), "300ms") {
		t.Errorf("error %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s despite --timeout 300ms", d)
	}
}

func TestNodeUpdateRetriesOutOfSequence(t *testing.T) {
	f := newFake()
	f.conflicts = 2
	host := startFake(t, f)
	stdout, _, err := runCLI("--host", host, "node", "update", "--availability", "drain",
		"--label-add", "zone=us", "--label-add", "gpu", "--label-rm", "ssd", "worker-2")
	if err != nil {
		t.Fatal(err)
	}
	if stdout != "worker-2\n" {
		t.Errorf("stdout %q", stdout)
	}
	if got, want := f.callNames(), "GetNode,UpdateNode,GetNode,UpdateNode,GetNode,UpdateNode"; got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	n := f.findNode("worker-2")
	if n.Spec.Availability != api.NodeAvailability_NODE_AVAILABILITY_DRAIN ||
		!proto.Equal(n.Spec.Annotations, &api.Annotations{Labels: map[string]string{"zone": "us", "gpu": ""}}) {
		t.Errorf("spec %v", n.Spec)
	}
	last := f.sent[len(f.sent)-1].(*api.UpdateNodeRequest)
	if last.Version != 42 || last.NodeId != "zz9y8x7w6v5u4t3s2r1q0p9o8" {
		t.Errorf("update sent %v; want the version read and the node's ID", last)
	}
}

func TestNodeUpdateGivesUp(t *testing.T) {
	old := retryBackoff
	retryBackoff = func(int) time.Duration { return 0 }
	t.Cleanup(func() { retryBackoff = old })
	f := newFake()
	f.conflicts = 100
	host := startFake(t, f)
	_, _, err := runCLI("--host", host, "node", "update", "--availability", "pause", "manager-2")
	if err == nil || err.Error() != "update out of sequence: read again and retry" {
		t.Errorf("error %v", err)
	}
	if n := strings.Count(f.callNames(), "UpdateNode"); n != maxUpdateAttempts {
		t.Errorf("%d attempts, want %d", n, maxUpdateAttempts)
	}
}

func TestBadFlagsSendNothing(t *testing.T) {
	f := newFake()
	host := startFake(t, f)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"node", "update", "--availability", "off", "worker-1"}, `invalid argument "off" for --availability: valid values are active, pause, drain`},
		{[]string{"node", "update", "worker-1"}, "nothing to change: give --availability, --label-add or --label-rm"},
		{[]string{"node", "ls", "--filter", "colour=red"}, `invalid argument "colour=red" for --filter: unknown filter "colour" (valid filters are role and label)`},
		{[]string{"node", "ls", "--format", "yaml"}, `invalid argument "yaml" for --format: valid values are table, json`},
		{[]string{"service", "create", "--update-delay", "abc", "nginx"}, `invalid argument "abc" for --update-delay: not a duration (examples: 10s, 1m30s)`},
		{[]string{"service", "create"}, "shoal service create needs an IMAGE: shoal service create [flags] IMAGE [COMMAND] [ARG...]"},
	} {
		_, _, err := runCLI(append([]string{"--host", host}, tc.args...)...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if calls := f.callNames(); calls != "" {
		t.Errorf("bad flags sent RPCs: %s", calls)
	}
}

func TestPromoteDemote(t *testing.T) {
	f := newFake()
	host := startFake(t, f)
	stdout, _, err := runCLI("--host", host, "node", "promote", "worker-1", "manager-1")
	if err != nil {
		t.Fatal(err)
	}
	want := "Node worker-1 promoted to a manager in the cluster.\nNode manager-1 is already a manager.\n"
	if stdout != want {
		t.Errorf("promote: %q, want %q", stdout, want)
	}
	if f.findNode("worker-1").Spec.DesiredRole != api.NodeRole_NODE_ROLE_MANAGER {
		t.Error("worker-1 was not promoted")
	}
	stdout, _, err = runCLI("--host", host, "node", "demote", "manager-2", "worker-2", "ghost")
	if err == nil || !strings.Contains(err.Error(), `no node "ghost"`) {
		t.Errorf("demote of a missing node: %v", err)
	}
	want = "Manager manager-2 demoted in the cluster.\nNode worker-2 is already a worker.\n"
	if stdout != want {
		t.Errorf("demote: %q, want %q", stdout, want)
	}
}

func TestJoinTokenRotate(t *testing.T) {
	f := newFake()
	f.conflicts = 1
	host := startFake(t, f)
	stdout, _, err := runCLI("--host", host, "cluster", "join-token", "--rotate", "worker")
	if err != nil {
		t.Fatal(err)
	}
	want := "Successfully rotated worker join token.\n\n" +
		"To add a worker to this cluster, run the following command:\n\n" +
		"    shoal daemon --join 10.0.0.2:4242 --token SHOAL-1-rotated\n"
	if stdout != want {
		t.Errorf("got %q, want %q", stdout, want)
	}
	if got := f.callNames(); got != "GetClusterInfo,UpdateCluster,GetClusterInfo,UpdateCluster" {
		t.Errorf("calls %s", got)
	}
	req := f.sent[len(f.sent)-1].(*api.UpdateClusterRequest)
	if req.ClusterId != "cl7u8s9t0e1r2i3d4" || req.Version != 3 || !req.RotateWorkerToken || req.RotateManagerToken {
		t.Errorf("update sent %v", req)
	}
	stdout, _, _ = runCLI("--host", host, "cluster", "join-token", "-q", "manager")
	if stdout != "SHOAL-1-manager\n" {
		t.Errorf("-q: %q", stdout)
	}
}

func TestServiceCreateAndRm(t *testing.T) {
	f := newFake()
	host := startFake(t, f)
	stdout, _, err := runCLI("--host", host, "service", "create", "--name", "hello", "-p", "8080:80", "-d",
		"busybox", "sh", "-c", "echo hi", "--name", "not-a-flag")
	if err != nil {
		t.Fatal(err)
	}
	if stdout != "newserviceid0123456789abc\n" {
		t.Errorf("stdout %q", stdout)
	}
	spec := f.sent[0].(*api.CreateServiceRequest).Spec
	want := base(func(s *api.ServiceSpec) {
		s.Annotations = &api.Annotations{Name: "hello"}
		s.Task.Container.Image = "busybox"
		s.Task.Container.Args = []string{"sh", "-c", "echo hi", "--name", "not-a-flag"}
		s.Endpoint = &api.EndpointSpec{Ports: []*api.PortConfig{{PublishedPort: 8080, TargetPort: 80}}}
	})
	if !proto.Equal(spec, want) {
		t.Errorf("spec sent %v, want %v", spec, want)
	}

	stdout, _, err = runCLI("--host", host, "service", "rm", "web", "kq8p7l2sd6ya")
	if err == nil || err.Error() != `no service "kq8p7l2sd6ya"` {
		t.Errorf("error %v", err) // the fake knows no ID prefixes
	}
	if stdout != "web\n" {
		t.Errorf("stdout %q", stdout)
	}
}

func TestParseHost(t *testing.T) {
	for _, tc := range []struct {
		in, network, address, err string
	}{
		{"unix:///var/run/x.sock", "unix", "/var/run/x.sock", ""},
		{"10.0.0.1:4242", "tcp", "10.0.0.1:4242", ""},
		{"tcp://manager-1:4242", "tcp", "manager-1:4242", ""},
		{"[::1]:4242", "tcp", "[::1]:4242", ""},
		{":4242", "tcp", "localhost:4242", ""},
		{"manager-1", "", "", `invalid --host "manager-1": no port (expected HOST:PORT or unix:///PATH)`},
		{"http://x:1", "", "", `invalid --host "http://x:1": unknown scheme (expected HOST:PORT or unix:///PATH)`},
		{"x:99999", "", "", `invalid --host "x:99999": the port is not a number from 1 to 65535 (expected HOST:PORT or unix:///PATH)`},
		{"unix://", "", "", `invalid --host "unix://": no socket path (expected HOST:PORT or unix:///PATH)`},
	} {
		ep, err := parseHost(tc.in, "--host")
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("parseHost(%q): error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || ep.network != tc.network || ep.address != tc.address {
			t.Errorf("parseHost(%q) = %+v, %v", tc.in, ep, err)
		}
	}
	ep, _ := resolveEndpoint("", func(string) string { return "" })
	if ep.String() != "unix:///var/lib/shoal/shoal.sock" {
		t.Errorf("default endpoint %s", ep)
	}
	ep, _ = resolveEndpoint("", func(string) string { return "10.0.0.9:4242" })
	if ep.String() != "10.0.0.9:4242" {
		t.Errorf("SHOAL_HOST endpoint %s", ep)
	}
}

func TestNodeLsFilters(t *testing.T) {
	f := newFake()
	host := startFake(t, f)
	_, _, err := runCLI("--host", host, "node", "ls", "-q", "--filter", "role=manager", "-f", "label=zone=eu", "--filter", "node.label=ssd")
	if err != nil {
		t.Fatal(err)
	}
	want := &api.ListNodesRequest{Roles: []api.NodeRole{api.NodeRole_NODE_ROLE_MANAGER}, Labels: []string{"zone=eu", "ssd"}}
	if got := f.sent[0]; !proto.Equal(got, want) {
		t.Errorf("request %v, want %v", got, want)
	}
}
