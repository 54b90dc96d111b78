package containerd

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/proto/api"
)

// volumeName is what a named volume may be called (Docker's rule).
var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// checkMounts validates the task's mounts before anything is created:
// targets must be absolute, volume names valid, and bind sources must
// exist on this node. A bad mount rejects the task.
func checkMounts(ms []*api.Mount) error {
	for _, m := range ms {
		if !path.IsAbs(m.GetTarget()) {
			return fmt.Errorf("%w: mount target %q is not an absolute path", runtime.ErrTaskRejected, m.GetTarget())
		}
		switch m.GetType() {
		case api.Mount_TYPE_BIND:
			src := m.GetSource()
			if !filepath.IsAbs(src) {
				return fmt.Errorf("%w: bind mount source %q is not an absolute path", runtime.ErrTaskRejected, src)
			}
			if _, err := os.Stat(src); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("%w: bind mount source %s does not exist on this node", runtime.ErrTaskRejected, src)
				}
				return fmt.Errorf("%w: bind mount source %s: %v", runtime.ErrTaskRejected, src, err)
			}
		case api.Mount_TYPE_VOLUME:
			if !volumeName.MatchString(m.GetSource()) {
				return fmt.Errorf("%w: invalid volume name %q", runtime.ErrTaskRejected, m.GetSource())
			}
		case api.Mount_TYPE_TMPFS:
		default:
			return fmt.Errorf("%w: unknown mount type %v", runtime.ErrTaskRejected, m.GetType())
		}
	}
	return nil
}

// ociMounts turns the task's mounts into OCI mounts, creating the
// folders of named volumes (StateDir/volumes/NAME) on first use. Volumes
// outlive their tasks. checkMounts must have passed.
func ociMounts(stateDir string, ms []*api.Mount) ([]specs.Mount, error) {
	out := make([]specs.Mount, 0, len(ms))
	for _, m := range ms {
		rw := "rw"
		if m.GetReadOnly() {
			rw = "ro"
		}
		switch m.GetType() {
		case api.Mount_TYPE_TMPFS:
			mode := m.GetTmpfsMode()
			if mode == 0 {
				mode = 0o1777
			}
			opts := []string{"nosuid", "nodev", "noexec", rw, fmt.Sprintf("mode=%o", mode)}
			if n := m.GetTmpfsSizeBytes(); n > 0 {
				opts = append(opts, fmt.Sprintf("size=%d", n))
			}
			out = append(out, specs.Mount{Destination: m.GetTarget(), Type: "tmpfs", Source: "tmpfs", Options: opts})
		case api.Mount_TYPE_BIND:
			out = append(out, specs.Mount{Destination: m.GetTarget(), Type: "bind", Source: m.GetSource(), Options: []string{"rbind", rw}})
		case api.Mount_TYPE_VOLUME:
			dir := filepath.Join(volumesDir(stateDir), m.GetSource())
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("volume %s: %w", m.GetSource(), err)
			}
			out = append(out, specs.Mount{Destination: m.GetTarget(), Type: "bind", Source: dir, Options: []string{"rbind", rw}})
		}
	}
	return out, nil
}

// removeFile removes path; a missing file is not an error.
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
