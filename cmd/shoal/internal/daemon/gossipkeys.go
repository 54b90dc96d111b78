package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"

	"github.com/shoalhq/shoal/manager"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// gossipKeysFile keeps the gossip keys the managers last sent, beside the
// node's certificate (0600), so a restarted node gossips before it
// reaches a manager.
const gossipKeysFile = "gossip.keys"

func gossipKeysPath(dataDir string) string {
	return filepath.Join(manager.CertDir(dataDir), gossipKeysFile)
}

// loadGossipKeys reads the kept keys (nil when there are none).
func loadGossipKeys(dataDir string) ([][]byte, error) {
	b, err := os.ReadFile(gossipKeysPath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// saveGossipKeys replaces the kept keys.
func saveGossipKeys(dataDir string, keys [][]byte) error {
	b, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	p := gossipKeysPath(dataDir)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// setGossipKeys takes the keys the managers sent: installed in the
// overlay (if it runs) and kept on disk when they changed. Only keys the
// overlay took count as installed (gossipKeyring).
func (d *Daemon) setGossipKeys(keys [][]byte) {
	if len(keys) == 0 {
		return
	}
	d.keysMu.Lock()
	defer d.keysMu.Unlock()
	d.mu.Lock()
	same := slices.EqualFunc(keys, d.gossipKeys, bytes.Equal)
	d.mu.Unlock()
	if same {
		return
	}
	if host := d.overlay.Load(); host != nil {
		if err := host.SetGossipKeys(keys); err != nil {
			d.log.Warn("overlay: gossip keys", "err", err)
			return
		}
	}
	d.mu.Lock()
	d.gossipKeys = keys
	d.mu.Unlock()
	if err := saveGossipKeys(d.cfg.DataDir, keys); err != nil {
		d.log.Warn("save gossip keys", "err", err)
	}
}

// report adds what the managers follow rotations with to a heartbeat:
// the digest of the installed gossip keys, of the trusted roots, and the
// root that issued the node's certificate.
func (d *Daemon) report(req *api.HeartbeatRequest) {
	d.mu.Lock()
	req.GossipKeyring = api.GossipKeyringDigest(d.gossipKeys)
	d.mu.Unlock()
	_, _, roots := d.creds.Material()
	req.TrustedRoots = ca.BundleDigest(roots)
	req.CertIssuer = d.creds.Issuer()
}
