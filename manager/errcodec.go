package manager

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/raft"
	"github.com/shoalhq/shoal/manager/store"
)

// errDomain marks the ErrorInfo details that carry an internal sentinel
// across a manager-to-manager call.
const errDomain = "shoal.internal"

// sentinels are the errors that keep their identity when a follower
// forwards a request to the leader. The order matters only for lookup.
var sentinels = []struct {
	key  string
	err  error
	code codes.Code
}{
	{"NOT_FOUND", store.ErrNotFound, codes.NotFound},
	{"EXIST", store.ErrExist, codes.AlreadyExists},
	{"NAME_CONFLICT", store.ErrNameConflict, codes.AlreadyExists},
	{"SEQUENCE_CONFLICT", store.ErrSequenceConflict, codes.FailedPrecondition},
	{"TASK_STATE_BACKWARDS", store.ErrTaskStateBackwards, codes.FailedPrecondition},
	{"INVALID_OBJECT", store.ErrInvalidObject, codes.InvalidArgument},
	{"NO_LEADER", raft.ErrNoLeader, codes.Unavailable},
	{"NOT_LEADER", raft.ErrNotLeader, codes.Unavailable},
	{"INDETERMINATE", raft.ErrIndeterminate, codes.Unavailable},
	{"STOPPED", raft.ErrStopped, codes.Unavailable},
}

// encodeInternalError turns an error into a gRPC status that keeps the
// identity of a known sentinel, for manager-to-manager calls.
func encodeInternalError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			st := status.New(s.code, err.Error())
			if d, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: s.key, Domain: errDomain}); derr == nil {
				return d.Err()
			}
			return st.Err()
		}
	}
	return status.Error(codes.Internal, err.Error())
}

// decodeInternalError restores the sentinel carried by a status made by
// encodeInternalError. Transport failures become raft.ErrNoLeader (the
// leader could not be reached).
func decodeInternalError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == errDomain {
			for _, s := range sentinels {
				if s.key == info.Reason {
					return fmt.Errorf("%w (from the leader: %s)", s.err, st.Message())
				}
			}
		}
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return fmt.Errorf("%w: leader unreachable: %s", raft.ErrNoLeader, st.Message())
	}
	return err
}

// edgeError maps an error that reached the API edge to a gRPC status for
// users: Raft outages become Unavailable with advice; statuses pass.
func edgeError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, raft.ErrIndeterminate):
		return status.Errorf(codes.Unavailable, "%v; the change may or may not have been applied: check with ls/inspect before retrying", err)
	case errors.Is(err, raft.ErrNoLeader), errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrStopped):
		return status.Errorf(codes.Unavailable, "%v; nothing was changed. If managers are lost for good, run `shoal daemon --force-new-cluster` on a survivor", err)
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return status.Error(s.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}
