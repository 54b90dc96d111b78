package daemon

import (
	"errors"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	execrt "github.com/shoalhq/shoal/agent/runtime"
	ctrd "github.com/shoalhq/shoal/agent/runtime/containerd"
	"github.com/shoalhq/shoal/proto/api"
)

// maxImageArchive bounds the archive LoadImage accepts (4 GiB).
const maxImageArchive int64 = 4 << 30

// containerdExecutor returns the node's containerd executor:
// FailedPrecondition on a simulated-runtime node, Unavailable while the
// agent has not connected to containerd yet.
func (d *Daemon) containerdExecutor(what string) (*ctrd.Executor, error) {
	if d.cfg.Runtime != "containerd" {
		return nil, status.Errorf(codes.FailedPrecondition, "%s needs --runtime containerd: this node runs the %s runtime", what, d.cfg.Runtime)
	}
	e := d.ctrdExec.Load()
	if e == nil {
		return nil, status.Errorf(codes.Unavailable, "%s: the node has not connected to containerd yet; retry shortly", what)
	}
	return e, nil
}

// LoadImage receives an image archive (OCI layout or docker-save tar) in
// chunks, spools it to a temporary file under the data directory (at most
// 4 GiB: more is InvalidArgument), then imports and unpacks it into the
// node's containerd namespace and answers the image names. Unix socket
// only; FailedPrecondition on a simulated-runtime node; an archive
// containerd cannot import is InvalidArgument.
func (s *localNode) LoadImage(stream api.LocalNode_LoadImageServer) error {
	ctx := stream.Context()
	e, err := s.d.containerdExecutor("image load")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.d.cfg.DataDir, "image-load-*.tar")
	if err != nil {
		return status.Errorf(codes.Internal, "image load: temporary file: %v", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	var n int64
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		n += int64(len(chunk.GetData()))
		if n > maxImageArchive {
			return status.Errorf(codes.InvalidArgument, "image load: the archive is larger than %d bytes", maxImageArchive)
		}
		if _, err := tmp.Write(chunk.GetData()); err != nil {
			return status.Errorf(codes.Internal, "image load: writing %s: %v", filepath.Base(tmp.Name()), err)
		}
	}
	if n == 0 {
		return status.Error(codes.InvalidArgument, "image load: the archive is empty")
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return status.Errorf(codes.Internal, "image load: %v", err)
	}
	names, err := e.ImportImage(ctx, tmp)
	if err != nil {
		if errors.Is(err, execrt.ErrTemporary) {
			return status.Errorf(codes.Unavailable, "image load: %v", err)
		}
		return status.Errorf(codes.InvalidArgument, "image load: %v", err)
	}
	s.d.log.Info("loaded images", "images", names, "bytes", n)
	return stream.SendAndClose(&api.LoadImageResponse{Images: names})
}
