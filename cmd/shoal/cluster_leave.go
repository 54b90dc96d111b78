package main

// `shoal cluster leave`: this node leaves the cluster.

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/proto/api"
)

// newClusterLeaveCmd returns `shoal cluster leave`. It talks to the local
// daemon through its unix socket: the node that leaves is the one the
// command runs on.
func newClusterLeaveCmd(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "leave [flags]",
		Short: "Take this node out of the cluster and stop its daemon",
		Long: `Take this node out of the cluster. A manager first leaves the Raft group
(refused if that would cost the managers their quorum) and needs --force;
demoting it first is the gentler way. The daemon then stops and forgets its
cluster state, so its data directory can join a cluster again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := write(commandContext(cmd), c, api.NewLocalNodeClient(c.conn).Leave, &api.NodeLeaveRequest{Force: force})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Node %s left the cluster.\n", resp.NodeId)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "leave even if this node is a manager")
	return cmd
}
