package main

// `shoal node`: list, inspect and remove the cluster's nodes. Changing a
// node (update, promote, demote) is in node_update.go, listing a node's
// tasks in node_ps.go.

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// newNodeCmd returns `shoal node`.
func newNodeCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Manage the cluster's nodes",
	}
	cmd.AddCommand(
		newNodeLsCmd(g),
		newNodePsCmd(g),
		newInspectCmd(g, "node", "NODE", getNode, writeNodesPretty),
		newNodeUpdateCmd(g),
		newNodePromoteCmd(g),
		newNodeDemoteCmd(g),
		newNodeRmCmd(g),
	)
	return cmd
}

// newNodeLsCmd returns `shoal node ls`.
func newNodeLsCmd(g *globalOptions) *cobra.Command {
	var (
		format  string
		quiet   bool
		filters []string
	)
	cmd := &cobra.Command{
		Use:     "ls [flags]",
		Aliases: []string{"list"},
		Short:   "List the nodes; the node that answered is marked with *",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat("format", format, formatTable, formatJSON); err != nil {
				return err
			}
			req, err := parseNodeFilters(filters)
			if err != nil {
				return err
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := read(ctx, c, c.api.ListNodes, req)
			if err != nil {
				return err
			}
			// The answering node only earns its "*": without it the
			// list is still right.
			info, _ := read(ctx, c, c.api.GetClusterInfo, &api.GetClusterInfoRequest{})
			return writeNodeList(cmd.OutOrStdout(), resp.GetNodes(), info.GetNodeId(), format, quiet)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", formatTable, "output `format`: table or json (one object per line)")
	f.BoolVarP(&quiet, "quiet", "q", false, "print node IDs only")
	f.StringArrayVarP(&filters, "filter", "f", nil, "show only nodes that match: role=manager|worker, label=KEY or label=KEY=VALUE (repeatable)")
	return cmd
}

// parseNodeFilters turns --filter values into a ListNodes request.
func parseNodeFilters(filters []string) (*api.ListNodesRequest, error) {
	req := &api.ListNodesRequest{}
	for _, f := range filters {
		key, value, ok := strings.Cut(f, "=")
		switch {
		case !ok || value == "":
			return nil, fmt.Errorf("invalid argument %q for --filter: expected role=manager|worker or label=KEY[=VALUE]", f)
		case key == "role":
			switch value {
			case "manager":
				req.Roles = append(req.Roles, api.NodeRole_NODE_ROLE_MANAGER)
			case "worker":
				req.Roles = append(req.Roles, api.NodeRole_NODE_ROLE_WORKER)
			default:
				return nil, fmt.Errorf("invalid argument %q for --filter: role must be manager or worker", f)
			}
		case key == "label" || key == "node.label":
			req.Labels = append(req.Labels, value)
		default:
			return nil, fmt.Errorf("invalid argument %q for --filter: unknown filter %q (valid filters are role and label)", f, key)
		}
	}
	return req, nil
}

// newNodeRmCmd returns `shoal node rm`.
func newNodeRmCmd(g *globalOptions) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [flags] NODE...",
		Aliases: []string{"remove"},
		Short:   "Remove nodes from the cluster",
		Long:    "Remove nodes from the cluster. A node must be down to be removed, unless --force is given.",
		Args:    requireArgs("shoal node rm", "NODE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			var errs []error
			for _, name := range args {
				n, err := getNode(ctx, c, name)
				if err == nil {
					_, err = write(ctx, c, c.api.RemoveNode, &api.RemoveNodeRequest{NodeId: n.GetId(), Force: force})
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return joinErrors(errs)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove the node even if it is not down")
	return cmd
}

// getNode finds a node by ID, ID prefix or hostname.
func getNode(ctx context.Context, c *client, name string) (*api.Node, error) {
	resp, err := read(ctx, c, c.api.GetNode, &api.GetNodeRequest{NodeId: name})
	if err != nil {
		return nil, err
	}
	return resp.GetNode(), nil
}

// inspectOptions are the output flags of the inspect commands.
type inspectOptions struct {
	formatFlag string
	pretty     bool
}

// addFlags registers --format and --pretty.
func (o *inspectOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.formatFlag, "format", formatJSON, "output `format`: json or pretty")
	cmd.Flags().BoolVar(&o.pretty, "pretty", false, "print a human summary (same as --format pretty)")
}

// format is the chosen output format, checked.
func (o *inspectOptions) format() (string, error) {
	if o.pretty {
		return formatPretty, nil
	}
	return o.formatFlag, checkFormat("format", o.formatFlag, formatJSON, formatPretty)
}

// inspectEach gets each named object and prints those found as a JSON
// array (or pretty); the names not found are reported after, one per
// line, and make the command fail.
// newInspectCmd returns `shoal KIND inspect`: each named object (found by
// get) as a JSON array, or a summary (pretty) with --pretty.
func newInspectCmd[M proto.Message](g *globalOptions, kind, arg string, get func(context.Context, *client, string) (M, error), pretty func(io.Writer, []M) error) *cobra.Command {
	var opts inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [flags] " + arg + "...",
		Short: "Show " + kind + "s in detail (JSON, or a summary with --pretty)",
		Args:  requireArgs("shoal "+kind+" inspect", arg),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := opts.format()
			if err != nil {
				return err
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			return inspectEach(cmd.OutOrStdout(), args, func(name string) (M, error) { return get(ctx, c, name) }, format, pretty)
		},
	}
	opts.addFlags(cmd)
	return cmd
}

func inspectEach[M proto.Message](w io.Writer, names []string, get func(string) (M, error), format string, pretty func(io.Writer, []M) error) error {
	var (
		found []M
		errs  []error
	)
	for _, name := range names {
		m, err := get(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		found = append(found, m)
	}
	var err error
	if format == formatPretty {
		err = pretty(w, found)
	} else {
		err = writeProtoArray(w, found)
	}
	if err != nil {
		return err
	}
	return joinErrors(errs)
}

// requireArgs says what a command needs when it is given no arguments.
func requireArgs(command, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("%s needs at least one %s", command, what)
		}
		return nil
	}
}
