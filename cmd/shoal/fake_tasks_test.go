package main

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// The fake Control server's task and service-update RPCs (the rest of it
// is in client_test.go).

func (f *fakeControl) ListTasks(ctx context.Context, req *api.ListTasksRequest) (*api.ListTasksResponse, error) {
	if err := f.record(ctx, "ListTasks", req, true); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tasks := f.tasks
	if len(f.taskFrames) > 0 {
		tasks = f.taskFrames[0]
		if len(f.taskFrames) > 1 {
			f.taskFrames = f.taskFrames[1:]
		}
	}
	resp := &api.ListTasksResponse{}
	for _, t := range tasks {
		if (len(req.ServiceIds) == 0 || slices.Contains(req.ServiceIds, t.ServiceId)) &&
			(len(req.NodeIds) == 0 || slices.Contains(req.NodeIds, t.NodeId)) &&
			(len(req.DesiredStates) == 0 || slices.Contains(req.DesiredStates, t.DesiredState)) {
			resp.Tasks = append(resp.Tasks, t)
		}
	}
	return resp, nil
}

func (f *fakeControl) ListServices(ctx context.Context, req *api.ListServicesRequest) (*api.ListServicesResponse, error) {
	if err := f.record(ctx, "ListServices", req, true); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return &api.ListServicesResponse{Services: f.services}, nil
}

// UpdateService checks the version like the store does, then replaces
// the spec and raises the version and spec version.
func (f *fakeControl) UpdateService(ctx context.Context, req *api.UpdateServiceRequest) (*api.UpdateServiceResponse, error) {
	if err := f.record(ctx, "UpdateService", req, false); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.services {
		if s.Id != req.ServiceId {
			continue
		}
		if s.Meta.GetVersion() != req.Version {
			return nil, status.Error(codes.FailedPrecondition, "update out of sequence: read again and retry")
		}
		s.Spec = proto.Clone(req.Spec).(*api.ServiceSpec)
		s.Meta.Version++
		s.SpecVersion++
		return &api.UpdateServiceResponse{Service: s}, nil
	}
	return nil, status.Errorf(codes.NotFound, "no service %q", req.ServiceId)
}
