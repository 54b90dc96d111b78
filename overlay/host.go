// Package overlay is the data plane of one host: it attaches tasks'
// network namespaces to overlay networks (a VXLAN device and a bridge per
// network, a veth per task, package vxlan and sandbox), shares the
// endpoints of running tasks with the other hosts (package gossip), and
// keeps what every local container sees in step with that shared table:
// VXLAN forwarding entries (vxlan.SetRemotes), the services' virtual IPs
// load-balanced by nftables in the container's namespace (package vip),
// and the answers of the DNS server at 127.0.0.11 inside it (package dns).
//
// The agent drives a Host: UpdateNetworks with the networks its
// assignments carry, Attach/Detach from the executor around a task's
// network namespace, Publish once a task runs (and is healthy),
// Withdraw before it is stopped, and SetGossipKeys whenever the managers
// send new gossip keys. Everything the managers decide arrives that way;
// what the other hosts run arrives by gossip, so discovery and load
// balancing keep working while the managers have no quorum.
package overlay

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shoalhq/shoal/overlay/bridge"
	"github.com/shoalhq/shoal/overlay/dns"
	"github.com/shoalhq/shoal/overlay/gossip"
	"github.com/shoalhq/shoal/overlay/vxlan"
	"github.com/shoalhq/shoal/proto/api"
)

// ErrUnknownNetwork means a task attaches to a network the host has not
// been told about (yet): the caller should retry once the assignment
// carrying it has arrived.
var ErrUnknownNetwork = errors.New("overlay: network not known on this host")

// Config configures a Host.
type Config struct {
	// NodeID names this host in the gossip (stable across restarts).
	NodeID string
	// VTEP is the host's underlay address: VXLAN source, gossip address.
	VTEP netip.Addr
	// GossipPort is the gossip port (TCP and UDP); 0 means 7946.
	GossipPort int
	// StateDir holds the containers' resolv.conf files.
	StateDir string
	// HostResolvConf is the host's resolv.conf (its search domains and
	// resolvers); nil reads /etc/resolv.conf.
	HostResolvConf []byte
	// Logger; slog.Default() when nil.
	Logger *slog.Logger
	// BridgeSubnet is the subnet of the node-local bridge network (tasks
	// with no network); zero means 172.18.0.0/16.
	BridgeSubnet netip.Prefix
	// GCInterval is how often the host looks for devices no task uses
	// (removed when found twice in a row); 0 means 30 s.
	GCInterval time.Duration
	// GossipKeys are the cluster's gossip keys from the managers (each
	// gossip.KeySize bytes, the primary first; see gossip.Config.Keys).
	// Required: the gossip is always encrypted. Change them later with
	// SetGossipKeys.
	GossipKeys [][]byte
	// Gossip, when set, adjusts the gossip config after the fields above
	// are applied (tests: timing).
	Gossip func(*gossip.Config)
}

// Host is one host's data plane. Its methods are safe for concurrent use.
type Host struct {
	cfg    Config
	vx     *vxlan.Manager
	table  *gossip.Table
	dns    *dns.Server
	bridge *bridge.Network

	mu       sync.Mutex
	networks map[string]*api.Network
	tasks    map[string]*local   // attached tasks by ID
	endpoint map[string][]string // published endpoint IDs by task ID
	// services remembers every service seen on a network (by network and
	// service ID), so its VIP and name outlive its last task.
	services map[string]map[string]dns.Service
	// ingress is the routing-mesh network and ingressAddr this node's
	// address on it, once the managers have said (SetIngress).
	ingress     *api.Network
	ingressAddr netip.Prefix
	// lastEps are the endpoints each network was last programmed with,
	// linger those that left it recently (see withLingering).
	lastEps map[string][]gossip.Endpoint
	linger  map[string]map[netip.Addr]lingering
	kick    chan struct{}
	done    chan struct{}
	closed  sync.Once
	wg      sync.WaitGroup
}

// local is a task attached on this host.
type local struct {
	task   *api.Task
	nsPath string
	// programmed is the VIP rules last applied, as logged (under
	// Host.mu).
	programmed string
}

