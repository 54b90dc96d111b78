package main

// `shoal node ps`: the tasks placed on nodes.

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/proto/api"
)

// newNodePsCmd returns `shoal node ps`.
func newNodePsCmd(g *globalOptions) *cobra.Command {
	var o psOptions
	cmd := &cobra.Command{
		Use:   "ps [flags] [NODE...]",
		Short: "List the tasks on nodes (by default the node that answers)",
		Long: "List the tasks placed on nodes, named by ID, ID prefix or hostname; without a NODE, the tasks\n" +
			"of the node whose daemon answers. Older tasks of a slot are indented under its current task.",
		RunE: func(cmd *cobra.Command, args []string) error {
			states, err := o.desiredStates()
			if err != nil {
				return err
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var (
				errs []error
				ids  []string
				seen = map[string]bool{}
			)
			if len(args) == 0 {
				info, err := read(ctx, c, c.api.GetClusterInfo, &api.GetClusterInfoRequest{})
				if err != nil {
					return err
				}
				if info.GetNodeId() == "" {
					return fmt.Errorf("the daemon at %s did not say which node it is: name the NODE (see shoal node ls)", c.ep)
				}
				ids = append(ids, info.GetNodeId())
			}
			for _, name := range args {
				n, err := getNode(ctx, c, name)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if !seen[n.GetId()] {
					seen[n.GetId()] = true
					ids = append(ids, n.GetId())
				}
			}
			if len(ids) > 0 {
				req := &api.ListTasksRequest{NodeIds: ids, DesiredStates: states}
				if err := listTasks(ctx, c, cmd.OutOrStdout(), req, nil, &o); err != nil {
					return err
				}
			}
			return joinErrors(errs)
		},
	}
	o.addFlags(cmd)
	return cmd
}
