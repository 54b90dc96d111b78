package main

// `shoal network`: create, list, inspect and remove overlay networks.

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/proto/api"
)

// newNetworkCmd returns `shoal network` and its subcommands.
func newNetworkCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage overlay networks",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newNetworkCreateCmd(g), newNetworkLsCmd(g), newNetworkInspectCmd(g), newNetworkRmCmd(g))
	return cmd
}

func newNetworkCreateCmd(g *globalOptions) *cobra.Command {
	var (
		driver, subnet, gateway string
		attachable, internal    bool
		labels                  []string
	)
	cmd := &cobra.Command{
		Use:   "create [flags] NAME",
		Short: "Create an overlay network",
		Long: `Create an overlay network that services attach to with --network NAME.
Without --subnet the network gets the next free subnet of the cluster's
address pool (10.0.0.0/8 in /24s unless set when the cluster was made).
Prints the network's ID.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			lbls, err := parseLabels("label", labels)
			if err != nil {
				return err
			}
			spec := &api.NetworkSpec{
				Annotations: &api.Annotations{Name: args[0], Labels: lbls},
				Driver:      driver,
				Attachable:  attachable,
				Internal:    internal,
			}
			if subnet != "" || gateway != "" {
				spec.Ipam = []*api.IPAMConfig{{Subnet: subnet, Gateway: gateway}}
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := write(ctx, c, c.api.CreateNetwork, &api.CreateNetworkRequest{Spec: spec})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.GetNetwork().GetId())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "overlay", "network `driver`: overlay")
	f.StringVar(&subnet, "subnet", "", "IPv4 `CIDR` of the network (default: the next free one of the address pool)")
	f.StringVar(&gateway, "gateway", "", "gateway `address` inside the subnet (default: its first address)")
	f.BoolVar(&attachable, "attachable", false, "let standalone containers attach")
	f.BoolVar(&internal, "internal", false, "no route out of the network")
	f.StringArrayVar(&labels, "label", nil, "network `label` KEY=VALUE (repeatable)")
	return cmd
}

// networkRow is one line of `shoal network ls`.
type networkRow struct {
	ID     string
	Name   string
	Driver string
	Scope  string
	Subnet string
	VNI    uint32
}

func networkRows(nets []*api.Network) []networkRow {
	rows := make([]networkRow, 0, len(nets))
	for _, n := range nets {
		var subnets []string
		for _, c := range n.GetIpam() {
			subnets = append(subnets, c.GetSubnet())
		}
		rows = append(rows, networkRow{
			ID: n.GetId(), Name: n.GetSpec().GetAnnotations().GetName(), Driver: n.GetSpec().GetDriver(),
			Scope: "swarm", Subnet: strings.Join(subnets, ","), VNI: n.GetVni(),
		})
	}
	return rows
}

// writeNetworkList prints `shoal network ls`.
func writeNetworkList(w io.Writer, nets []*api.Network, format string, quiet bool) error {
	rows := networkRows(nets)
	return writeRows(w, rows, format, quiet, func(r networkRow) string { return r.ID }, func(t io.Writer) {
		fmt.Fprintln(t, "NETWORK ID\tNAME\tDRIVER\tSCOPE\tSUBNET\tVNI")
		for _, r := range rows {
			fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%d\n", truncateID(r.ID), r.Name, r.Driver, r.Scope, r.Subnet, r.VNI)
		}
	})
}

func newNetworkLsCmd(g *globalOptions) *cobra.Command {
	var (
		format string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:     "ls [flags]",
		Aliases: []string{"list"},
		Short:   "List the overlay networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat("format", format, formatTable, formatJSON); err != nil {
				return err
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := read(ctx, c, c.api.ListNetworks, &api.ListNetworksRequest{})
			if err != nil {
				return err
			}
			return writeNetworkList(cmd.OutOrStdout(), resp.GetNetworks(), format, quiet)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", formatTable, "output `format`: table or json (one object per line)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print network IDs only")
	return cmd
}

func newNetworkInspectCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NETWORK [NETWORK...]",
		Short: "Show networks in detail, as JSON",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var nets []*api.Network
			var errs []error
			for _, ref := range args {
				resp, err := read(ctx, c, c.api.GetNetwork, &api.GetNetworkRequest{NetworkId: ref})
				if err != nil {
					errs = append(errs, err)
					continue
				}
				nets = append(nets, resp.GetNetwork())
			}
			if len(nets) > 0 {
				if err := writeProtoArray(cmd.OutOrStdout(), nets); err != nil {
					return err
				}
			}
			return joinErrors(errs)
		},
	}
}

func newNetworkRmCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove networks no service uses",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var errs []error
			for _, ref := range args {
				if _, err := write(ctx, c, c.api.RemoveNetwork, &api.RemoveNetworkRequest{NetworkId: ref}); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), ref)
			}
			return joinErrors(errs)
		},
	}
}
