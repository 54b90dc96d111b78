package controlapi

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/store"
)

// retryAdvice completes the message of a FailedPrecondition caused by a
// stale version.
const retryAdvice = "the object changed since you read it; read it again and retry"

// FieldError is a spec or request field that fails validation. Field is
// the path of the field as written in the .proto files (for example
// "task.container.stop_grace_period" or "endpoint.ports[1].target_port");
// Problem says what is wrong and what to change. ToStatus maps it to
// codes.InvalidArgument. FieldError carries no gRPC code itself so that
// the validator can be used away from the API edge.
type FieldError struct {
	Field   string
	Problem string
}

// Error renders "invalid spec: FIELD: PROBLEM".
func (e *FieldError) Error() string {
	return "invalid spec: " + e.Field + ": " + e.Problem
}

// fieldErr builds a *FieldError with a formatted problem.
func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// ToStatus maps an error to the gRPC status the API returns:
//
//   - nil stays nil; an error that is already a gRPC status is returned
//     as is (a status wrapped in other errors is returned with the whole
//     message);
//   - *FieldError → InvalidArgument;
//   - store.ErrNotFound → NotFound;
//   - store.ErrNameConflict, store.ErrExist → AlreadyExists;
//   - store.ErrSequenceConflict → FailedPrecondition, with a message that
//     says to read the object again and retry;
//   - store.ErrTaskStateBackwards → FailedPrecondition;
//   - store.ErrInvalidObject → Internal (a bug in the caller of the store).
//
// Any other error (a lost leader, no quorum, a cancelled context) is
// returned unchanged, so that the server's interceptor can map it; for
// such errors the write may or may not have been applied.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return err
	}
	var inner interface {
		error
		GRPCStatus() *status.Status
	}
	if errors.As(err, &inner) && inner.GRPCStatus() != nil {
		// Keep the outer context, without the inner "rpc error: code = ...".
		st := inner.GRPCStatus()
		msg := strings.Replace(err.Error(), inner.Error(), st.Message(), 1)
		return status.Error(st.Code(), msg)
	}
	var fe *FieldError
	switch {
	case errors.As(err, &fe):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrNameConflict), errors.Is(err, store.ErrExist):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, store.ErrSequenceConflict):
		sentinel := store.ErrSequenceConflict.Error()
		msg := err.Error()
		if strings.Contains(msg, sentinel) {
			msg = strings.Replace(msg, sentinel, sentinel+": "+retryAdvice, 1)
		} else {
			msg = sentinel + ": " + retryAdvice + " (" + msg + ")"
		}
		return status.Error(codes.FailedPrecondition, msg)
	case errors.Is(err, store.ErrTaskStateBackwards):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, store.ErrInvalidObject):
		return status.Error(codes.Internal, err.Error())
	}
	return err
}

// invalidf is an InvalidArgument status for a malformed request.
func invalidf(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// notFoundf is a NotFound status.
func notFoundf(format string, args ...any) error {
	return status.Errorf(codes.NotFound, format, args...)
}

// resourceExhaustedf is a ResourceExhausted status: a pool has nothing
// left.
func resourceExhaustedf(format string, args ...any) error {
	return status.Errorf(codes.ResourceExhausted, format, args...)
}

// alreadyExistsf is an AlreadyExists status: the request claims what
// another object holds.
func alreadyExistsf(format string, args ...any) error {
	return status.Errorf(codes.AlreadyExists, format, args...)
}

// preconditionf is a FailedPrecondition status: the request is well
// formed but the cluster's state refuses it.
func preconditionf(format string, args ...any) error {
	return status.Errorf(codes.FailedPrecondition, format, args...)
}

// checkVersion fails with store.ErrSequenceConflict, naming the object,
// when the version a request carries is not the stored one.
func checkVersion(kind, id string, stored, requested uint64) error {
	if stored != requested {
		return fmt.Errorf("%s %s: %w (request has version %d, current is %d)",
			kind, id, store.ErrSequenceConflict, requested, stored)
	}
	return nil
}

// writeErr is the error a handler returns when a store.Update failed: a
// gRPC status built inside the transaction keeps its code and message;
// any other error is wrapped with the operation's name (%w) and passed
// through ToStatus, which leaves errors it does not know unconverted.
func writeErr(op string, err error) error {
	if _, ok := status.FromError(err); ok {
		return ToStatus(err)
	}
	return ToStatus(fmt.Errorf("%s: %w", op, err))
}
