package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/authz"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// fakeLogs is a node's Logs service that answers "TASK line N" for each
// asked task, and records the requests.
type fakeLogs struct {
	api.UnimplementedLogsServer
	reqs chan *api.TaskLogsRequest
}

func (f *fakeLogs) TaskLogs(req *api.TaskLogsRequest, stream grpc.ServerStreamingServer[api.LogMessage]) error {
	f.reqs <- req
	for _, id := range req.TaskIds {
		for i := 1; i <= 2; i++ {
			if err := stream.Send(&api.LogMessage{TaskId: id, NodeId: "wrong", Data: []byte(fmt.Sprintf("%s line %d", id, i))}); err != nil {
				return err
			}
		}
	}
	if req.Follow {
		<-stream.Context().Done()
	}
	return nil
}

// startFakeNode serves a fakeLogs on a loopback port, as node id of
// tc's cluster would (TLS, authorized).
func startFakeNode(t *testing.T, tc *TestManagers, id string) (string, *fakeLogs) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTransport(ln, nil, tc.Issue(id, ca.RoleWorker, time.Hour), func() authz.Membership { return nil })
	f := &fakeLogs{reqs: make(chan *api.TaskLogsRequest, 10)}
	api.RegisterLogsServer(tr.GRPC, f)
	go tr.GRPC.Serve(tr.Mux.GRPCListener())
	t.Cleanup(tr.Close)
	return ln.Addr().String(), f
}

// collectLogs reads a ServiceLogs stream to its end (or until n messages).
func collectLogs(t *testing.T, cc api.ControlClient, req *api.ServiceLogsRequest, n int) ([]*api.LogMessage, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cc.ServiceLogs(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []*api.LogMessage
	for n < 0 || len(out) < n {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, nil
}

// ServiceLogs resolves a service by name, asks each node for its own
// tasks with the request's options, merges the answers with the right
// node_id, and turns an unreachable node into one warning message.
func TestServiceLogsMergesNodes(t *testing.T) {
	tc := StartTestManagers(t, 1)
	m := tc.WaitForLeader(10 * time.Second)
	addr1, n1 := startFakeNode(t, tc, "node1")
	addr2, n2 := startFakeNode(t, tc, "node2")
	ctx, cancel := ctx5()
	defer cancel()
	err := m.Store().Update(ctx, func(tx store.Tx) error {
		for _, n := range []*api.Node{
			{Id: "node1", Status: &api.NodeStatus{Addr: addr1}},
			{Id: "node2", Status: &api.NodeStatus{Addr: addr2}},
			{Id: "node3", Status: &api.NodeStatus{Addr: "127.0.0.1:1"}},
		} {
			if err := tx.CreateNode(n); err != nil {
				return err
			}
		}
		if err := tx.CreateService(&api.Service{Id: "svc1", Spec: &api.ServiceSpec{Annotations: &api.Annotations{Name: "web"}}}); err != nil {
			return err
		}
		for _, tk := range []*api.Task{
			{Id: "task1", ServiceId: "svc1", NodeId: "node1"},
			{Id: "task2", ServiceId: "svc1", NodeId: "node2"},
			{Id: "task3", ServiceId: "svc1", NodeId: "node1"},
			{Id: "task4", ServiceId: "svc1", NodeId: "node3"},
			{Id: "task5", ServiceId: "svc1"}, // not placed
			{Id: "other", ServiceId: "svc2", NodeId: "node2"},
		} {
			if err := tx.CreateTask(tk); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cc := api.NewControlClient(client(t, m))
	msgs, err := collectLogs(t, cc, &api.ServiceLogsRequest{Target: "web", Tail: 5, Since: 7}, -1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	warnings := 0
	for _, msg := range msgs {
		if msg.TaskId == "" {
			warnings++
			if msg.NodeId != "node3" || !strings.Contains(string(msg.Data), "cannot read the logs of node node3") {
				t.Fatalf("warning %v", msg)
			}
			continue
		}
		got = append(got, msg.NodeId+": "+string(msg.Data))
	}
	sort.Strings(got)
	want := "node1: task1 line 1,node1: task1 line 2,node1: task3 line 1,node1: task3 line 2,node2: task2 line 1,node2: task2 line 2"
	if strings.Join(got, ",") != want || warnings != 1 {
		t.Fatalf("got %q and %d warnings; want %q and 1", got, warnings, want)
	}
	r1, r2 := <-n1.reqs, <-n2.reqs
	if strings.Join(r1.TaskIds, ",") != "task1,task3" || strings.Join(r2.TaskIds, ",") != "task2" ||
		r1.Tail != 5 || r1.Since != 7 || r1.Follow {
		t.Fatalf("node requests %v, %v", r1, r2)
	}

	// One task by ID; following until the caller has enough.
	msgs, err = collectLogs(t, cc, &api.ServiceLogsRequest{Target: "task2", Follow: true}, 2)
	if err != nil || len(msgs) != 2 || msgs[1].TaskId != "task2" || msgs[1].NodeId != "node2" {
		t.Fatalf("task2 follow: %v, %v", msgs, err)
	}
	if r := <-n2.reqs; !r.Follow || strings.Join(r.TaskIds, ",") != "task2" {
		t.Fatalf("follow request %v", r)
	}
	if _, err := collectLogs(t, cc, &api.ServiceLogsRequest{Target: "nothing"}, -1); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown target: %v", err)
	}
	if _, err := collectLogs(t, cc, &api.ServiceLogsRequest{Target: "task"}, -1); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("ambiguous task prefix: %v", err)
	}
}
