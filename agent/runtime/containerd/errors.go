package containerd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/shoalhq/shoal/agent/runtime"
)

// ErrOOMKilled is wrapped by the error Wait returns (with exit code 137)
// when the task's process was killed for exceeding its memory limit.
var ErrOOMKilled = errors.New("the task was killed for exceeding its memory limit")

// classify wraps err from the containerd client: runtime.ErrTemporary
// when the daemon is unreachable or busy, runtime.ErrContainerGone when
// what was asked for does not exist; otherwise err as it is. what names
// the call.
func classify(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", what, err)
	case errdefs.IsUnavailable(err) || errdefs.IsDeadlineExceeded(err) || errdefs.IsAborted(err):
		return fmt.Errorf("%w: %s: %v", runtime.ErrTemporary, what, err)
	case errdefs.IsNotFound(err):
		return fmt.Errorf("%w: %s: %v", runtime.ErrContainerGone, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// oomKilled reports whether the memory cgroup at cgroupsPath (the OCI
// spec's Linux.CgroupsPath, "/NAMESPACE/ID" by default) recorded an OOM
// kill: "oom_kill N" in memory.oom_control (cgroups v1) or memory.events
// (cgroups v2). It answers false when it cannot tell.
func oomKilled(cgroupsPath string) bool {
	if cgroupsPath == "" || strings.Contains(cgroupsPath, ":") { // systemd slice notation
		return false
	}
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", cgroupsPath, "memory.oom_control"),
		filepath.Join("/sys/fs/cgroup", cgroupsPath, "memory.events"),
	} {
		if n, ok := readCounter(f, "oom_kill"); ok {
			return n > 0
		}
	}
	return false
}

// readCounter reads the value of "key N" in a cgroup file.
func readCounter(path, key string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 2 && fields[0] == key {
			n, err := strconv.ParseInt(fields[1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
