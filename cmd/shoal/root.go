package main

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// newRootCmd returns the shoal command tree.
func newRootCmd() *cobra.Command {
	g := &globalOptions{getenv: os.Getenv}
	root := &cobra.Command{
		Use:           "shoal",
		Short:         "Run and use a Shoal cluster",
		Long:          "shoal runs a node of a Shoal cluster (shoal daemon) and, with every other command, speaks to the cluster's managers.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.host, "host", "", "manager API to use: `HOST:PORT` or unix:///PATH (default $"+hostEnv+", else unix://"+defaultDataDir+"/"+socketName+")")
	pf.DurationVar(&g.timeout, "timeout", defaultTimeout, "how long to wait for the connection and for each answer")
	pf.StringVar(&g.tls.ca, "tlscacert", "", "over TCP: the cluster's CA certificate (default $"+certPathEnv+"/ca.pem)")
	pf.StringVar(&g.tls.cert, "tlscert", "", "over TCP: this client's certificate (default $"+certPathEnv+"/cert.pem)")
	pf.StringVar(&g.tls.key, "tlskey", "", "over TCP: this client's key (default $"+certPathEnv+"/key.pem)")
	root.AddCommand(
		newDaemonCmd(),
		newClusterCmd(g),
		newNodeCmd(g),
		newServiceCmd(g),
		newImageCmd(g),
		newVolumeCmd(g),
		newNetworkCmd(g),
		newPlaygroundCmd(),
		newInitCmd(),
	)
	return root
}

// globalOptions are the flags every client command shares.
type globalOptions struct {
	host    string
	timeout time.Duration
	tls     tlsFiles
	getenv  func(string) string
}

// connect opens a client of the API the flags and environment point at.
func (g *globalOptions) connect(cmd *cobra.Command) (*client, error) {
	ep, err := resolveEndpoint(g.host, g.getenv)
	if err != nil {
		return nil, err
	}
	files, err := resolveTLSFiles(g.tls, g.getenv)
	if err != nil {
		return nil, err
	}
	return dial(ep, files, g.timeout, cmd.ErrOrStderr())
}

// commandContext is the command's context, or a background one.
func commandContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
