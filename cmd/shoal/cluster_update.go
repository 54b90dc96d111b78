package main

// `shoal cluster update`: cluster-wide settings.

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// clusterUpdateOptions are the settings `cluster update` can change; only
// flags given on the command line are applied.
type clusterUpdateOptions struct {
	heartbeatPeriod string
	heartbeatGrace  uint32
	historyLimit    int64
	certExpiry      string
	rotateGossipKey bool
}

// apply changes spec for every flag that was given.
func (o *clusterUpdateOptions) apply(cmd *cobra.Command, spec *api.ClusterSpec) error {
	f := cmd.Flags()
	changed := false
	if f.Changed("heartbeat-period") {
		v, err := parseDuration("heartbeat-period", o.heartbeatPeriod)
		if err != nil {
			return err
		}
		if v <= 0 {
			return flagError("heartbeat-period", o.heartbeatPeriod, "must be more than zero (examples: 5s, 1s)")
		}
		spec.HeartbeatPeriod = &v
		changed = true
	}
	if f.Changed("heartbeat-grace") {
		if o.heartbeatGrace == 0 {
			return fmt.Errorf("invalid argument 0 for --heartbeat-grace: a node must be allowed at least 1 missed period")
		}
		v := o.heartbeatGrace
		spec.HeartbeatGracePeriods = &v
		changed = true
	}
	if f.Changed("task-history-limit") {
		if o.historyLimit < 0 {
			return fmt.Errorf("invalid argument %d for --task-history-limit: must not be negative", o.historyLimit)
		}
		v := o.historyLimit
		spec.TaskHistoryRetentionLimit = &v
		changed = true
	}
	if f.Changed("cert-expiry") {
		v, err := parseDuration("cert-expiry", o.certExpiry)
		if err != nil {
			return err
		}
		if time.Duration(v) < ca.MinCertLifetime {
			return flagError("cert-expiry", o.certExpiry, "must be at least 1h (examples: 2160h, 24h)")
		}
		spec.CertExpiry = &v
		changed = true
	}
	if o.rotateGossipKey {
		changed = true
	}
	if !changed {
		return fmt.Errorf("nothing to change: give at least one of --heartbeat-period, --heartbeat-grace, --task-history-limit, --cert-expiry, --rotate-gossip-key")
	}
	return nil
}

// newClusterUpdateCmd returns `shoal cluster update`.
func newClusterUpdateCmd(g *globalOptions) *cobra.Command {
	var o clusterUpdateOptions
	cmd := &cobra.Command{
		Use:   "update [flags]",
		Short: "Change cluster-wide settings (heartbeats, task history)",
		Long: `Change cluster-wide settings. Agents report every --heartbeat-period
(default 5s); a node that misses --heartbeat-grace periods in a row
(default 3) is DOWN and its tasks are replaced elsewhere. The orchestrator
keeps --task-history-limit dead tasks per slot (default 5). Node and
client certificates issued from now on live --cert-expiry (default
2160h, 90 days); nodes renew theirs between 50% and 80% of it.
--rotate-gossip-key replaces the key that encrypts the hosts' endpoint
gossip now (the leader also does it every 12 hours), in three steps that
each wait for every node: cluster info shows the step.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Check the flags before anything is sent.
			if err := o.apply(cmd, &api.ClusterSpec{}); err != nil {
				return err
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			err = retryOutOfSequence(ctx, func() error {
				info, err := read(ctx, c, c.api.GetClusterInfo, &api.GetClusterInfoRequest{})
				if err != nil {
					return err
				}
				cl := info.GetCluster()
				spec := proto.Clone(cl.GetSpec()).(*api.ClusterSpec)
				if spec == nil {
					spec = &api.ClusterSpec{}
				}
				if err := o.apply(cmd, spec); err != nil {
					return err
				}
				_, err = write(ctx, c, c.api.UpdateCluster, &api.UpdateClusterRequest{
					ClusterId: cl.GetId(), Version: cl.GetMeta().GetVersion(), Spec: spec, RotateGossipKey: o.rotateGossipKey})
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Cluster updated.")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.heartbeatPeriod, "heartbeat-period", "5s", "how often agents report")
	f.Uint32Var(&o.heartbeatGrace, "heartbeat-grace", 3, "missed heartbeat periods before a node is DOWN")
	f.Int64Var(&o.historyLimit, "task-history-limit", 5, "dead tasks kept per slot")
	f.StringVar(&o.certExpiry, "cert-expiry", "2160h", "lifetime of the certificates issued from now on (at least 1h)")
	f.BoolVar(&o.rotateGossipKey, "rotate-gossip-key", false, "start a rotation of the gossip encryption key now")
	return cmd
}
