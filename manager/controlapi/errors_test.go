package controlapi

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/store"
)

func TestToStatus(t *testing.T) {
	if ToStatus(nil) != nil {
		t.Fatal("ToStatus(nil) != nil")
	}
	cases := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{fmt.Errorf("get x: %w", store.ErrNotFound), codes.NotFound, "get x"},
		{fmt.Errorf("create: %w", store.ErrNameConflict), codes.AlreadyExists, "name is already in use"},
		{store.ErrExist, codes.AlreadyExists, ""},
		{fmt.Errorf("service a: %w (v1)", store.ErrSequenceConflict), codes.FailedPrecondition,
			"update out of sequence: the object changed since you read it; read it again and retry"},
		{store.ErrTaskStateBackwards, codes.FailedPrecondition, ""},
		{store.ErrInvalidObject, codes.Internal, ""},
		{fieldErr("task.container.image", "required"), codes.InvalidArgument, "invalid spec: task.container.image: required"},
		{status.Error(codes.PermissionDenied, "no"), codes.PermissionDenied, "no"},
		{fmt.Errorf("outer: %w", status.Error(codes.NotFound, "inner")), codes.NotFound, "outer: inner"},
	}
	for _, tc := range cases {
		got := ToStatus(tc.err)
		st, ok := status.FromError(got)
		if !ok {
			t.Errorf("ToStatus(%v) = %v: not a status", tc.err, got)
			continue
		}
		if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
			t.Errorf("ToStatus(%v) = %v %q, want %v containing %q", tc.err, st.Code(), st.Message(), tc.code, tc.msg)
		}
	}

	// Errors it does not know pass through unchanged, so the interceptor
	// can map them (no leader → Unavailable).
	noLeader := errors.New("raft: no leader")
	wrapped := fmt.Errorf("create service web: %w", noLeader)
	if got := ToStatus(wrapped); got != wrapped || !errors.Is(got, noLeader) {
		t.Fatalf("ToStatus(unknown) = %v, want it unchanged", got)
	}
	if _, ok := status.FromError(ToStatus(wrapped)); ok {
		t.Fatal("unknown error became a status")
	}
	// A status passes through as the same value.
	st := status.Error(codes.Unavailable, "x")
	if ToStatus(st) != st {
		t.Fatal("status not passed through")
	}
}
