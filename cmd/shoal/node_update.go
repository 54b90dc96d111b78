package main

// Changing a node: `shoal node update`, `promote` and `demote`. Each reads
// the node, edits a copy of its spec and writes it with the version it
// read, retrying when another write came first.

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// nodeChange is what `shoal node update` was asked to change.
type nodeChange struct {
	// availability is nil when --availability was not given.
	availability *api.NodeAvailability
	// labelAdd holds KEY=VALUE (or KEY) in the order given.
	labelAdd []string
	labelRm  []string
}

// parseNodeChange checks the flags of `shoal node update` before anything
// is sent.
func parseNodeChange(availabilityGiven bool, availability string, labelAdd, labelRm []string) (*nodeChange, error) {
	ch := &nodeChange{labelRm: labelRm}
	if availabilityGiven {
		a, err := parseAvailability(availability)
		if err != nil {
			return nil, err
		}
		ch.availability = &a
	}
	for _, kv := range labelAdd {
		if k, _, _ := strings.Cut(kv, "="); k == "" {
			return nil, fmt.Errorf("invalid argument %q for --label-add: expected KEY=VALUE or KEY", kv)
		}
		ch.labelAdd = append(ch.labelAdd, kv)
	}
	for _, k := range labelRm {
		if k == "" || strings.Contains(k, "=") {
			return nil, fmt.Errorf("invalid argument %q for --label-rm: expected a label KEY", k)
		}
	}
	if ch.availability == nil && len(ch.labelAdd) == 0 && len(ch.labelRm) == 0 {
		return nil, fmt.Errorf("nothing to change: give --availability, --label-add or --label-rm")
	}
	return ch, nil
}

// parseAvailability reads active, pause or drain.
func parseAvailability(s string) (api.NodeAvailability, error) {
	switch s {
	case "active":
		return api.NodeAvailability_NODE_AVAILABILITY_ACTIVE, nil
	case "pause":
		return api.NodeAvailability_NODE_AVAILABILITY_PAUSE, nil
	case "drain":
		return api.NodeAvailability_NODE_AVAILABILITY_DRAIN, nil
	}
	return 0, fmt.Errorf("invalid argument %q for --availability: valid values are active, pause, drain", s)
}

// apply makes the change to spec.
func (ch *nodeChange) apply(spec *api.NodeSpec) error {
	if ch.availability != nil {
		spec.Availability = *ch.availability
	}
	if spec.Annotations == nil {
		spec.Annotations = &api.Annotations{}
	}
	for _, k := range ch.labelRm {
		if _, ok := spec.Annotations.Labels[k]; !ok {
			return fmt.Errorf("invalid argument %q for --label-rm: the node has no label %q", k, k)
		}
		delete(spec.Annotations.Labels, k)
	}
	for _, kv := range ch.labelAdd {
		k, v, _ := strings.Cut(kv, "=")
		if spec.Annotations.Labels == nil {
			spec.Annotations.Labels = map[string]string{}
		}
		spec.Annotations.Labels[k] = v
	}
	return nil
}

// newNodeUpdateCmd returns `shoal node update`.
func newNodeUpdateCmd(g *globalOptions) *cobra.Command {
	var (
		availability      string
		labelAdd, labelRm []string
	)
	cmd := &cobra.Command{
		Use:   "update [flags] NODE",
		Short: "Change a node's availability or labels",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("shoal node update needs exactly one NODE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ch, err := parseNodeChange(cmd.Flags().Changed("availability"), availability, labelAdd, labelRm)
			if err != nil {
				return err
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = updateNode(ctx, c, args[0], func(spec *api.NodeSpec) (bool, error) {
				return true, ch.apply(spec)
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), args[0])
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&availability, "availability", "", "whether the node takes tasks: `active`, pause (keeps its tasks, takes no new ones) or drain (its tasks move elsewhere)")
	f.StringArrayVar(&labelAdd, "label-add", nil, "add or change a node label, KEY=VALUE (repeatable)")
	f.StringArrayVar(&labelRm, "label-rm", nil, "remove the node label KEY (repeatable)")
	return cmd
}

// newNodePromoteCmd returns `shoal node promote`.
func newNodePromoteCmd(g *globalOptions) *cobra.Command {
	return newRoleCmd(g, "promote", api.NodeRole_NODE_ROLE_MANAGER,
		"Make nodes managers",
		"Node %s promoted to a manager in the cluster.",
		"Node %s is already a manager.")
}

// newNodeDemoteCmd returns `shoal node demote`.
func newNodeDemoteCmd(g *globalOptions) *cobra.Command {
	return newRoleCmd(g, "demote", api.NodeRole_NODE_ROLE_WORKER,
		"Make managers workers",
		"Manager %s demoted in the cluster.",
		"Node %s is already a worker.")
}

// newRoleCmd returns a command that sets the desired role of each named
// node, printing done or already for each.
func newRoleCmd(g *globalOptions, verb string, role api.NodeRole, short, done, already string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NODE...",
		Short: short,
		Args:  requireArgs("shoal node "+verb, "NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var errs []error
			for _, name := range args {
				changed, err := updateNode(ctx, c, name, func(spec *api.NodeSpec) (bool, error) {
					if spec.DesiredRole == role {
						return false, nil
					}
					spec.DesiredRole = role
					return true, nil
				})
				switch {
				case err != nil:
					errs = append(errs, err)
				case changed:
					fmt.Fprintf(cmd.OutOrStdout(), done+"\n", name)
				default:
					fmt.Fprintf(cmd.OutOrStdout(), already+"\n", name)
				}
			}
			return joinErrors(errs)
		},
	}
}

// updateNode reads the named node, lets change edit a copy of its spec
// and writes it with the version read; it reads and tries again when the
// node changed in between. change returns false when there is nothing to
// write, and updateNode then reports false.
func updateNode(ctx context.Context, c *client, name string, change func(*api.NodeSpec) (bool, error)) (bool, error) {
	wrote := false
	err := retryOutOfSequence(ctx, func() error {
		n, err := getNode(ctx, c, name)
		if err != nil {
			return err
		}
		spec := proto.Clone(n.GetSpec()).(*api.NodeSpec)
		if spec == nil {
			spec = &api.NodeSpec{}
		}
		ok, err := change(spec)
		if err != nil || !ok {
			return err
		}
		_, err = write(ctx, c, c.api.UpdateNode, &api.UpdateNodeRequest{
			NodeId:  n.GetId(),
			Version: n.GetMeta().GetVersion(),
			Spec:    spec,
		})
		wrote = err == nil
		return err
	})
	return wrote, err
}
