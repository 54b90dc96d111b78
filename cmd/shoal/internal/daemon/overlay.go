package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/shoalhq/shoal/agent"
	"github.com/shoalhq/shoal/overlay"
)

// rejoinInterval is how often a host alone in the gossip tries the
// managers again.
const rejoinInterval = 5 * time.Second

// startOverlay starts the host's data plane when it can work: tasks run
// as containers, the overlay is enabled, and the advertised address is a
// real one (VXLAN and the gossip bind there; a loopback-only node has no
// peers to reach). It joins the gossip through the managers' hosts in
// the background. nil, nil when the overlay does not apply.
func (d *Daemon) startOverlay(ctx context.Context, managers []string) (*overlay.Host, error) {
	if d.cfg.Runtime != "containerd" || !d.cfg.Overlay {
		return nil, nil
	}
	ap, err := netip.ParseAddrPort(d.cfg.AdvertiseAddr)
	if err != nil || ap.Addr().IsLoopback() || !ap.Addr().Is4() {
		d.log.Info("overlay networking is off: it needs an IPv4 --advertise-addr other hosts reach", "advertise_addr", d.cfg.AdvertiseAddr)
		return nil, nil
	}
	d.mu.Lock()
	keys := d.gossipKeys
	d.mu.Unlock()
	host, err := overlay.New(overlay.Config{
		GossipKeys: keys,
		NodeID:     d.state.NodeID,
		VTEP:       ap.Addr(),
		GossipPort: d.cfg.GossipPort,
		StateDir:   filepath.Join(d.cfg.DataDir, "overlay"),
		GCInterval: d.cfg.OverlayGCInterval,
		Logger:     d.log,
	})
	if err != nil {
		return nil, fmt.Errorf("overlay networking (disable with --overlay=false): %w", err)
	}
	go d.joinGossip(ctx, host, ap.Addr(), managers)
	return host, nil
}

// joinGossip joins the gossip through the managers' hosts, and joins
// again whenever the host finds itself alone (it started first, or it
// was cut off), until ctx ends.
func (d *Daemon) joinGossip(ctx context.Context, host *overlay.Host, self netip.Addr, managers []string) {
	for {
		if host.Members() <= 1 {
			var peers []string
			for _, m := range append(managers, d.state.Managers...) {
				if ap, err := netip.ParseAddrPort(m); err == nil && ap.Addr() != self {
					peers = append(peers, ap.Addr().String())
				}
			}
			if len(peers) > 0 {
				if n, err := host.Join(peers); err != nil {
					d.log.Debug("overlay: join gossip", "peers", peers, "joined", n, "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(rejoinInterval):
		}
	}
}

// overlayOf is host as the agent's Overlay (nil stays nil).
func overlayOf(host *overlay.Host) agent.Overlay {
	if host == nil {
		return nil
	}
	return host
}
