package main

// `shoal cluster ca`: the cluster's certificate authority, and client
// certificates for the API over TCP.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// newClusterCACmd returns `shoal cluster ca`.
func newClusterCACmd(g *globalOptions) *cobra.Command {
	var (
		rotate, detach bool
		certFile       string
		keyFile        string
	)
	cmd := &cobra.Command{
		Use:   "ca [--rotate [--ca-cert FILE --ca-key FILE] [-d]]",
		Short: "Show or rotate the cluster's root CA; issue client certificates",
		Long: `Show the cluster's root CA, or replace it with --rotate (a generated root,
or --ca-cert/--ca-key). During a rotation every node trusts both roots and
gets a certificate from the new one, which the old root cross-signs, so no
connection is lost; once every node that is up has one, the new root
replaces the old. Nodes that were down meanwhile must join again. Join
tokens change with the root (they pin it), and admin client certificates
from the old root stop working: issue new ones with issue-client.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req *api.UpdateClusterRequest
			if rotate {
				req = &api.UpdateClusterRequest{RotateRootCa: true}
				if (certFile == "") != (keyFile == "") {
					return fmt.Errorf("--ca-cert and --ca-key go together: the new root's certificate and its key")
				}
				if certFile != "" {
					var err error
					if req.RootCaCert, err = os.ReadFile(certFile); err != nil {
						return err
					}
					if req.RootCaKey, err = os.ReadFile(keyFile); err != nil {
						return err
					}
				}
			} else if certFile != "" || keyFile != "" || detach {
				return fmt.Errorf("--ca-cert, --ca-key and -d go with --rotate")
			}
			ctx := commandContext(cmd)
			c, err := g.connect(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			out := cmd.OutOrStdout()
			info, err := read(ctx, c, c.api.GetClusterInfo, &api.GetClusterInfoRequest{})
			if err != nil {
				return err
			}
			if req == nil {
				return writeCAState(out, info.GetCluster())
			}
			cl := info.GetCluster()
			req.ClusterId, req.Version, req.Spec = cl.GetId(), cl.GetMeta().GetVersion(), cl.GetSpec()
			if _, err := write(ctx, c, c.api.UpdateCluster, req); err != nil {
				return err
			}
			fmt.Fprintln(out, "Root CA rotation started: every node now trusts both roots and gets a certificate from the new one.")
			if detach {
				return nil
			}
			for {
				info, err := read(ctx, c, c.api.GetClusterInfo, &api.GetClusterInfoRequest{})
				if err != nil {
					return err
				}
				if len(info.GetCluster().GetRootCa().GetNextCert()) == 0 {
					fmt.Fprintln(out, "Root CA rotated.")
					return writeCAState(out, info.GetCluster())
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	f := cmd.Flags()
	f.BoolVar(&rotate, "rotate", false, "replace the root CA (every node moves to the new one)")
	f.StringVar(&certFile, "ca-cert", "", "with --rotate: the new root's certificate (PEM); default: a generated root")
	f.StringVar(&keyFile, "ca-key", "", "with --rotate: the new root's private key (PEM, ECDSA P-256)")
	f.BoolVarP(&detach, "detach", "d", false, "with --rotate: return once the rotation has started")
	cmd.AddCommand(newIssueClientCmd(g))
	return cmd
}

// writeCAState prints the root's digest and any rotation in progress.
func writeCAState(w io.Writer, cl *api.Cluster) error {
	rc := cl.GetRootCa()
	digest := func(pemBytes []byte) string {
		certs, err := ca.ParseCertificates(pemBytes)
		if err != nil {
			return "(unreadable)"
		}
		return ca.DigestOf(certs[0])
	}
	fmt.Fprintf(w, "Root CA digest: %s\n", digest(rc.GetCert()))
	if len(rc.GetNextCert()) > 0 {
		fmt.Fprintf(w, "Rotating to:    %s (waiting until every node that is up has a certificate from it)\n", digest(rc.GetNextCert()))
	}
	return nil
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
