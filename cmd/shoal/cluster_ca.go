package main

// `shoal cluster ca`: the cluster's certificate authority, and client
// certificates for the API over TCP.

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// newClusterCACmd returns `shoal cluster ca`.
func newClusterCACmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "The cluster's certificate authority: client certificates",
	}
	cmd.AddCommand(newIssueClientCmd(g))
	return cmd
}

// newIssueClientCmd returns `shoal cluster ca issue-client`.
func newIssueClientCmd(g *globalOptions) *cobra.Command {
	var name, out string
	cmd := &cobra.Command{
		Use:   "issue-client --name NAME --out DIR",
		Short: "Issue an admin client certificate for the API over TCP",
		Long: `Make a key here, have the managers sign it as an admin client named NAME,
and write ca.pem, cert.pem and key.pem (0600) into DIR. Use them from any
machine with --tlscacert/--tlscert/--tlskey or SHOAL_CERT_PATH=DIR and
--host MANAGER:PORT. The certificate lives as long as node certificates
(shoal cluster update --cert-expiry). The key never leaves this machine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || out == "" {
				return fmt.Errorf("shoal cluster ca issue-client needs --name NAME and --out DIR")
			}
			for _, f := range []string{ca.ClientCAFile, ca.ClientCertFile, ca.ClientKeyFile} {
				if _, err := os.Stat(filepath.Join(out, f)); err == nil {
					return fmt.Errorf("%s already exists: choose another --out folder or remove the old files", filepath.Join(out, f))
				}
			}
			key, csr, err := ca.NewKeyAndCSR(name)
			if err != nil {
				return err
			}
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := write(commandContext(cmd), c, c.api.IssueClientCertificate, &api.IssueClientCertificateRequest{Name: name, Csr: csr})
			if err != nil {
				return err
			}
			if err := ca.WriteFiles(out, ca.ClientCertFile, ca.ClientKeyFile, ca.ClientCAFile, resp.Certificate, key, resp.RootCa); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote %s, %s and %s for admin client %q.\nUse them with: SHOAL_CERT_PATH=%s shoal --host MANAGER:PORT ...\n",
				filepath.Join(out, ca.ClientCAFile), filepath.Join(out, ca.ClientCertFile), filepath.Join(out, ca.ClientKeyFile), name, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "who the certificate is for (letters, digits, '.', '_', '-')")
	cmd.Flags().StringVar(&out, "out", "", "folder to write ca.pem, cert.pem and key.pem into")
	return cmd
}
