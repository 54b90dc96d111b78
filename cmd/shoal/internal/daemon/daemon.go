// Package daemon runs one Shoal node: the gRPC server on the node's
// address and unix socket, the agent's session with the managers and,
// while the node holds the manager role, a Manager. It handles the node's
// start modes (init, join, resume, force-new-cluster) and role changes.
package daemon

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/agent"
	execrt "github.com/shoalhq/shoal/agent/runtime"
	ctrd "github.com/shoalhq/shoal/agent/runtime/containerd"
	"github.com/shoalhq/shoal/agent/runtime/simulated"
	"github.com/shoalhq/shoal/manager"
	"github.com/shoalhq/shoal/manager/authz"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/overlay"
	"github.com/shoalhq/shoal/proto/api"
)

// Version is reported by nodes in their description.
var Version = "0.1.0-dev"

// Config is what `shoal daemon` was asked to do.
type Config struct {
	DataDir       string
	ListenAddr    string
	AdvertiseAddr string
	SocketPath    string
	Init          bool
	JoinAddr      string
	Token         string
	ForceNew      bool
	Hostname      string
	Availability  api.NodeAvailability
	// HeartbeatPeriod overrides the cluster's period (tests).
	HeartbeatPeriod time.Duration
	// Runtime names the executor: "containerd", or "simulated" (no
	// containers: tasks pretend to run; for tests and large-scale
	// rehearsals).
	Runtime string
	// Simulated is the simulated executor's behaviour.
	Simulated simulated.Config
	// Containerd configures the containerd executor (Address is the
	// socket; StateDir defaults to DATA/containerd).
	Containerd ctrd.Config
	// Overlay enables the overlay data plane (VXLAN networks, service
	// VIPs, DNS) with the containerd runtime on a node whose advertised
	// address is not loopback.
	Overlay bool
	// GossipPort is the port of the endpoint gossip (TCP and UDP); 0
	// means 7946.
	GossipPort int
	// Cleanup removes the overlay's devices on this host when the daemon
	// stops (for a node taken out of service).
	Cleanup bool
	// DefaultAddressPool and SubnetSize set, with --init, where overlay
	// subnets come from (see api.Cluster); empty: 10.0.0.0/8 in /24s.
	DefaultAddressPool []string
	SubnetSize         uint32
	// OverlayGCInterval overrides how often unused overlay devices are
	// looked for (tests).
	OverlayGCInterval time.Duration
	// ExternalCACert and ExternalCAKey, with --init, are the root CA to
	// use instead of a generated one (PEM files).
	ExternalCACert, ExternalCAKey string
	// CertExpiry, with --init, is the cluster's certificate lifetime.
	CertExpiry time.Duration
	// CertRenewInterval, when set, renews the node's certificate this
	// often instead of at 50-80% of its lifetime (tests).
	CertRenewInterval time.Duration
	Logger            *slog.Logger
	// Ready, if set, is called once the node serves its API.
	Ready func(d *Daemon)
}

// Daemon is a running node.
type Daemon struct {
	cfg   Config
	log   *slog.Logger
	state *nodeState
	lock  *os.File
	ln    net.Listener // the node's TCP port, served once the node has its certificate
	creds *ca.Credentials
	tr    *manager.Transport
	grpc  *grpc.Server
	logs  *agent.LogServer // the node's Logs service; reads the executor once runAgent has one
	unix  net.Listener
	desc  *api.NodeDescription
	// root and clusterID are set by --init until the manager bootstraps.
	root      *ca.RootCA
	clusterID string

	cancel  context.CancelFunc
	leaving atomic.Bool // set while the node leaves: a removal is expected
	// overlay is the host's data plane while the agent runs (nil without).
	overlay atomic.Pointer[overlay.Host]
	// ctrdExec is the containerd executor once the agent made it (nil on
	// a simulated-runtime node), for the LocalNode image and volume calls.
	ctrdExec atomic.Pointer[ctrd.Executor]

	removed  atomic.Pointer[removedNodes] // removed nodes, as the last heartbeat listed them
	renewMu  sync.Mutex                   // one renewal at a time
	renewNow chan struct{}                // asks keepCertificate to renew at once

	keysMu     sync.Mutex // one change of the gossip keys at a time
	mu         sync.Mutex
	gossipKeys [][]byte // the keys the overlay was given last
	manager    *manager.Manager
	cluster    *api.Cluster // set after --init, for the banner
}

// dial opens a connection to a manager with the node's certificate,
// accepting only managers of this cluster. It is the one place that
// chooses the node's client credentials.
func (d *Daemon) dial(addr string) (*grpc.ClientConn, error) {
	return manager.Dialer(d.creds, ca.ExpectManager)(addr)
}

