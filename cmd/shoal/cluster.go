package main

// `shoal cluster`: the cluster as a whole, and the tokens nodes join with.

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// newClusterCmd returns `shoal cluster`.
func newClusterCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster and manage its join tokens",
	}
	cmd.AddCommand(newClusterInfoCmd(g), newJoinTokenCmd(g), newClusterUpdateCmd(g), newClusterLeaveCmd(g), newClusterCACmd(g))
	return cmd
}

// newClusterInfoCmd returns `shoal cluster info`.
func newClusterInfoCmd(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [flags]",
		Short: "Show the cluster: its managers, how many nodes, services and tasks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat("format", format, formatTable, formatJSON); err != nil {
				return err
			}
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			info, err := read(commandContext(cmd), c, c.api.GetClusterInfo, &api.GetClusterInfoRequest{})
			if err != nil {
				return err
			}
			if format == formatJSON {
				return writeClusterInfoJSON(cmd.OutOrStdout(), info)
			}
			return writeClusterInfo(cmd.OutOrStdout(), info)
		},
	}
	cmd.Flags().StringVar(&format, "format", formatTable, "output `format`: table or json")
	return cmd
}

// writeClusterInfo prints the cluster summary and a table of managers;
// the manager that answered is marked with " *".
func writeClusterInfo(w io.Writer, info *api.GetClusterInfoResponse) error {
	t := newTable(w)
	cl := info.GetCluster()
	fmt.Fprintf(t, "Cluster ID:\t%s\n", cl.GetId())
	fmt.Fprintf(t, "Name:\t%s\n", cl.GetSpec().GetAnnotations().GetName())
	fmt.Fprintf(t, "Answered by:\t%s\n", info.GetNodeId())
	fmt.Fprintf(t, "Managers:\t%d\n", len(info.GetMembers()))
	fmt.Fprintf(t, "Nodes:\t%d\n", info.GetNodes())
	fmt.Fprintf(t, "Services:\t%d\n", info.GetServices())
	fmt.Fprintf(t, "Tasks:\t%d\n", info.GetTasks())
	fmt.Fprintf(t, "Applied index:\t%d\n", info.GetAppliedIndex())
	if root := cl.GetRootCa().GetCert(); len(root) > 0 {
		if certs, err := ca.ParseCertificates(root); err == nil {
			fmt.Fprintf(t, "CA digest:\t%s\n", ca.DigestOf(certs[0]))
		}
	}
	expiry := ca.DefaultCertLifetime
	if v := cl.GetSpec().CertExpiry; v != nil {
		expiry = time.Duration(*v)
	}
	fmt.Fprintf(t, "Certificate expiry:\t%s\n", expiry)
	fmt.Fprintf(t, "Gossip key:\t%s\n", gossipKeyState(cl))
	if err := t.Flush(); err != nil {
		return err
	}
	if len(info.GetMembers()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t = newTable(w)
	fmt.Fprintln(t, "MANAGER ID\tADDRESS\tSTATUS")
	for _, m := range info.GetMembers() {
		id := m.GetNodeId()
		if id == info.GetNodeId() {
			id += " *"
		}
		fmt.Fprintf(t, "%s\t%s\t%s\n", id, m.GetAddr(), managerStatus(m.GetLeader(), m.GetReachability()))
	}
	return t.Flush()
}

// writeClusterInfoJSON prints the answer as JSON, without the join
// tokens: they are secrets and have their own command.
func writeClusterInfoJSON(w io.Writer, info *api.GetClusterInfoResponse) error {
	info = proto.Clone(info).(*api.GetClusterInfoResponse)
	if info.Cluster != nil {
		info.Cluster.JoinTokens = nil
	}
	return writeProtoObject(w, info)
}

// gossipKeyState says where a rotation of the gossip key stands.
func gossipKeyState(cl *api.Cluster) string {
	switch cl.GetGossipKeyStep() {
	case api.GossipKeyStep_GOSSIP_KEY_STEP_INSTALL:
		return "rotating: every node is getting the new key"
	case api.GossipKeyStep_GOSSIP_KEY_STEP_USE:
		return "rotating: nodes switch to the new key"
	}
	if at := cl.GetGossipKeyChanged(); at != 0 {
		return "steady, last rotated " + time.Unix(0, at).UTC().Format(time.RFC3339)
	}
	return "steady"
}

// managerStatus names a manager's standing as docker does.
func managerStatus(leader bool, r api.Reachability) string {
	switch {
	case leader:
		return "Leader"
	case r == api.Reachability_REACHABILITY_REACHABLE:
		return "Reachable"
	case r == api.Reachability_REACHABILITY_UNREACHABLE:
		return "Unreachable"
	default:
		return "Unknown"
	}
}

// newJoinTokenCmd returns `shoal cluster join-token`.
func newJoinTokenCmd(g *globalOptions) *cobra.Command {
	var rotate, quiet bool
	cmd := &cobra.Command{
		Use:   "join-token [flags] (worker|manager)",
		Short: "Show or rotate the token a node joins with",
		Long: "Show the command that adds a worker or a manager to the cluster. " +
			"--rotate replaces the token: nodes already in the cluster are unaffected, new nodes need the new token.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || (args[0] != "worker" && args[0] != "manager") {
				return fmt.Errorf("shoal cluster join-token needs one argument, worker or manager")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			role := args[0]
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			info, err := read(ctx, c, c.api.GetClusterInfo, &api.GetClusterInfoRequest{})
			if err != nil {
				return err
			}
			cl := info.GetCluster()
			if rotate {
				err := retryOutOfSequence(ctx, func() error {
					if cl == nil {
						again, err := read(ctx, c, c.api.GetClusterInfo, &api.GetClusterInfoRequest{})
						if err != nil {
							return err
						}
						cl = again.GetCluster()
					}
					resp, err := write(ctx, c, c.api.UpdateCluster, &api.UpdateClusterRequest{
						ClusterId:          cl.GetId(),
						Version:            cl.GetMeta().GetVersion(),
						Spec:               cl.GetSpec(),
						RotateWorkerToken:  role == "worker",
						RotateManagerToken: role == "manager",
					})
					if err != nil {
						cl = nil
						return err
					}
					cl = resp.GetCluster()
					return nil
				})
				if err != nil {
					return err
				}
				if !quiet {
					fmt.Fprintf(cmd.OutOrStdout(), "Successfully rotated %s join token.\n\n", role)
				}
			}
			token := cl.GetJoinTokens().GetWorker()
			if role == "manager" {
				token = cl.GetJoinTokens().GetManager()
			}
			if token == "" {
				return fmt.Errorf("the cluster has no %s join token yet; try again once a manager has initialised it", role)
			}
			return writeJoinToken(cmd.OutOrStdout(), role, token, joinAddr(info), quiet)
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the token with a new one")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the token only")
	return cmd
}

// joinAddr is the address a new node should join at: the leader's, else
// the answering manager's, else any manager's; "MANAGER-ADDR" when the
// answer names none.
func joinAddr(info *api.GetClusterInfoResponse) string {
	var self, first string
	for _, m := range info.GetMembers() {
		if m.GetAddr() == "" {
			continue
		}
		if m.GetLeader() {
			return m.GetAddr()
		}
		if m.GetNodeId() == info.GetNodeId() {
			self = m.GetAddr()
		}
		if first == "" {
			first = m.GetAddr()
		}
	}
	switch {
	case self != "":
		return self
	case first != "":
		return first
	}
	return "MANAGER-ADDR"
}

// writeJoinToken prints the join command, docker style, or the token alone.
func writeJoinToken(w io.Writer, role, token, addr string, quiet bool) error {
	if quiet {
		_, err := fmt.Fprintln(w, token)
		return err
	}
	_, err := fmt.Fprintf(w, "To add a %s to this cluster, run the following command:\n\n    shoal daemon --join %s --token %s\n", role, addr, token)
	return err
}
