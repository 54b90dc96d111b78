package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/cmd/shoal/internal/daemon"
	"github.com/shoalhq/shoal/proto/api"
)

// newDaemonCmd returns `shoal daemon`.
func newDaemonCmd() *cobra.Command {
	var (
		cfg          daemon.Config
		availability string
		logLevel     string
		externalCA   []string
	)
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run a Shoal node (agent, and manager if it has the role)",
		Long: `Run a Shoal node.

  shoal daemon --init                        create a new cluster; this node is its first manager
  shoal daemon --join HOST:PORT --token TOK  join a cluster as a worker or manager (the token says which)
  shoal daemon                               resume the node kept in --data-dir
  shoal daemon --force-new-cluster           recover from a lost quorum on a surviving manager,
                                             keeping its state; other managers must join again`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			av, ok := api.NodeAvailability_value["NODE_AVAILABILITY_"+strings.ToUpper(availability)]
			if !ok {
				return fmt.Errorf("invalid argument %q for --availability: use active, pause or drain", availability)
			}
			cfg.Availability = api.NodeAvailability(av)
			switch len(externalCA) {
			case 0:
			case 2:
				cfg.ExternalCACert, cfg.ExternalCAKey = externalCA[0], externalCA[1]
			default:
				return fmt.Errorf("--external-ca takes two files, CERT.pem,KEY.pem: the root CA's certificate and its private key")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("invalid argument %q for --log-level: use debug, info, warn or error", logLevel)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Ready = func(d *daemon.Daemon) {
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "Node %s is serving on %s (API socket %s)\n", d.NodeID(), d.Addr(), cfg.SocketPath)
				if c := d.Cluster(); c != nil {
					fmt.Fprintf(out, "Cluster %s initialised; this node is its manager.\n\n", c.Id)
					tokens, err := d.JoinTokens()
					if err != nil {
						fmt.Fprintf(out, "The join tokens could not be read (%v): run 'shoal cluster join-token worker'.\n", err)
						return
					}
					fmt.Fprintf(out, "To add a worker to this cluster, run the following command:\n\n    shoal daemon --join %s --token %s\n\n", d.Addr(), tokens.Worker)
					fmt.Fprintf(out, "To add a manager to this cluster, run 'shoal cluster join-token manager' and follow the instructions.\n")
				}
			}
			if cfg.SocketPath == "" {
				cfg.SocketPath = cfg.DataDir + "/" + socketName
			}
			return daemon.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir, "directory for the node's state")
	f.StringVar(&cfg.ListenAddr, "listen-addr", "0.0.0.0:4242", "address for the API and Raft (HOST:PORT)")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "address other nodes reach this one at (default: the listen address; with an unspecified one such as 0.0.0.0, the machine's only IPv4 address)")
	f.BoolVar(&cfg.Init, "init", false, "create a new cluster with this node as its first manager")
	f.StringVar(&cfg.JoinAddr, "join", "", "join the cluster of the manager at HOST:PORT")
	f.StringVar(&cfg.Token, "token", "", "join token (with --join)")
	f.BoolVar(&cfg.ForceNew, "force-new-cluster", false, "restart a surviving manager as a one-manager cluster, keeping its state")
	f.StringVar(&cfg.Hostname, "hostname", "", "node name to report (default: the machine's hostname)")
	f.StringVar(&availability, "availability", "active", "availability of this node when it creates or joins the cluster: active, pause or drain (a drained manager runs no tasks)")
	f.DurationVar(&cfg.HeartbeatPeriod, "heartbeat-period", 0, "override the cluster's agent heartbeat period (default 5s)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&cfg.Runtime, "runtime", "containerd", "task runtime: containerd, or simulated (tasks pretend to run; for tests and rehearsals)")
	f.StringVar(&cfg.Containerd.Address, "containerd", "/run/containerd/containerd.sock", "containerd socket (with --runtime containerd)")
	f.StringVar(&cfg.Containerd.Namespace, "containerd-namespace", "shoal", "containerd namespace for this node's images and containers (give each node on one machine its own)")
	f.BoolVar(&cfg.Overlay, "overlay", true, "run the overlay network data plane (VXLAN, service VIPs, DNS) for tasks attached to networks; needs --runtime containerd and a non-loopback advertised address")
	f.IntVar(&cfg.GossipPort, "gossip-port", 7946, "port (TCP and UDP) on the advertised address where hosts share their tasks' endpoints")
	f.StringSliceVar(&cfg.DefaultAddressPool, "default-addr-pool", nil, "with --init: CIDR overlay networks get their subnets from when they name none (repeatable; default 10.0.0.0/8)")
	f.StringSliceVar(&externalCA, "external-ca", nil, "with --init: CERT.pem,KEY.pem of a root CA (ECDSA P-256) to use instead of a generated one; the managers hold its key")
	f.DurationVar(&cfg.CertExpiry, "cert-expiry", 0, "with --init: lifetime of node and client certificates (default 2160h, 90 days; at least 1h)")
	f.Uint32Var(&cfg.SubnetSize, "default-addr-pool-mask-length", 0, "with --init: prefix length of the subnets carved from the address pool (default 24)")
	f.DurationVar(&cfg.OverlayGCInterval, "overlay-gc-interval", 0, "how often unused overlay devices are looked for (default 30s)")
	_ = f.MarkHidden("overlay-gc-interval")
	f.DurationVar(&cfg.CertRenewInterval, "cert-renew-interval", 0, "renew the node's certificate this often instead of at 50-80% of its lifetime (tests)")
	_ = f.MarkHidden("cert-renew-interval")
	f.BoolVar(&cfg.Cleanup, "cleanup", false, "on shutdown, remove the overlay network devices this node made (for a node taken out of service; running containers lose their overlay interfaces)")
	f.StringSliceVar(&cfg.Containerd.InsecureRegistries, "insecure-registry", nil, "registry HOST:PORT to pull from over plain HTTP (repeatable)")
	f.DurationVar(&cfg.Simulated.StartDelay, "sim-start-delay", 0, "simulated runtime: how long each task takes to start")
	f.Float64Var(&cfg.Simulated.FailureRate, "sim-failure-rate", 0, "simulated runtime: probability (0-1) that a task fails at start")
	return cmd
}
