package containerd

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/shoalhq/shoal/agent/runtime"
	"github.com/shoalhq/shoal/proto/api"
)

// Labels the executor puts on every container it creates, beside the
// task spec's own labels.
const (
	LabelTaskID    = "com.shoal.task.id"
	LabelServiceID = "com.shoal.service.id"
	LabelNodeID    = "com.shoal.node.id"
)

// cfsPeriod is the CPU CFS period (µs) of CPU limits.
const cfsPeriod = 100000

// specOpts returns the OCI spec options of task t's container, whose
// image is img and network namespace netnsPath ("" for the host's own,
// with the host's /etc/hosts and /etc/resolv.conf):
//
//   - the image's config (entrypoint, cmd, env, working dir, user);
//   - Command replaces the entrypoint and drops the image's cmd, Args
//     replaces the cmd;
//   - SHOAL_TASK_ID, SHOAL_SERVICE_ID and SHOAL_NODE_ID, then Env, added
//     to the environment (a key set twice keeps the last value);
//   - Dir, User (name, uid, uid:gid...), Hostname (default: the first 12
//     characters of the task ID), ReadOnly root filesystem;
//   - limits: memory, CPU (CFS quota over a 100 ms period), pids;
//   - mounts (see ociMounts), capabilities added and dropped, sysctls,
//     ulimits.
func specOpts(ctx context.Context, t *api.Task, img client.Image, netnsPath string, mounts []specs.Mount) ([]oci.SpecOpts, error) {
	cs := t.GetSpec().GetContainer()
	opts := []oci.SpecOpts{oci.WithImageConfig(img)}
	if netnsPath == "" {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostHostsFile, oci.WithHostResolvconf)
	} else {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netnsPath}))
	}
	if len(cs.GetCommand()) > 0 || len(cs.GetArgs()) > 0 {
		ic, err := img.Spec(ctx)
		if err != nil {
			return nil, fmt.Errorf("image config of %s: %w", img.Name(), err)
		}
		entry, cmd := ic.Config.Entrypoint, ic.Config.Cmd
		if len(cs.GetCommand()) > 0 {
			entry, cmd = cs.GetCommand(), nil
		}
		if len(cs.GetArgs()) > 0 {
			cmd = cs.GetArgs()
		}
		args := append(slices.Clone(entry), cmd...)
		if len(args) == 0 {
			return nil, fmt.Errorf("%w: no command to run: the image has none and the task gives none", runtime.ErrTaskRejected)
		}
		opts = append(opts, oci.WithProcessArgs(args...))
	}
	env := []string{"SHOAL_TASK_ID=" + t.GetId()}
	if t.GetServiceId() != "" {
		env = append(env, "SHOAL_SERVICE_ID="+t.GetServiceId())
	}
	if t.GetNodeId() != "" {
		env = append(env, "SHOAL_NODE_ID="+t.GetNodeId())
	}
	opts = append(opts, oci.WithEnv(append(env, cs.GetEnv()...)))
	if cs.GetDir() != "" {
		opts = append(opts, oci.WithProcessCwd(cs.GetDir()))
	}
	if cs.GetUser() != "" {
		opts = append(opts, oci.WithUser(cs.GetUser()))
	}
	if g := cs.GetGroups(); len(g) > 0 {
		// Names are looked up in the image's /etc/group; gids pass as is.
		opts = append(opts, oci.WithAppendAdditionalGroups(g...))
	}
	host := cs.GetHostname()
	if host == "" {
		host = t.GetId()[:min(12, len(t.GetId()))]
	}
	opts = append(opts, oci.WithHostname(host))
	if cs.GetReadOnly() {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if l := t.GetSpec().GetResources().GetLimits(); l != nil {
		if l.GetMemoryBytes() > 0 {
			opts = append(opts, oci.WithMemoryLimit(uint64(l.GetMemoryBytes())))
		}
		if l.GetNanoCpus() > 0 {
			opts = append(opts, oci.WithCPUCFS(max(1000, l.GetNanoCpus()*cfsPeriod/1e9), cfsPeriod))
		}
		if l.GetPids() > 0 {
			opts = append(opts, oci.WithPidsLimit(l.GetPids()))
		}
	}
	if len(mounts) > 0 {
		opts = append(opts, oci.WithMounts(mounts))
	}
	if caps := capNames(cs.GetCapAdd()); len(caps) > 0 {
		opts = append(opts, oci.WithAddedCapabilities(caps))
	}
	if caps := capNames(cs.GetCapDrop()); len(caps) > 0 {
		opts = append(opts, oci.WithDroppedCapabilities(caps))
	}
	if len(cs.GetSysctls()) > 0 {
		opts = append(opts, withSysctls(cs.GetSysctls()))
	}
	if len(cs.GetUlimits()) > 0 {
		opts = append(opts, withUlimits(cs.GetUlimits()))
	}
	return opts, nil
}

// containerLabels are the container's labels: the spec's, then the
// executor's own (which win).
func containerLabels(t *api.Task) map[string]string {
	l := maps.Clone(t.GetSpec().GetContainer().GetLabels())
	if l == nil {
		l = map[string]string{}
	}
	l[LabelTaskID] = t.GetId()
	if t.GetServiceId() != "" {
		l[LabelServiceID] = t.GetServiceId()
	}
	if t.GetNodeId() != "" {
		l[LabelNodeID] = t.GetNodeId()
	}
	return l
}

// capNames writes capability names as the OCI spec does ("CAP_NET_ADMIN").
func capNames(caps []string) []string {
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		c = strings.ToUpper(c)
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out = append(out, c)
	}
	return out
}

// withSysctls sets the container's sysctls.
func withSysctls(sysctls map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		maps.Copy(s.Linux.Sysctl, sysctls)
		return nil
	}
}

// withUlimits sets the process's rlimits ("nofile" → RLIMIT_NOFILE).
func withUlimits(ulimits []*api.Ulimit) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		for _, u := range ulimits {
			typ := "RLIMIT_" + strings.ToUpper(u.GetName())
			s.Process.Rlimits = slices.DeleteFunc(s.Process.Rlimits, func(r specs.POSIXRlimit) bool { return r.Type == typ })
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: typ, Soft: uint64(u.GetSoft()), Hard: uint64(u.GetHard())})
		}
		return nil
	}
}
