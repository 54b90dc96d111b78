package main

// `shoal volume ls|rm`: the named volumes of this node.

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/proto/api"
)

// newVolumeCmd returns `shoal volume` and its subcommands. Volumes are
// node-local: like `cluster leave`, the subcommands talk to the local
// daemon through its unix socket.
func newVolumeCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "volume",
		Short: "Manage the named volumes of this node",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newVolumeLsCmd(g), newVolumeRmCmd(g))
	return cmd
}

// newVolumeLsCmd returns `shoal volume ls`: a NAME, SIZE, IN USE BY table.
func newVolumeLsCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List this node's named volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := read(commandContext(cmd), c, api.NewLocalNodeClient(c.conn).ListVolumes, &api.ListVolumesRequest{})
			if err != nil {
				return err
			}
			return writeVolumes(cmd, resp.GetVolumes())
		},
	}
}

// writeVolumes prints the volume table; tasks are shown by short ID.
func writeVolumes(cmd *cobra.Command, vols []*api.Volume) error {
	t := newTable(cmd.OutOrStdout())
	fmt.Fprintln(t, "NAME\tSIZE\tIN USE BY")
	for _, v := range vols {
		users := "-"
		if ids := v.GetTaskIds(); len(ids) > 0 {
			short := make([]string, len(ids))
			for i, id := range ids {
				short[i] = truncateID(id)
			}
			users = strings.Join(short, ",")
		}
		fmt.Fprintf(t, "%s\t%s\t%s\n", v.GetName(), formatBytes(v.GetSizeBytes()), users)
	}
	return t.Flush()
}

// newVolumeRmCmd returns `shoal volume rm [-f] NAME...`. It tries every
// name, prints each one removed, and fails with the errors of the others.
func newVolumeRmCmd(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [-f] NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove named volumes of this node",
		Long:    "Remove named volumes of this node and their content. A volume a task on this node mounts is kept unless --force.",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, names []string) error {
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var errs []error
			for _, name := range names {
				_, err := write(commandContext(cmd), c, api.NewLocalNodeClient(c.conn).RemoveVolume, &api.RemoveVolumeRequest{Name: name, Force: force})
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return joinErrors(errs)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove the volume even while tasks mount it")
	return cmd
}
