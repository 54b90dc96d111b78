package daemon

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/agent"
	"github.com/shoalhq/shoal/proto/api"
)

// localNode serves requests about this node on its unix socket (the
// access table admits no other caller).
type localNode struct {
	api.UnimplementedLocalNodeServer
	d *Daemon
}

// Leave takes this node out of the cluster, then stops the daemon and
// forgets the node's cluster state so the data directory can join again.
func (s *localNode) Leave(ctx context.Context, req *api.NodeLeaveRequest) (*api.NodeLeaveResponse, error) {
	d := s.d
	if d.currentManager() != nil && !req.Force {
		return nil, status.Errorf(codes.FailedPrecondition,
			"node %s is a manager: leaving lowers the managers' fault tolerance; demote it first (`shoal node demote %s`) or leave with --force", d.state.NodeID, d.state.NodeID)
	}
	d.leaving.Store(true)
	managers := d.state.Managers
	if d.currentManager() != nil {
		managers = append([]string{d.cfg.AdvertiseAddr}, managers...)
	}
	err := d.callManagers(ctx, managers, func(ctx context.Context, c api.MembershipClient) error {
		_, err := c.Leave(ctx, &api.LeaveRequest{NodeId: d.state.NodeID})
		if api.IsNodeRemoved(err) {
			// An earlier try went through (its answer was lost when the
			// managers cut this node's connections): the node is out.
			return nil
		}
		return err
	})
	if err != nil {
		d.leaving.Store(false)
		return nil, err
	}
	d.log.Info("left the cluster; stopping and forgetting the node's cluster state", "node", d.state.NodeID)
	d.stopManager(true)
	_ = os.Remove(filepath.Join(d.cfg.DataDir, stateFile))
	// Forget the tasks too, so a node that joins again starts clean. The
	// agent still holds the file open until the daemon stops; removing the
	// name is enough.
	_ = os.Remove(filepath.Join(d.cfg.DataDir, agent.WorkerDBName))
	go func() {
		// Let the answer reach the client before the server stops.
		time.Sleep(100 * time.Millisecond)
		d.cancel()
	}()
	return &api.NodeLeaveResponse{NodeId: d.state.NodeID}, nil
}

// callManagers tries call on each manager address until one answers
// without Unavailable (a leader hand-over asks for a retry), for up to 30 s.
func (d *Daemon) callManagers(ctx context.Context, addrs []string, call func(context.Context, api.MembershipClient) error) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last error = status.Error(codes.Unavailable, "no manager address known")
	for ctx.Err() == nil {
		for _, a := range addrs {
			conn, err := d.dial(a)
			if err != nil {
				last = err
				continue
			}
			err = call(ctx, api.NewMembershipClient(conn))
			conn.Close()
			if status.Code(err) != codes.Unavailable {
				return err
			}
			last = err
		}
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	return last
}