// errNotManager answers manager services on a worker.
var errNotManager = status.Error(codes.FailedPrecondition,
	"this node is not a manager: worker nodes cannot view or change cluster state; point --host or SHOAL_HOST at a manager")

// Run starts the node and serves until ctx ends, then stops it.
func Run(ctx context.Context, cfg Config) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := start(ctx, cfg)
	if err != nil {
		return err
	}
	d.cancel = cancel
	defer d.stop()
	if cfg.Ready != nil {
		cfg.Ready(d)
	}
	return d.runAgent(ctx)
}

func (c *Config) validate() error {
	modes := 0
	for _, b := range []bool{c.Init, c.JoinAddr != "", c.ForceNew} {
		if b {
			modes++
		}
	}
	if modes > 1 {
		return errors.New("choose one of --init, --join and --force-new-cluster")
	}
	if c.JoinAddr != "" && c.Token == "" {
		return errors.New("--join needs --token: get one with `shoal cluster join-token worker|manager` on a manager")
	}
	if c.Token != "" {
		if _, err := ca.ParseToken(c.Token); err != nil {
			return fmt.Errorf("--token: %w", err)
		}
	}
	if (c.ExternalCACert != "" || c.ExternalCAKey != "" || c.CertExpiry != 0) && !c.Init {
		return errors.New("--external-ca and --cert-expiry are set when the cluster is created: give them with --init only (change the expiry later with `shoal cluster update --cert-expiry`)")
	}
	if (c.ExternalCACert == "") != (c.ExternalCAKey == "") {
		return errors.New("--external-ca needs both the certificate and the key: --external-ca CERT.pem,KEY.pem")
	}
	if c.CertExpiry != 0 && (c.CertExpiry < ca.MinCertLifetime || c.CertExpiry > ca.RootLifetime/2) {
		return fmt.Errorf("--cert-expiry %s: use %s to %s", c.CertExpiry, ca.MinCertLifetime, ca.RootLifetime/2)
	}
	if c.ListenAddr == "" {
		return errors.New("--listen-addr is required (HOST:PORT)")
	}
	switch c.Runtime {
	case "", "simulated":
	case "containerd":
		if c.Containerd.Address == "" {
			return errors.New("--runtime containerd needs --containerd PATH-TO-SOCKET")
		}
	default:
		return fmt.Errorf("--runtime %q: use containerd or simulated", c.Runtime)
	}
	if r := c.Simulated.FailureRate; r < 0 || r > 1 {
		return fmt.Errorf("--sim-failure-rate %v: must be between 0 and 1", r)
	}
	if (len(c.DefaultAddressPool) > 0 || c.SubnetSize != 0) && !c.Init {
		return errors.New("--default-addr-pool and --default-addr-pool-mask-length are fixed when the cluster is created: give them with --init only")
	}
	for _, p := range c.DefaultAddressPool {
		pfx, err := netip.ParsePrefix(p)
		if err != nil || !pfx.Addr().Is4() || pfx.Masked() != pfx {
			return fmt.Errorf("--default-addr-pool %q: give an IPv4 CIDR written as its network address, such as 10.20.0.0/16", p)
		}
		if c.SubnetSize != 0 && int(c.SubnetSize) < pfx.Bits() {
			return fmt.Errorf("--default-addr-pool-mask-length %d is shorter than pool %s: subnets must fit in the pool", c.SubnetSize, p)
		}
	}
	if c.SubnetSize != 0 && (c.SubnetSize < 8 || c.SubnetSize > 29) {
		return fmt.Errorf("--default-addr-pool-mask-length %d: use 8 to 29", c.SubnetSize)
	}
	return nil
}

