package main

// `shoal service ps`: the tasks of services.

import (
	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/proto/api"
)

// newServicePsCmd returns `shoal service ps`.
func newServicePsCmd(g *globalOptions) *cobra.Command {
	var o psOptions
	cmd := &cobra.Command{
		Use:   "ps [flags] SERVICE...",
		Short: "List the tasks of services",
		Long: "List the tasks of services: each slot's current task, with the older tasks of the same slot\n" +
			"(its history) indented under it as \" \\_ NAME\", newest first. A pending task's ERROR is the\n" +
			"scheduler's reason for not placing it. Use --filter desired-state=running to leave out the history.",
		Args: requireArgs("shoal service ps", "SERVICE"),
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
				errs  []error
				ids   []string
				names = map[string]string{}
			)
			for _, name := range args {
				s, err := getService(ctx, c, name)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if _, dup := names[s.GetId()]; !dup {
					ids = append(ids, s.GetId())
				}
				names[s.GetId()] = s.GetSpec().GetAnnotations().GetName()
			}
			if len(ids) > 0 {
				req := &api.ListTasksRequest{ServiceIds: ids, DesiredStates: states}
				if err := listTasks(ctx, c, cmd.OutOrStdout(), req, names, &o); err != nil {
					return err
				}
			}
			return joinErrors(errs)
		},
	}
	o.addFlags(cmd)
	return cmd
}