// New starts the host's data plane: the VXLAN manager, the gossip table
// (bound on VTEP) and the DNS server. It fails when the VTEP is not an
// address of this host or the gossip port is taken, and when
// cfg.GossipKeys are missing or unusable (gossip.ErrInvalidKeys).
func New(cfg Config) (*Host, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.GossipPort == 0 {
		cfg.GossipPort = gossip.DefaultPort
	}
	if cfg.HostResolvConf == nil {
		cfg.HostResolvConf, _ = os.ReadFile("/etc/resolv.conf")
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "resolv"), 0o755); err != nil {
		return nil, fmt.Errorf("overlay: state folder: %w", err)
	}
	vx, err := vxlan.New(vxlan.Config{VTEP: cfg.VTEP})
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	gcfg := gossip.Config{
		NodeName: cfg.NodeID, BindAddr: netip.AddrPortFrom(cfg.VTEP, uint16(cfg.GossipPort)),
		Logger: cfg.Logger, Keys: cfg.GossipKeys,
	}
	if cfg.Gossip != nil {
		cfg.Gossip(&gcfg)
	}
	table, err := gossip.Start(gcfg)
	if err != nil {
		vx.Close()
		return nil, fmt.Errorf("overlay: %w", err)
	}
	srv, err := dns.New(dns.Config{Upstreams: dns.UpstreamsFromResolvConf(cfg.HostResolvConf), Logger: cfg.Logger})
	if err != nil {
		table.Shutdown()
		vx.Close()
		return nil, fmt.Errorf("overlay: %w", err)
	}
	br, err := bridge.Open(bridge.Config{Subnet: cfg.BridgeSubnet, StateFile: filepath.Join(cfg.StateDir, "bridge.json")})
	if err != nil {
		srv.Close()
		table.Shutdown()
		vx.Close()
		return nil, fmt.Errorf("overlay: node-local bridge network: %w", err)
	}
	h := &Host{
		cfg: cfg, vx: vx, table: table, dns: srv, bridge: br,
		networks: map[string]*api.Network{},
		tasks:    map[string]*local{},
		endpoint: map[string][]string{},
		services: map[string]map[string]dns.Service{},
		lastEps:  map[string][]gossip.Endpoint{},
		linger:   map[string]map[netip.Addr]lingering{},
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	h.loadNetworks()
	h.wg.Add(2)
	go h.follow()
	go h.collectGarbage()
	return h, nil
}

// Join joins the gossip of the hosts at addrs (HOST or HOST:PORT; the
// gossip port is added when missing). It returns how many answered.
func (h *Host) Join(addrs []string) (int, error) {
	var peers []string
	for _, a := range addrs {
		if ap, err := netip.ParseAddrPort(a); err == nil {
			a = ap.Addr().String()
		}
		peers = append(peers, fmt.Sprintf("%s:%d", a, h.cfg.GossipPort))
	}
	return h.table.Join(peers)
}

// SetGossipKeys installs the gossip keys the managers sent: keys[0]
// becomes the primary (it encrypts), every key decrypts, and keys no
// longer listed are dropped (see gossip.Table.SetKeys and the rotation
// protocol in package gossip). It errs with gossip.ErrInvalidKeys, and
// changes nothing then. Setting the keys already installed is a no-op.
func (h *Host) SetGossipKeys(keys [][]byte) error { return h.table.SetKeys(keys) }

// Members returns how many hosts this host's gossip knows, itself
// included.
func (h *Host) Members() int { return len(h.table.Members()) }

// UpdateNetworks records the networks the host's tasks attach to (all of
// them when complete) and forgets those removed.
func (h *Host) UpdateNetworks(update []*api.Network, remove []string, complete bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if complete {
		h.networks = map[string]*api.Network{}
		if h.ingress != nil {
			h.networks[h.ingress.GetId()] = h.ingress
		}
	}
	for _, n := range update {
		h.networks[n.GetId()] = n
	}
	for _, id := range remove {
		delete(h.networks, id)
	}
	if err := h.saveNetworks(); err != nil {
		h.cfg.Logger.Warn("overlay: persist networks", "err", err)
	}
}

// networksFile keeps the known networks, so that a restarted agent can
// attach its running tasks again before the managers answer.
func (h *Host) networksFile() string { return filepath.Join(h.cfg.StateDir, "networks.json") }

// saveNetworks writes the known networks; h.mu is held.
func (h *Host) saveNetworks() error {
	list := &api.AssignmentsMessage{}
	for _, n := range h.networks {
		list.UpdateNetworks = append(list.UpdateNetworks, n)
	}
	b, err := protojson.Marshal(list)
	if err != nil {
		return err
	}
	tmp := h.networksFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, h.networksFile())
}

// loadNetworks reads what saveNetworks wrote (nothing if absent).
func (h *Host) loadNetworks() {
	b, err := os.ReadFile(h.networksFile())
	if err != nil {
		return
	}
	list := &api.AssignmentsMessage{}
	if err := protojson.Unmarshal(b, list); err != nil {
		h.cfg.Logger.Warn("overlay: persisted networks unreadable; waiting for the managers", "err", err)
		return
	}
	for _, n := range list.GetUpdateNetworks() {
		h.networks[n.GetId()] = n
	}
}

// Close leaves the gossip (so peers drop this host's endpoints at once),
// stops the DNS server and the background work. Devices and rules stay:
// containers keep running across an agent restart.
func (h *Host) Close() error {
	var err error
	h.closed.Do(func() {
		close(h.done)
		h.wg.Wait()
		err = errors.Join(h.table.Leave(2*time.Second), h.table.Shutdown(), h.dns.Close(), h.vx.Close(), h.bridge.Close())
	})
	return err
}
