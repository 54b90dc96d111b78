package main

// `shoal playground up|status|down`: a cluster of namespace hosts on this
// machine, with example services.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoalhq/shoal/deploy/images"
	"github.com/shoalhq/shoal/deploy/lab"
	"github.com/shoalhq/shoal/proto/api"
)

// playgroundOptions locate a playground.
type playgroundOptions struct {
	dir, name string
}

// flags returns the command-line flags that name this playground, ""
// for the default one.
func (o playgroundOptions) flags() string {
	s := ""
	if o.dir != defaultPlaygroundDir {
		s += " --dir " + o.dir
	}
	if o.name != defaultPlaygroundName {
		s += " --name " + o.name
	}
	return s
}

// The default playground's folder and namespace prefix.
const (
	defaultPlaygroundDir  = "/var/lib/shoal-playground"
	defaultPlaygroundName = "shoalpg"
)

// open returns the playground the options name; its error wraps
// lab.ErrNotFound when there is none.
func (o playgroundOptions) open() (*lab.Lab, error) {
	l, err := lab.Open(o.dir, o.name)
	if errors.Is(err, lab.ErrNotFound) {
		return nil, fmt.Errorf("no playground in %s: start one with `shoal playground up%s`: %w", o.dir, o.flags(), err)
	}
	return l, err
}

func (o *playgroundOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", defaultPlaygroundDir, "folder for the playground's hosts, logs and description")
	f.StringVar(&o.name, "name", defaultPlaygroundName, "prefix of the playground's network namespaces (a-z, 0-9; at most 12)")
}

// newPlaygroundCmd returns `shoal playground`.
func newPlaygroundCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "playground",
		Short: "Run a local multi-host cluster on this machine",
		Long: `Run a cluster of several hosts on this machine: each host is a network
namespace with its own containerd and shoal daemon, joined to the others
by a bridge (the underlay); a registry on the underlay serves the example
images. Needs root, the Go toolchain (to build the example images) and
the tools of deploy/tools.sh runtime (runc, containerd, registry).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newPlaygroundUpCmd(), newPlaygroundStatusCmd(), newPlaygroundDownCmd())
	return cmd
}

func newPlaygroundUpCmd() *cobra.Command {
	var (
		o        playgroundOptions
		hosts    int
		managers int
		tools    string
		runtime  string
		owner    int
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the playground and deploy the example services",
		Long: `Start the playground (if it is not running) and deploy the example
services: web, 6 replicas of an HTTP echo server. Prints the SHOAL_HOST
that reaches it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := commandContext(cmd)
			out := cmd.OutOrStdout()
			start := time.Now()
			l, err := lab.Open(o.dir, o.name)
			switch {
			case err == nil && l.Host(1).DaemonRunning():
				fmt.Fprintf(out, "The playground is already up.\n")
			case err == nil:
				fmt.Fprintf(out, "Removing a stopped playground first.\n")
				if err := l.Down(); err != nil {
					return fmt.Errorf("remove the stopped playground: %w", err)
				}
				l = nil
			case !errors.Is(err, lab.ErrNotFound):
				return err
			}
			if l == nil {
				self, err := os.Executable()
				if err != nil {
					return err
				}
				cfg := lab.Config{
					Name: o.name, Dir: o.dir, Hosts: hosts, Managers: managers,
					Shoal: self, ToolsBin: filepath.Join(tools, "bin"), Runtime: runtime,
				}
				if owner != 0 {
					cfg.Owner = owner
					if cfg.OwnerStart, err = lab.StartTime(owner); err != nil {
						return fmt.Errorf("--owner-pid %d: %w", owner, err)
					}
				}
				if l, err = lab.Up(ctx, cfg, out); err != nil {
					return err
				}
			}
			if err := deployExamples(ctx, l, out); err != nil {
				return err
			}
			fmt.Fprintf(out, "\nThe playground is up (%s).\n\n", time.Since(start).Round(100*time.Millisecond))
			printPlayground(out, l, o)
			return nil
		},
	}
	o.addFlags(cmd)
	f := cmd.Flags()
	f.IntVar(&hosts, "hosts", 5, "number of hosts")
	f.IntVar(&managers, "managers", 3, "how many of the hosts are managers")
	f.StringVar(&tools, "tools-dir", envOr("SHOAL_TOOLS_DIR", "/var/cache/shoal"), "folder whose bin/ holds containerd, its shim and the registry (see deploy/tools.sh)")
	f.StringVar(&runtime, "runtime", lab.RuntimeContainerd, "task runtime of the hosts: containerd, or simulated")
	f.IntVar(&owner, "owner-pid", 0, "tear the playground down with the next sweep once this process has exited (for tests)")
	_ = f.MarkHidden("owner-pid")
	return cmd
}

func newPlaygroundStatusCmd() *cobra.Command {
	var o playgroundOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "List the playground's hosts and their API addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := o.open()
			if err != nil {
				return err
			}
			printPlayground(cmd.OutOrStdout(), l, o)
			return nil
		},
	}
	o.addFlags(cmd)
	return cmd
}

func newPlaygroundDownCmd() *cobra.Command {
	var o playgroundOptions
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the playground and remove everything it made",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := o.open()
			if errors.Is(err, lab.ErrNotFound) {
				fmt.Fprintln(cmd.OutOrStdout(), "No playground is running.")
				return nil
			}
			if err != nil {
				return err
			}
			if err := l.Down(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Playground removed.")
			return nil
		},
	}
	o.addFlags(cmd)
	return cmd
}

// The example services: web (an HTTP echo server, several replicas,
// published on port 8080 of every host) and client (calls web by name
// every few seconds), on network demo.
const (
	exampleNetwork  = "demo"
	exampleService  = "web"
	exampleClient   = "client"
	exampleReplicas = 6
	examplePort     = 8080
)

