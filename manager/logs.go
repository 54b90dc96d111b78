package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/controlapi"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// controlServer is the manager's api.ControlServer: controlapi's, plus
// ServiceLogs, which needs the manager's connections to other nodes.
type controlServer struct {
	*controlapi.Server
	m *Manager
}

// ServiceLogs implements api.ControlServer. The target is resolved from
// this manager's store (no read barrier: a task placed a moment ago may
// be missed): an exact task ID, else a service by ID, name or unique ID
// prefix, else a unique task ID prefix. The target's tasks that have
// been placed on a node are grouped by node, and every node's Logs
// service (at its status address, over the manager's peer connections)
// is asked for them with the request's follow, tail and since; the
// nodes' streams are merged as messages arrive, each message carrying
// its task_id and node_id.
//
// A node that cannot be reached, or whose stream fails, does not end the
// call: it produces one warning message — empty task_id, the node's
// node_id, stream STDERR, data "cannot read the logs of node ...: why"
// — and the other nodes go on. A target with no placed task sends
// nothing. Without follow the call ends once every node's stream has
// ended; with follow, when the caller cancels. An unknown target is
// NotFound, an ambiguous one InvalidArgument.
func (s *controlServer) ServiceLogs(req *api.ServiceLogsRequest, stream grpc.ServerStreamingServer[api.LogMessage]) error {
	byNode, addrs, err := s.m.logTargets(req.GetTarget())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var (
		sendMu  sync.Mutex
		sendErr error
		wg      sync.WaitGroup
	)
	send := func(m *api.LogMessage) bool {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr != nil {
			return false
		}
		if sendErr = stream.Send(m); sendErr != nil {
			cancel()
			return false
		}
		return true
	}
	warn := func(node string, err error) {
		if ctx.Err() != nil {
			return
		}
		send(&api.LogMessage{NodeId: node, Stream: api.LogMessage_STREAM_STDERR,
			Data: []byte(fmt.Sprintf("cannot read the logs of node %s: %v", node, err))})
	}
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, node := range nodes {
		tasks := byNode[node]
		wg.Go(func() {
			addr := addrs[node]
			if addr == "" {
				warn(node, fmt.Errorf("its address is unknown"))
				return
			}
			conn, err := s.m.nodes.get(addr)
			if err != nil {
				warn(node, err)
				return
			}
			ls, err := api.NewLogsClient(conn).TaskLogs(ctx, &api.TaskLogsRequest{
				TaskIds: tasks, Follow: req.GetFollow(), Tail: req.GetTail(), Since: req.GetSince(),
			})
			if err != nil {
				warn(node, err)
				return
			}
			for {
				msg, err := ls.Recv()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						warn(node, err)
					}
					return
				}
				msg.NodeId = node
				if !send(msg) {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := stream.Context().Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return sendErr
}

// logTargets resolves a ServiceLogs target to the IDs of its placed
// tasks by node ID, and the nodes' addresses.
func (m *Manager) logTargets(target string) (map[string][]string, map[string]string, error) {
	if target == "" {
		return nil, nil, status.Error(codes.InvalidArgument, "service logs: a service or task ID or name is required")
	}
	var (
		tasks []*api.Task
		err   error
	)
	byNode := map[string][]string{}
	addrs := map[string]string{}
	m.store.View(func(tx store.ReadTx) {
		tasks, err = findLogTasks(tx, target)
		for _, t := range tasks {
			n := t.GetNodeId()
			if n == "" {
				continue
			}
			if _, ok := addrs[n]; !ok {
				addrs[n] = tx.GetNode(n).GetStatus().GetAddr()
			}
			byNode[n] = append(byNode[n], t.GetId())
		}
	})
	return byNode, addrs, err
}

// findLogTasks finds the tasks a target names: an exact task ID, else
// a service by ID, name or unique ID prefix, else a unique task ID
// prefix.
func findLogTasks(tx store.ReadTx, target string) ([]*api.Task, error) {
	if t := tx.GetTask(target); t != nil {
		return []*api.Task{t}, nil
	}
	svc := tx.GetService(target)
	if svc == nil {
		switch byName := tx.FindServices(store.ByName(target)); len(byName) {
		case 0:
		case 1:
			svc = byName[0]
		default:
			return nil, status.Errorf(codes.InvalidArgument, "service name %s is ambiguous: %s; use the service ID", target, serviceIDs(byName))
		}
	}
	if svc == nil {
		switch byPrefix := tx.FindServices(store.ByIDPrefix(target)); len(byPrefix) {
		case 0:
		case 1:
			svc = byPrefix[0]
		default:
			return nil, status.Errorf(codes.InvalidArgument, "service prefix %s is ambiguous: %s; use more characters", target, serviceIDs(byPrefix))
		}
	}
	if svc != nil {
		return tx.FindTasks(store.ByServiceID(svc.GetId())), nil
	}
	switch byPrefix := tx.FindTasks(store.ByIDPrefix(target)); len(byPrefix) {
	case 0:
		return nil, status.Errorf(codes.NotFound, "no service or task %s", target)
	case 1:
		return byPrefix, nil
	default:
		ids := make([]string, 0, len(byPrefix))
		for _, t := range byPrefix {
			ids = append(ids, t.GetId())
		}
		return nil, status.Errorf(codes.InvalidArgument, "task prefix %s is ambiguous: %s; use more characters", target, strings.Join(ids, ", "))
	}
}

// serviceIDs lists services as "ID (NAME)".
func serviceIDs(svcs []*api.Service) string {
	parts := make([]string, 0, len(svcs))
	for _, s := range svcs {
		parts = append(parts, fmt.Sprintf("%s (%s)", s.GetId(), s.GetSpec().GetAnnotations().GetName()))
	}
	return strings.Join(parts, ", ")
}
