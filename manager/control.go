package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/raft"
)

// StaleHeader is the response header set on a read served from local state
// because no leader could confirm it is current.
const StaleHeader = "shoal-stale"

// readBarrierTimeout bounds how long a read waits for the leader before it
// is served from local state, marked stale.
const readBarrierTimeout = 2 * time.Second

// isRead reports whether a Control method only reads.
func isRead(method string) bool {
	return strings.HasPrefix(method, "Get") || strings.HasPrefix(method, "List")
}

// AroundControl makes every Control call current: it first waits until
// this manager has applied every write acknowledged before the call (the
// leader confirms its leadership; a follower catches up to the leader's
// read index). When no leader answers, a read is served from local state
// with the StaleHeader set, and a write fails with Unavailable at once
// rather than hanging. Errors that reach the edge become gRPC statuses.
func (m *Manager) AroundControl(ctx context.Context, method string, call func(context.Context) (any, error)) (any, error) {
	rctx, cancel := context.WithTimeout(ctx, readBarrierTimeout)
	err := m.raft.ConsistentRead(rctx)
	cancel()
	if err != nil {
		if !isRead(method) {
			if !errors.Is(err, raft.ErrNoLeader) && !errors.Is(err, raft.ErrNotLeader) {
				err = fmt.Errorf("%w: %v", raft.ErrNoLeader, err)
			}
			return nil, edgeError(err)
		}
		msg := fmt.Sprintf("no manager leader could be reached (%v): this answer comes from %s's local copy and may be stale", err, m.cfg.NodeID)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		_ = grpc.SetHeader(ctx, metadata.Pairs(StaleHeader, msg))
	}
	resp, err := call(ctx)
	if err != nil {
		if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
			return nil, err
		}
		return nil, edgeError(err)
	}
	return resp, nil
}
