package main

// `shoal service`: create, list, inspect and remove services. Listing
// their tasks is in service_ps.go, scaling in service_scale.go, updating
// and rolling back in service_update.go, their output in service_logs.go.

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/proto/api"
)

// newServiceCmd returns `shoal service`.
func newServiceCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Manage services",
	}
	cmd.AddCommand(
		newServiceCreateCmd(g),
		newServiceLsCmd(g),
		newServicePsCmd(g),
		newServiceLogsCmd(g),
		newInspectCmd(g, "service", "SERVICE", getService, writeServicesPretty),
		newServiceScaleCmd(g),
		newServiceUpdateCmd(g),
		newServiceRollbackCmd(g),
		newServiceRmCmd(g),
	)
	return cmd
}

// newServiceCreateCmd returns `shoal service create`.
func newServiceCreateCmd(g *globalOptions) *cobra.Command {
	o := newServiceOptions()
	var (
		wait  waitOptions
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "create [flags] IMAGE [COMMAND] [ARG...]",
		Short: "Create a service",
		Long: "Create a service that runs IMAGE. Options come before IMAGE; what follows IMAGE is the command and its arguments.\n" +
			"Durations are written 10s, 1m30s; memory sizes 64M, 1g; CPUs 0.5, 2.\n\n" +
			"It prints the new service's ID (with --quiet, nothing else).\n\n" + waitHelp,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("shoal service create needs an IMAGE: shoal service create [flags] IMAGE [COMMAND] [ARG...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := buildServiceSpec(o, cmd.Flags().Changed, args[0], args[1:])
			if err != nil {
				return err
			}
			if err := wait.check(); err != nil {
				return err
			}
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := write(commandContext(cmd), c, c.api.CreateService, &api.CreateServiceRequest{Spec: spec})
			if err != nil {
				return err
			}
			printWarnings(cmd, resp.GetWarnings())
			id := resp.GetService().GetId()
			fmt.Fprintln(cmd.OutOrStdout(), id)
			name := resp.GetService().GetSpec().GetAnnotations().GetName()
			if name == "" {
				name = id
			}
			progress := cmd.OutOrStdout()
			if quiet {
				progress = io.Discard
			}
			return joinErrors(waitForServices(cmd, c, &wait, progress, []waitTarget{{id: id, name: name}}))
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after IMAGE belong to the command
	addServiceFlags(f, o)
	wait.addFlags(f)
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the service ID (and wait without printing the progress)")
	return cmd
}

// newServiceLsCmd returns `shoal service ls`.
func newServiceLsCmd(g *globalOptions) *cobra.Command {
	var (
		format string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:     "ls [flags]",
		Aliases: []string{"list"},
		Short:   "List services",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat("format", format, formatTable, formatJSON); err != nil {
				return err
			}
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := read(commandContext(cmd), c, c.api.ListServices, &api.ListServicesRequest{})
			if err != nil {
				return err
			}
			return writeServiceList(cmd.OutOrStdout(), resp, format, quiet)
		},
	}
	cmd.Flags().StringVar(&format, "format", formatTable, "output `format`: table or json (one object per line)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print service IDs only")
	return cmd
}

// newServiceRmCmd returns `shoal service rm`.
func newServiceRmCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm SERVICE...",
		Aliases: []string{"remove"},
		Short:   "Remove services",
		Args:    requireArgs("shoal service rm", "SERVICE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var errs []error
			for _, name := range args {
				s, err := getService(ctx, c, name)
				if err == nil {
					_, err = write(ctx, c, c.api.RemoveService, &api.RemoveServiceRequest{ServiceId: s.GetId()})
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				removed := s.GetSpec().GetAnnotations().GetName()
				if removed == "" {
					removed = s.GetId()
				}
				fmt.Fprintln(cmd.OutOrStdout(), removed)
			}
			return joinErrors(errs)
		},
	}
}

// getService finds a service by ID, ID prefix or name.
func getService(ctx context.Context, c *client, name string) (*api.Service, error) {
	resp, err := read(ctx, c, c.api.GetService, &api.GetServiceRequest{ServiceId: name})
	if err != nil {
		return nil, err
	}
	return resp.GetService(), nil
}

// printWarnings prints the manager's warnings about a write on stderr.
func printWarnings(cmd *cobra.Command, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "WARNING: "+w)
	}
}
