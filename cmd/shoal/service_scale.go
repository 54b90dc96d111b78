package main

// `shoal service scale NAME=N...`: set the replicas of replicated
// services and the completions of replicated jobs, then wait for them to
// converge.

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// scaleTarget is one SERVICE=REPLICAS argument.
type scaleTarget struct {
	service  string
	replicas uint64
}

// parseScaleArgs reads SERVICE=REPLICAS arguments, all of them before
// anything is sent; an error names the argument and what is wrong.
func parseScaleArgs(args []string) ([]scaleTarget, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("shoal service scale needs at least one SERVICE=REPLICAS (example: web=3)")
	}
	targets := make([]scaleTarget, 0, len(args))
	seen := map[string]string{}
	for _, arg := range args {
		name, n, ok := strings.Cut(arg, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("invalid argument %q: expected SERVICE=REPLICAS (example: %s=3)", arg, orExample(arg))
		case name == "":
			return nil, fmt.Errorf("invalid argument %q: no service before \"=\" (expected SERVICE=REPLICAS, example: web=3)", arg)
		case n == "":
			return nil, fmt.Errorf("invalid argument %q: no number of replicas after \"=\" (example: %s=3)", arg, name)
		}
		replicas, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid argument %q: the number of replicas must be a whole number, 0 or more (example: %s=3)", arg, name)
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("invalid argument %q: service %s is already scaled by %q", arg, name, prev)
		}
		seen[name] = arg
		targets = append(targets, scaleTarget{service: name, replicas: replicas})
	}
	return targets, nil
}

// orExample is the service name to show in an example: the argument
// itself when it looks like a name, else "web".
func orExample(arg string) string {
	if arg == "" || strings.ContainsAny(arg, " =") {
		return "web"
	}
	if _, err := strconv.ParseUint(arg, 10, 64); err == nil {
		return "web"
	}
	return arg
}

// setReplicas sets the scale of a replicated service (replicas) or a
// replicated job (total completions, lowering max concurrent to it when
// it was more); name is the service as the user named it, for the error
// that refuses other modes. It reports whether the spec changed.
func setReplicas(name string, spec *api.ServiceSpec, n uint64) (bool, error) {
	switch m := spec.GetMode().GetMode().(type) {
	case *api.ServiceMode_Replicated:
		if m.Replicated == nil {
			m.Replicated = &api.Replicated{}
		}
		if m.Replicated.Replicas == n {
			return false, nil
		}
		m.Replicated.Replicas = n
		return true, nil
	case *api.ServiceMode_ReplicatedJob:
		if n == 0 {
			return false, fmt.Errorf("cannot scale %s to 0: it is a replicated job, which needs at least 1 completion", name)
		}
		if m.ReplicatedJob == nil {
			m.ReplicatedJob = &api.ReplicatedJob{}
		}
		j := m.ReplicatedJob
		if j.TotalCompletions == n && j.MaxConcurrent <= n {
			return false, nil
		}
		j.TotalCompletions = n
		j.MaxConcurrent = min(j.MaxConcurrent, n)
		return true, nil
	case *api.ServiceMode_Global:
		return false, fmt.Errorf("cannot scale %s: it is a global service, which runs one task on every eligible node (scale applies to replicated services and replicated jobs)", name)
	case *api.ServiceMode_GlobalJob:
		return false, fmt.Errorf("cannot scale %s: it is a global job, which runs one task on every eligible node (scale applies to replicated services and replicated jobs)", name)
	}
	return false, fmt.Errorf("cannot scale %s: its mode is unknown to this shoal (scale applies to replicated services and replicated jobs)", name)
}

// scaleService reads the service, sets its scale on a copy of its spec
// and writes it with the version read, reading again and retrying when
// the service changed in between. Nothing is written when the service
// already has that scale. It returns the service's ID.
func scaleService(ctx context.Context, c *client, t scaleTarget) (string, error) {
	var id string
	err := retryOutOfSequence(ctx, func() error {
		s, err := getService(ctx, c, t.service)
		if err != nil {
			return err
		}
		id = s.GetId()
		spec, _ := proto.Clone(s.GetSpec()).(*api.ServiceSpec)
		if spec == nil {
			spec = &api.ServiceSpec{}
		}
		changed, err := setReplicas(t.service, spec, t.replicas)
		if err != nil || !changed {
			return err
		}
		_, err = write(ctx, c, c.api.UpdateService, &api.UpdateServiceRequest{
			ServiceId: id,
			Version:   s.GetMeta().GetVersion(),
			Spec:      spec,
		})
		return err
	})
	return id, err
}

// newServiceScaleCmd returns `shoal service scale`.
func newServiceScaleCmd(g *globalOptions) *cobra.Command {
	var wait waitOptions
	cmd := &cobra.Command{
		Use:   "scale [flags] SERVICE=REPLICAS...",
		Short: "Set the number of tasks of replicated services and replicated jobs",
		Long: "Set the number of tasks of each replicated service (its replicas) or replicated job (its total\n" +
			"completions; its max concurrent is lowered to match if it was more). Global services cannot be\n" +
			"scaled: they run one task on every eligible node.\n\n" + waitHelp,
		Example: "  shoal service scale web=6\n  shoal service scale -d web=6 api=3",
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, err := parseScaleArgs(args)
			if err != nil {
				return err
			}
			if err := wait.check(); err != nil {
				return err
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var (
				errs   []error
				scaled []waitTarget
			)
			for _, t := range targets {
				id, err := scaleService(ctx, c, t)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s scaled to %d\n", t.service, t.replicas)
				scaled = append(scaled, waitTarget{id: id, name: t.service})
			}
			errs = append(errs, waitForServices(cmd, c, &wait, cmd.OutOrStdout(), scaled)...)
			return joinErrors(errs)
		},
	}
	wait.addFlags(cmd.Flags())
	return cmd
}
