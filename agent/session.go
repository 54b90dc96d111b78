package agent

import (
	"context"
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/proto/api"
)

// The error detail a manager attaches when it will not serve the
// assignments stream because it is not the leader: an ErrorInfo with
// this reason and domain and the leader's address (empty when unknown)
// under the metadata key. It must match the manager's
// (manager/dispatcher_server.go).
const (
	notLeaderReason  = "NOT_LEADER"
	notLeaderDomain  = "shoal.dispatcher"
	leaderAddrMetKey = "leader_addr"
)

// Stream retry pauses: the first after a failure, doubling up to the
// most.
const (
	minRetry = 50 * time.Millisecond
	maxRetry = 2 * time.Second
)

// errLeaderMoved ends a stream on a manager that is no longer the leader.
var errLeaderMoved = errors.New("the leader moved to another manager")

// maxAssignmentsMessage is the largest assignments message the agent
// takes: a COMPLETE message carries every task of the node.
const maxAssignmentsMessage = 256 << 20

// notLeader returns the leader's address named by a manager's refusal,
// and whether err is such a refusal.
func notLeader(err error) (addr string, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus || st.Code() != codes.Unavailable {
		return "", false
	}
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo && info.Reason == notLeaderReason && info.Domain == notLeaderDomain {
			return info.Metadata[leaderAddrMetKey], true
		}
	}
	return "", false
}

// setLeader records the leader's address and wakes whoever follows it.
func (a *Agent) setLeader(addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.leader == addr {
		return
	}
	a.leader = addr
	close(a.leaderMoved)
	a.leaderMoved = make(chan struct{})
}

// leaderAddr returns the leader's address ("" when unknown) and a channel
// closed when it changes.
func (a *Agent) leaderAddr() (string, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.leader, a.leaderMoved
}

// forgetLeader drops addr as the leader after it failed us.
func (a *Agent) forgetLeader(addr string) {
	a.mu.Lock()
	known := a.leader == addr
	a.mu.Unlock()
	if known {
		a.setLeader("")
	}
}

// target returns where to send a call best served by the leader: the
// leader when known, else the attempt-th manager from the current one
// ("" when none is known).
func (a *Agent) target(attempt int) string {
	if leader, _ := a.leaderAddr(); leader != "" {
		return leader
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.managers) == 0 {
		return ""
	}
	return a.managers[(a.next+attempt)%len(a.managers)]
}

// followAssignments keeps an assignments stream open on the leader until
// ctx ends, handing every message to w. A manager that is not the leader
// names it and the agent moves there at once; other failures move to
// the next manager after a pause that grows while nothing works.
func (a *Agent) followAssignments(ctx context.Context, w *worker) {
	retry := minRetry
	for attempt := 0; ctx.Err() == nil; attempt++ {
		addr := a.target(attempt)
		if addr == "" {
			if !sleep(ctx, retry) {
				return
			}
			continue
		}
		synced, err := a.stream(ctx, addr, w)
		if ctx.Err() != nil {
			return
		}
		if synced {
			retry, attempt = minRetry, -1
		}
		if errors.Is(err, errLeaderMoved) {
			a.cfg.Logger.Debug("assignments: the leader moved", "manager", addr)
			attempt = -1
			continue
		}
		if leader, ok := notLeader(err); ok && leader != "" && leader != addr {
			a.cfg.Logger.Debug("assignments: sent on to the leader", "manager", addr, "leader", leader)
			a.setLeader(leader)
			attempt = -1
			continue // straight to the leader
		}
		a.forgetLeader(addr)
		a.cfg.Logger.Warn("assignments stream broke; trying again", "manager", addr, "err", err, "retry", retry)
		if !sleep(ctx, retry) {
			return
		}
		retry = min(2*retry, maxRetry)
	}
}

// stream follows one assignments stream on addr until it fails, or the
// leader is known to have moved elsewhere. synced reports whether a
// COMPLETE message arrived.
func (a *Agent) stream(ctx context.Context, addr string, w *worker) (synced bool, err error) {
	c, err := a.conn(addr)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Leave a manager that heartbeats say is no longer the leader (a
	// partitioned one may not close the stream itself).
	go func() {
		for {
			leader, moved := a.leaderAddr()
			if leader != "" && leader != addr {
				cancel(errLeaderMoved)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-moved:
			}
		}
	}()
	s, err := api.NewDispatcherClient(c).Assignments(ctx, &api.AssignmentsRequest{NodeId: a.cfg.NodeID},
		grpc.MaxCallRecvMsgSize(maxAssignmentsMessage))
	if err != nil {
		if errors.Is(context.Cause(ctx), errLeaderMoved) {
			err = errLeaderMoved
		}
		return false, err
	}
	for {
		msg, err := s.Recv()
		if err != nil {
			if errors.Is(context.Cause(ctx), errLeaderMoved) {
				err = errLeaderMoved
			}
			return synced, err
		}
		if msg.Type == api.AssignmentsMessage_TYPE_COMPLETE {
			a.cfg.Logger.Debug("assignments: complete list", "manager", addr, "tasks", len(msg.UpdateTasks))
			synced = true
		} else if !synced {
			return false, errors.New("assignments stream began without a COMPLETE message")
		}
		w.apply(msg)
	}
}

// callTimeout bounds one status report call.
const callTimeout = 10 * time.Second

// updateTaskStatus sends one report, preferring the leader and trying
// each manager once (followers forward reports).
func (a *Agent) updateTaskStatus(ctx context.Context, req *api.UpdateTaskStatusRequest) error {
	a.mu.Lock()
	n := len(a.managers) + 1
	a.mu.Unlock()
	var lastErr error = errors.New("no manager address known")
	for attempt := 0; attempt < n; attempt++ {
		addr := a.target(attempt)
		if addr == "" {
			continue
		}
		c, err := a.conn(addr)
		if err != nil {
			lastErr = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err = api.NewDispatcherClient(c).UpdateTaskStatus(cctx, req)
		cancel()
		if err == nil {
			return nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if api.IsNodeRemoved(err) {
			return err // the node was removed: heartbeats will say so
		}
		if leader, ok := notLeader(err); ok && leader != "" && leader != addr {
			a.setLeader(leader)
		} else {
			a.forgetLeader(addr)
		}
	}
	return lastErr
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
