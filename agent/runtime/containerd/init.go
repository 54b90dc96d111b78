package containerd

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/shoalhq/shoal/agent/runtime"
)

// initTarget is where the init binary appears inside a container.
const initTarget = "/sbin/shoal-init"

// initOpts put Config.InitPath in front of the task's command as PID 1
// (`/sbin/shoal-init init -- COMMAND...`), bind-mounted read-only. They
// must come after every option that sets the process's arguments. A node
// without an init binary rejects the task.
func (e *Executor) initOpts() ([]oci.SpecOpts, error) {
	if e.cfg.InitPath == "" {
		return nil, fmt.Errorf("%w: --init needs a statically linked shoal binary on this node (build it with CGO_ENABLED=0)", runtime.ErrTaskRejected)
	}
	return []oci.SpecOpts{
		oci.WithMounts([]specs.Mount{{Destination: initTarget, Type: "bind", Source: e.cfg.InitPath, Options: []string{"rbind", "ro"}}}),
		func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			if s.Process == nil {
				return fmt.Errorf("%w: --init: the container has no process", runtime.ErrTaskRejected)
			}
			s.Process.Args = append([]string{initTarget, "init", "--"}, s.Process.Args...)
			return nil
		},
	}, nil
}
