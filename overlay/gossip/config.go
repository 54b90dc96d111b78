package gossip

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is the port memberlist listens on (TCP and UDP) when
// Config.BindAddr gives none.
const DefaultPort = 7946

// DefaultLabel is the memberlist label of Shoal's gossip: packets and
// streams carrying another label (another cluster's gossip, another
// program's memberlist) are dropped.
const DefaultLabel = "shoal-endpoints"

// maxLabelBytes bounds Config.Label so that the largest delta still fits
// in a gossip packet. memberlist packs broadcasts into UDPBufferSize
// (1400) bytes less its compound header (2), the label header (2 + the
// label) and the encryption overhead (29: version byte, nonce, GCM tag),
// and frames each of our messages with 3 bytes: 1400 - 2 - 2 - 29 - 3 -
// maxDeltaBytes (1200) = 164. A longer label would leave the largest
// deltas unsent.
const maxLabelBytes = 1400 - 2 - 2 - 29 - 3 - maxDeltaBytes

// LAN timing defaults: a dead host's entries leave every table within a
// few seconds in a cluster of a few hundred hosts (see doc.go for the
// arithmetic and the measured numbers).
const (
	DefaultProbeInterval           = 500 * time.Millisecond
	DefaultProbeTimeout            = 250 * time.Millisecond
	DefaultSuspicionMult           = 3
	DefaultSuspicionMaxTimeoutMult = 3
	DefaultGossipInterval          = 100 * time.Millisecond
	DefaultGossipNodes             = 4
	DefaultRetransmitMult          = 4
	DefaultPushPullInterval        = 30 * time.Second
	DefaultTCPTimeout              = 5 * time.Second
	DefaultReconnectInterval       = 5 * time.Second
	DefaultReconnectTimeout        = 24 * time.Hour
)

// Internal cadences, not worth a knob.
const (
	// maintainInterval is how often the table sweeps orphans, reaps
	// departures and considers a reconnect.
	maintainInterval = time.Second
	// orphanGrace is how long the table keeps entries of a node that
	// memberlist does not list as alive (entries relayed before the node's
	// own alive message, or by a peer that missed its death) before it
	// treats the node as departed.
	orphanGrace = 5 * time.Second
	// departureTTL is how long a departure keeps refusing the departed
	// incarnation's data; memberlist retransmits a message for well under
	// a minute, and later relays are caught by the orphan sweep.
	departureTTL = 10 * time.Minute
	// deadNodeReclaimTime lets a host that died come back under its name
	// with a new underlay address after this long.
	deadNodeReclaimTime = 10 * time.Second
)

// Config configures a Table. Zero timing knobs take the LAN defaults.
type Config struct {
	// NodeName names this host in the gossip; unique in the cluster and
	// stable across restarts (the agent uses its node ID). Required.
	NodeName string
	// BindAddr is this host's underlay address, where memberlist listens
	// (TCP and UDP) and which it advertises to its peers. The address is
	// required and must be one specific IP (not 0.0.0.0 or ::); port 0
	// means DefaultPort.
	BindAddr netip.AddrPort
	// Logger receives the table's and memberlist's messages; nil discards
	// them.
	Logger *slog.Logger
	// Label separates gossip clusters sharing a network; "" means
	// DefaultLabel. Every member of a cluster must use the same label. It
	// travels in clear and is authenticated with the keys; at most 164
	// bytes.
	Label string
	// Keys are the cluster's gossip keys, as the managers hand them out:
	// each exactly KeySize (32) bytes, for AES-256-GCM, none listed twice.
	// Keys[0], the primary, encrypts everything this node sends; every key
	// is tried on what it receives. At least one is required: gossip is
	// never sent or accepted in clear. Start copies them; change them
	// later with Table.SetKeys (see the rotation protocol in the package
	// documentation). They are secret: do not log a Config.
	Keys [][]byte
	// Incarnation orders this run of the node after its previous runs:
	// entries gossiped by a run with a lower incarnation are dropped when
	// this one's become known. 0 means the start time in nanoseconds,
	// which grows across restarts unless the clock jumps back; an agent
	// that persists a counter can pass it instead. (Should gossip of a
	// previous run carry a higher incarnation anyway, the table moves
	// above it and re-announces its entries.)
	Incarnation uint64

	// ProbeInterval is how often memberlist probes a random peer.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for a direct ack before
	// asking other peers to probe indirectly; below ProbeInterval.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspected peer may refute before it
	// is declared dead: SuspicionMult × log10(members) × ProbeInterval,
	// reached once SuspicionMult-2 other peers confirm the suspicion.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion time when no peer
	// confirms: SuspicionMaxTimeoutMult times the above.
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often deltas and membership news are sent to
	// GossipNodes random peers.
	GossipInterval time.Duration
	GossipNodes    int
	// RetransmitMult: each delta is sent RetransmitMult × log10(members+1)
	// times by every node that learns it.
	RetransmitMult int
	// PushPullInterval is how often a node exchanges its full table with a
	// random peer (anti-entropy); memberlist stretches it above 32 members.
	PushPullInterval time.Duration
	// TCPTimeout bounds a push-pull or join with one peer.
	TCPTimeout time.Duration
	// ReconnectInterval is how often the table tries to rejoin one peer
	// that failed (not one that left), so that partitions heal and hosts
	// that come back on their address rejoin without the managers.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed peer is retried.
	ReconnectTimeout time.Duration

	// wrapTransport, set by tests, wraps memberlist's network transport
	// (to inject faults).
	wrapTransport func(*memberlist.NetTransport) memberlist.NodeAwareTransport
}