// deployExamples builds the example image, pushes it to the playground's
// registry, creates the example network and services unless they exist,
// and waits until all their replicas run.
func deployExamples(ctx context.Context, l *lab.Lab, out io.Writer) error {
	c, err := l.Host(1).Control()
	if err != nil {
		return err
	}
	ref := l.RegistryAddr + "/web:v1"
	if _, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: exampleService}); err != nil {
		fmt.Fprintf(out, "building and pushing %s\n", ref)
		img, err := images.Build(ctx, images.BuildOptions{
			Ref: "registry.test:5000/web:v1", Programs: []string{"echo", "client"}, Version: "v1",
			Entrypoint: []string{"/bin/echo"}, ExposedPorts: []string{"80/tcp"},
		})
		if err != nil {
			return fmt.Errorf("build the example image (needs the Go toolchain): %w", err)
		}
		if _, err := l.Registry().Push(ctx, img, ref); err != nil {
			return fmt.Errorf("push the example image: %w", err)
		}
	}
	if _, err := c.GetNetwork(ctx, &api.GetNetworkRequest{NetworkId: exampleNetwork}); err != nil {
		if _, err := c.CreateNetwork(ctx, &api.CreateNetworkRequest{Spec: &api.NetworkSpec{
			Annotations: &api.Annotations{Name: exampleNetwork}, Driver: "overlay",
		}}); err != nil {
			return fmt.Errorf("create network %s: %w", exampleNetwork, err)
		}
	}
	onDemo := []*api.NetworkAttachmentConfig{{Target: exampleNetwork}}
	specs := []*api.ServiceSpec{{
		Annotations: &api.Annotations{Name: exampleService},
		Task:        &api.TaskSpec{Container: &api.ContainerSpec{Image: ref}, Networks: onDemo},
		Mode:        &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: exampleReplicas}}},
		Endpoint:    &api.EndpointSpec{Ports: []*api.PortConfig{{TargetPort: 80, PublishedPort: examplePort}}},
	}, {
		Annotations: &api.Annotations{Name: exampleClient},
		Task: &api.TaskSpec{Container: &api.ContainerSpec{Image: ref, Command: []string{"/bin/client"},
			Env: []string{"URL=http://" + exampleService + "/", "COUNT=12", "EVERY=5s"}}, Networks: onDemo},
		Mode: &api.ServiceMode{Mode: &api.ServiceMode_Replicated{Replicated: &api.Replicated{Replicas: 1}}},
	}}
	for _, spec := range specs {
		name := spec.GetAnnotations().GetName()
		svc, err := c.GetService(ctx, &api.GetServiceRequest{ServiceId: name})
		if err != nil {
			resp, err := c.CreateService(ctx, &api.CreateServiceRequest{Spec: spec})
			if err != nil {
				return fmt.Errorf("create service %s: %w", name, err)
			}
			svc = &api.GetServiceResponse{Service: resp.GetService()}
		}
		want := spec.GetMode().GetReplicated().GetReplicas()
		fmt.Fprintf(out, "waiting for %d replicas of %s\n", want, name)
		if err := waitReplicas(ctx, c, svc.GetService().GetId(), name, int(want)); err != nil {
			return err
		}
	}
	return nil
}

// waitReplicas polls until want tasks of the service run (2 minutes).
func waitReplicas(ctx context.Context, c api.ControlClient, id, name string, want int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := c.ListTasks(ctx, &api.ListTasksRequest{ServiceIds: []string{id}})
		running := 0
		for _, t := range resp.GetTasks() {
			if t.GetStatus().GetState() == api.TaskState_TASK_STATE_RUNNING && t.GetDesiredState() == api.TaskState_TASK_STATE_RUNNING {
				running++
			}
		}
		if err == nil && running >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d replicas running after 2 minutes (%v); see `shoal service ps %s`", name, running, want, err, name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// printPlayground prints the hosts and how to talk to the cluster.
func printPlayground(out io.Writer, l *lab.Lab, o playgroundOptions) {
	t := newTable(out)
	fmt.Fprintln(t, "HOST\tROLE\tNAMESPACE\tUNDERLAY ADDRESS\tAPI SOCKET\tDAEMON")
	for _, h := range l.Hosts {
		role := "worker"
		if h.Manager {
			role = "manager"
		}
		state := "stopped"
		if h.DaemonRunning() {
			state = "running (pid " + strconv.Itoa(h.DaemonPID()) + ")"
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, role, h.NetNS, h.APIAddr, "unix://"+h.Socket, state)
	}
	_ = t.Flush()
	fmt.Fprintf(out, "\nRegistry: %s (on the underlay)\nLogs: %s/hN/daemon.log and containerd.log\n", l.RegistryAddr, l.Dir)
	fmt.Fprintf(out, "\nTalk to the cluster with:\n    export SHOAL_HOST=unix://%s\n    shoal node ls\n    shoal service ps %s\n", l.Host(1).Socket, exampleService)
	fmt.Fprintf(out, "See %s call %s by name over network %s, load-balanced over its replicas:\n    shoal service logs %s\n", exampleClient, exampleService, exampleNetwork, exampleClient)
	fmt.Fprintf(out, "%s is published on port %d of every host (the answer names the task that served it and the client it saw):\n    ip netns exec %s curl -s http://%s:%d/\n",
		exampleService, examplePort, l.Host(1).NetNS, l.Host(len(l.Hosts)).Addr, examplePort)
	fmt.Fprintf(out, "Enter a host with:\n    ip netns exec %s bash\n", l.Host(1).NetNS)
	fmt.Fprintf(out, "Remove it with:\n    shoal playground down%s\n", o.flags())
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