func start(ctx context.Context, cfg Config) (_ *Daemon, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, renewNow: make(chan struct{}, 1)}
	if d.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	if d.state, err = loadState(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := d.checkMode(); err != nil {
		return nil, err
	}
	if err := d.openPort(); err != nil {
		return nil, err
	}
	hostname := cfg.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	d.desc = &api.NodeDescription{
		Hostname:  hostname,
		Platform:  &api.Platform{Os: runtime.GOOS, Architecture: runtime.GOARCH},
		Resources: &api.Resources{NanoCpus: int64(runtime.NumCPU()) * 1e9, MemoryBytes: memoryBytes()},
		Version:   Version,
	}
	switch {
	case d.cfg.Init:
		err = d.initCluster(ctx)
	case d.cfg.JoinAddr != "":
		err = d.join(ctx)
	default:
		if d.creds, err = manager.LoadNodeCredentials(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("this node's certificate: %w (a node made before TLS cannot resume: join it again with a fresh --data-dir)", err)
		}
		if d.gossipKeys, err = loadGossipKeys(cfg.DataDir); err != nil {
			return nil, fmt.Errorf("gossip keys: %w", err)
		}
		if err = d.serve(); err != nil {
			return nil, err
		}
		hasRaft, herr := manager.HasState(cfg.DataDir)
		if herr != nil {
			return nil, herr
		}
		if hasRaft || d.cfg.ForceNew {
			err = d.startManager(d.cfg.ForceNew)
		}
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// checkMode refuses start modes that do not fit the data directory.
func (d *Daemon) checkMode() error {
	st, dir := d.state, d.cfg.DataDir
	switch {
	case st != nil && (d.cfg.Init || d.cfg.JoinAddr != ""):
		// As swarmd does: the flags that made the node are left in
		// place by service managers (a systemd unit's options), so a
		// restart must resume the node rather than fail.
		flag := "--init"
		if d.cfg.JoinAddr != "" {
			flag = "--join"
		}
		d.log.Warn("data dir already holds a node: resuming it and ignoring "+flag+" (use an empty --data-dir for a new node)",
			"data_dir", dir, "node", st.NodeID, "cluster", st.ClusterID)
		d.cfg.Init, d.cfg.JoinAddr, d.cfg.Token = false, "", ""
	case st == nil && d.cfg.ForceNew:
		return fmt.Errorf("--force-new-cluster needs the data dir of a former manager; %s holds no node", dir)
	case st == nil && !d.cfg.Init && d.cfg.JoinAddr == "":
		return fmt.Errorf("data dir %s holds no node: start with --init to create a cluster or --join ADDR --token TOKEN to join one", dir)
	}
	if d.cfg.ForceNew {
		has, err := manager.HasState(dir)
		if err != nil {
			return err
		}
		if !has {
			return fmt.Errorf("--force-new-cluster: node %s in %s was never a manager (no raft state)", st.NodeID, dir)
		}
	}
	return nil
}

// openPort opens the node's TCP port (gRPC and Raft share it, all TLS)
// and settles the advertised address; the port is served (serve) once the
// node has its certificate.
func (d *Daemon) openPort() error {
	ln, err := net.Listen("tcp", d.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", d.cfg.ListenAddr, err)
	}
	adv := d.cfg.AdvertiseAddr
	if adv == "" {
		if adv, err = advertiseAddr(ln.Addr()); err != nil {
			ln.Close()
			return err
		}
		d.cfg.AdvertiseAddr = adv
	}
	if _, err := net.ResolveTCPAddr("tcp", adv); err != nil {
		ln.Close()
		return fmt.Errorf("--advertise-addr %s: %w", adv, err)
	}
	d.ln = ln
	return nil
}

// serve starts serving the TCP port with the node's credentials (every
// call authorized) and the local unix socket (root only), and registers
// the services.
func (d *Daemon) serve() error {
	advAddr, err := net.ResolveTCPAddr("tcp", d.cfg.AdvertiseAddr)
	if err != nil {
		return err
	}
	d.tr = manager.NewTransport(d.ln, advAddr, d.creds, func() authz.Membership {
		if m := d.currentManager(); m != nil {
			return m
		}
		if r := d.removed.Load(); r != nil {
			return *r
		}
		return nil
	})
	d.grpc = d.tr.GRPC
	d.logs = agent.NewLogServer()
	api.RegisterLogsServer(d.grpc, d.logs)
	resolve := func(pick func(*manager.Manager) any) func() (any, error) {
		return func() (any, error) {
			m := d.currentManager()
			if m == nil {
				return nil, errNotManager
			}
			return pick(m), nil
		}
	}
	manager.Gate(d.grpc, &api.Control_ServiceDesc, resolve(func(m *manager.Manager) any { return m.Control() }),
		func(ctx context.Context, method string, call func(context.Context) (any, error)) (any, error) {
			m := d.currentManager()
			if m == nil {
				return nil, errNotManager
			}
			return m.AroundControl(ctx, method, call)
		})
	manager.Gate(d.grpc, &api.Membership_ServiceDesc, resolve(func(m *manager.Manager) any { return m.Membership() }), nil)
	manager.Gate(d.grpc, &api.Raft_ServiceDesc, resolve(func(m *manager.Manager) any { return m.RaftService() }), nil)
	manager.Gate(d.grpc, &api.Dispatcher_ServiceDesc, resolve(func(m *manager.Manager) any { return m.Dispatcher() }), nil)
	manager.Gate(d.grpc, &api.NodeCA_ServiceDesc, resolve(func(m *manager.Manager) any { return m.NodeCA() }), nil)
	api.RegisterLocalNodeServer(d.grpc, &localNode{d: d})
	go d.grpc.Serve(d.tr.Mux.GRPCListener())
	sock := d.cfg.SocketPath
	if sock == "" {
		sock = filepath.Join(d.cfg.DataDir, "shoal.sock")
	}
	_ = os.Remove(sock)
	// Created 0600 from the start: no other user may connect, even
	// between bind and chmod.
	old := syscall.Umask(0o177)
	d.unix, err = net.Listen("unix", sock)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("listen on unix socket %s: %w", sock, err)
	}
	go d.grpc.Serve(d.unix)
	return nil
}

func (d *Daemon) currentManager() *manager.Manager {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.manager
}

// Manager returns the node's manager, nil on a worker.
func (d *Daemon) Manager() *manager.Manager { return d.currentManager() }

// Addr is the node's advertised address.
func (d *Daemon) Addr() string { return d.cfg.AdvertiseAddr }

// NodeID is the node's ID.
func (d *Daemon) NodeID() string { return d.state.NodeID }

// Cluster returns the cluster created by --init (nil otherwise).
func (d *Daemon) Cluster() *api.Cluster { return d.cluster }

func (d *Daemon) managerConfig(force bool) manager.Config {
	var expiry *int64
	if d.cfg.CertExpiry != 0 {
		e := int64(d.cfg.CertExpiry)
		expiry = &e
	}
	return manager.Config{
		NodeID:          d.state.NodeID,
		Addr:            d.cfg.AdvertiseAddr,
		DataDir:         d.cfg.DataDir,
		StreamLayer:     d.tr.Mux.StreamLayer(),
		Dial:            d.dial,
		DialNode:        manager.Dialer(d.creds, ca.ExpectNode),
		ClusterID:       d.clusterID,
		RootCA:          d.root,
		CertExpiry:      expiry,
		CutNode:         d.tr.Mux.Cut,
		Description:     d.desc,
		Availability:    d.cfg.Availability,
		HeartbeatPeriod: d.cfg.HeartbeatPeriod,
		ForceNewCluster: force,
		// Simulated tasks name images nobody pulls: resolve only for
		// real containers.
		ResolveImages:      d.cfg.Runtime == "containerd",
		InsecureRegistries: d.cfg.Containerd.InsecureRegistries,
		DefaultAddressPool: d.cfg.DefaultAddressPool,
		SubnetSize:         d.cfg.SubnetSize,
		Logger:             d.log,
	}
}

// startManager starts the manager role from the data directory's state.
func (d *Daemon) startManager(force bool) error {
	m, err := manager.New(d.managerConfig(force))
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.manager = m
	d.mu.Unlock()
	d.log.Info("manager started", "node", d.state.NodeID, "addr", d.cfg.AdvertiseAddr, "force_new_cluster", force)
	return nil
}

// stopManager stops the manager role; wipe also deletes its Raft state
// (after a demotion, so a restart does not resume as a manager).
func (d *Daemon) stopManager(wipe bool) {
	d.mu.Lock()
	m := d.manager
	d.manager = nil
	d.mu.Unlock()
	if m == nil {
		return
	}
	_ = m.Stop()
	if wipe {
		_ = os.RemoveAll(filepath.Join(d.cfg.DataDir, "raft"))
	}
}

// runAgent keeps the heartbeat session and acts on role changes until ctx
// ends.
func (d *Daemon) runAgent(ctx context.Context) error {
	managers := d.state.Managers
	if m := d.currentManager(); m != nil {
		managers = append([]string{d.cfg.AdvertiseAddr}, managers...)
	}
	host, err := d.startOverlay(ctx, managers)
	if err != nil {
		return err
	}
	if host != nil {
		d.overlay.Store(host)
		defer func() {
			d.overlay.Store(nil)
			if d.cfg.Cleanup {
				if err := host.Cleanup(); err != nil {
					d.log.Warn("overlay: clean up", "err", err)
				}
			}
			host.Close()
		}()
	}
	exec, err := d.executor(ctx, host)
	if err != nil {
		return err
	}
	d.logs.SetReader(exec)
	if e, ok := exec.(*ctrd.Executor); ok {
		d.ctrdExec.Store(e)
	}
	a := agent.New(agent.Config{
		NodeID:      d.state.NodeID,
		Addr:        d.cfg.AdvertiseAddr,
		Description: d.desc,
		Managers:    managers,
		Dial:        d.dial,
		Period:      d.cfg.HeartbeatPeriod,
		Logger:      d.log,
		Role: func() api.NodeRole {
			if d.currentManager() != nil {
				return api.NodeRole_NODE_ROLE_MANAGER
			}
			return api.NodeRole_NODE_ROLE_WORKER
		},
		OnResponse: func(resp *api.HeartbeatResponse) { d.onHeartbeat(resp) },
		Report:     d.report,
		Executor:   exec,
		StateDir:   d.cfg.DataDir,
		Overlay:    overlayOf(host),
	})
	go d.keepCertificate(ctx)
	err = a.Run(ctx)
	if d.leaving.Load() {
		return nil
	}
	if errors.Is(err, agent.ErrRemoved) {
		d.log.Error("this node was removed from the cluster; stopping. Join it again with a fresh --data-dir")
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// onHeartbeat acts on the managers' answer: start the manager role when
// promoted, stop it once the leader has taken this node out of the Raft
// group after a demotion, and remember the managers' addresses.
func (d *Daemon) onHeartbeat(resp *api.HeartbeatResponse) {
	inRaft := false
	var addrs []string
	for _, p := range resp.Managers {
		addrs = append(addrs, p.Addr)
		if p.NodeId == d.state.NodeID {
			inRaft = true
		}
	}
	m := d.currentManager()
	switch {
	case resp.DesiredRole == api.NodeRole_NODE_ROLE_MANAGER && m == nil:
		// A manager needs a manager certificate before its Raft server
		// can speak to the others.
		if !d.ensureRole(api.NodeRole_NODE_ROLE_MANAGER) {
			break
		}
		if err := d.startManager(false); err != nil {
			d.log.Error("promotion: start manager", "err", err)
		}
	case resp.DesiredRole == api.NodeRole_NODE_ROLE_WORKER && m != nil && !inRaft:
		d.log.Info("demoted: stopping the manager role")
		d.stopManager(true)
		d.ensureRole(api.NodeRole_NODE_ROLE_WORKER)
	case resp.DesiredRole == api.NodeRole_NODE_ROLE_WORKER && m == nil:
		d.ensureRole(api.NodeRole_NODE_ROLE_WORKER)
	}
	d.setGossipKeys(resp.GossipKeys)
	d.followRoots(resp.RootCa, resp.SigningCa)
	d.followRemovals(resp.RemovedNodes)
	if host := d.overlay.Load(); host != nil {
		if err := host.SetIngress(resp.Ingress, resp.Attachments); err != nil {
			d.log.Warn("overlay: routing mesh", "err", err)
		}
	}
	if len(addrs) > 0 && !equal(addrs, d.state.Managers) {
		d.state.Managers = addrs
		if err := saveState(d.cfg.DataDir, d.state); err != nil {
			d.log.Warn("save node state", "err", err)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// stop stops everything the daemon started. Safe on a partial start.
func (d *Daemon) stop() {
	if d.grpc != nil {
		done := make(chan struct{})
		go func() { d.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			d.grpc.Stop()
		}
	}
	d.stopManager(false)
	if d.tr != nil {
		d.tr.Mux.Close()
	} else if d.ln != nil {
		d.ln.Close()
	}
	if d.unix != nil {
		d.unix.Close()
	}
	if d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
}

// executor builds the task runtime the daemon was asked for.
func (d *Daemon) executor(ctx context.Context, host *overlay.Host) (execrt.Executor, error) {
	if d.cfg.Runtime == "containerd" {
		cc := d.cfg.Containerd
		if host != nil {
			cc.Network = host
		}
		if cc.StateDir == "" {
			cc.StateDir = filepath.Join(d.cfg.DataDir, "containerd")
		}
		cc.Logger = d.log
		if cc.InitPath == "" {
			cc.InitPath = staticSelf(d.log)
		}
		e, err := ctrd.New(ctx, cc)
		if err != nil {
			return nil, fmt.Errorf("--runtime containerd: %w", err)
		}
		return e, nil
	}
	sc := d.cfg.Simulated
	sc.Description = d.desc
	return simulated.New(sc), nil
}

// staticSelf returns this binary's path when it is statically linked, so
// it can serve as containers' init (`shoal init`); "" otherwise (tasks
// that ask for --init are then rejected with a message).
func staticSelf(log *slog.Logger) string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := elf.Open(self)
	if err != nil {
		return ""
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			log.Info("this shoal binary is dynamically linked: tasks cannot use --init (build with CGO_ENABLED=0)")
			return ""
		}
	}
	return self
}

// memoryBytes reads the machine's memory from /proc/meminfo (0 if unknown).
func memoryBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int64
	if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err != nil {
		return 0
	}
	return kb * 1024
}
