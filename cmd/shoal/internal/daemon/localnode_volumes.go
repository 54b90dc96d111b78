package daemon

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	execrt "github.com/shoalhq/shoal/agent/runtime"
	ctrd "github.com/shoalhq/shoal/agent/runtime/containerd"
	"github.com/shoalhq/shoal/proto/api"
)

// ListVolumes answers this node's named volumes with their sizes and the
// tasks that mount them. Unix socket only; FailedPrecondition on a
// simulated-runtime node.
func (s *localNode) ListVolumes(ctx context.Context, _ *api.ListVolumesRequest) (*api.ListVolumesResponse, error) {
	e, err := s.d.containerdExecutor("volume ls")
	if err != nil {
		return nil, err
	}
	vols, err := e.ListVolumes(ctx)
	if err != nil {
		return nil, volumeStatus(err)
	}
	resp := &api.ListVolumesResponse{}
	for _, v := range vols {
		resp.Volumes = append(resp.Volumes, &api.Volume{Name: v.Name, Path: v.Path, SizeBytes: v.SizeBytes, TaskIds: v.TaskIDs})
	}
	return resp, nil
}

// RemoveVolume removes a named volume of this node: NotFound when there
// is none, FailedPrecondition while a task mounts it (unless force).
// Unix socket only; FailedPrecondition on a simulated-runtime node.
func (s *localNode) RemoveVolume(ctx context.Context, req *api.RemoveVolumeRequest) (*api.RemoveVolumeResponse, error) {
	e, err := s.d.containerdExecutor("volume rm")
	if err != nil {
		return nil, err
	}
	if err := e.RemoveVolume(ctx, req.GetName(), req.GetForce()); err != nil {
		return nil, volumeStatus(err)
	}
	return &api.RemoveVolumeResponse{}, nil
}

// volumeStatus maps the executor's volume errors to gRPC codes.
func volumeStatus(err error) error {
	switch {
	case errors.Is(err, ctrd.ErrVolumeNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ctrd.ErrVolumeInUse):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, execrt.ErrTemporary):
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