// withDefaults validates c and fills in its zero fields.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.NodeName == "" {
		return bad("empty NodeName: give every host a unique, stable name")
	}
	if len(c.NodeName) > 255 {
		return bad("NodeName of %d bytes: keep it under 256", len(c.NodeName))
	}
	addr := c.BindAddr.Addr().Unmap()
	if !addr.IsValid() || addr.IsUnspecified() {
		return bad("BindAddr %q: give the host's underlay IP address (not unspecified)", c.BindAddr)
	}
	port := c.BindAddr.Port()
	if port == 0 {
		port = DefaultPort
	}
	c.BindAddr = netip.AddrPortFrom(addr, port)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Label == "" {
		c.Label = DefaultLabel
	}
	if len(c.Label) > maxLabelBytes {
		return bad("Label of %d bytes: keep it to %d, so that the largest endpoint still fits in an encrypted gossip packet", len(c.Label), maxLabelBytes)
	}
	keys, err := validateKeys(c.Keys)
	if err != nil {
		return Config{}, err
	}
	c.Keys = keys
	if c.Incarnation == 0 {
		c.Incarnation = uint64(time.Now().UnixNano())
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ProbeInterval", &c.ProbeInterval, DefaultProbeInterval},
		{"ProbeTimeout", &c.ProbeTimeout, DefaultProbeTimeout},
		{"GossipInterval", &c.GossipInterval, DefaultGossipInterval},
		{"PushPullInterval", &c.PushPullInterval, DefaultPushPullInterval},
		{"TCPTimeout", &c.TCPTimeout, DefaultTCPTimeout},
		{"ReconnectInterval", &c.ReconnectInterval, DefaultReconnectInterval},
		{"ReconnectTimeout", &c.ReconnectTimeout, DefaultReconnectTimeout},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return bad("%s %v is negative: use 0 for the default %v", d.name, *d.v, d.def)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"SuspicionMult", &c.SuspicionMult, DefaultSuspicionMult},
		{"SuspicionMaxTimeoutMult", &c.SuspicionMaxTimeoutMult, DefaultSuspicionMaxTimeoutMult},
		{"GossipNodes", &c.GossipNodes, DefaultGossipNodes},
		{"RetransmitMult", &c.RetransmitMult, DefaultRetransmitMult},
	}
	for _, n := range ints {
		if *n.v < 0 {
			return bad("%s %d is negative: use 0 for the default %d", n.name, *n.v, n.def)
		}
		if *n.v == 0 {
			*n.v = n.def
		}
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return bad("ProbeTimeout %v must be below ProbeInterval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	return c, nil
}

// memberlistConfig returns memberlist's configuration for c (defaults
// applied), with the table's delegates and keyring. Encryption is
// enforced both ways: memberlist drops what arrives in clear or under a
// key not in kr, and never sends in clear.
func (c Config) memberlistConfig(d memberlist.Delegate, ev memberlist.EventDelegate, kr *memberlist.Keyring) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.NodeName
	mc.BindAddr = c.BindAddr.Addr().String()
	mc.BindPort = int(c.BindAddr.Port())
	mc.AdvertiseAddr = mc.BindAddr
	mc.AdvertisePort = mc.BindPort
	mc.Label = c.Label
	mc.Keyring = kr
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.SuspicionMult = c.SuspicionMult
	mc.SuspicionMaxTimeoutMult = c.SuspicionMaxTimeoutMult
	mc.GossipInterval = c.GossipInterval
	mc.GossipNodes = c.GossipNodes
	mc.RetransmitMult = c.RetransmitMult
	mc.PushPullInterval = c.PushPullInterval
	mc.TCPTimeout = c.TCPTimeout
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	mc.Delegate = d
	mc.Events = ev
	mc.Logger = newStdLogger(c.Logger)
	return mc
}
