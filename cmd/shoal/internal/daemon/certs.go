package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/shoalhq/shoal/manager"
	"github.com/shoalhq/shoal/manager/authz"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

// renewalWindow is where in a certificate's lifetime a node renews it: at
// a random point between these fractions, so nodes do not all renew at
// once.
const (
	renewFrom = 0.5
	renewTo   = 0.8
	// renewRetry is the pause after a failed renewal.
	renewRetry = 10 * time.Second
)

// renewAt picks when to renew a certificate valid from notBefore to
// notAfter.
func renewAt(notBefore, notAfter time.Time) time.Time {
	life := notAfter.Sub(notBefore)
	f := renewFrom + rand.Float64()*(renewTo-renewFrom)
	return notBefore.Add(time.Duration(float64(life) * f))
}

// keepCertificate renews the node's certificate at a random point between
// 50% and 80% of its lifetime, for as long as ctx lasts; a failed
// renewal is retried.
func (d *Daemon) keepCertificate(ctx context.Context) {
	for {
		leaf := d.creds.Leaf()
		wait := time.Until(renewAt(leaf.NotBefore, leaf.NotAfter))
		if d.cfg.CertRenewInterval > 0 {
			wait = d.cfg.CertRenewInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.renewNow:
			t.Stop()
		case <-t.C:
		}
		for ctx.Err() == nil {
			if _, err := d.renew(ctx); err != nil {
				d.log.Warn("certificate renewal failed; retrying", "err", err, "expires", leaf.NotAfter)
				select {
				case <-ctx.Done():
				case <-time.After(renewRetry):
				}
				continue
			}
			break
		}
	}
}

// renew asks a manager for a new certificate (for a new key), with the
// role the cluster wants this node to have, installs it and writes it to
// the data directory. It returns the role of the new certificate.
func (d *Daemon) renew(ctx context.Context) (ca.Role, error) {
	d.renewMu.Lock()
	defer d.renewMu.Unlock()
	key, csr, err := ca.NewKeyAndCSR(d.state.NodeID)
	if err != nil {
		return "", err
	}
	var last error
	for _, addr := range d.managerAddrs() {
		conn, err := d.dial(addr)
		if err != nil {
			last = err
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := api.NewNodeCAClient(conn).RenewCertificate(cctx, &api.RenewCertificateRequest{Csr: csr})
		cancel()
		conn.Close()
		if err != nil {
			last = fmt.Errorf("%s: %w", addr, err)
			continue
		}
		if err := d.creds.Update(resp.Certificate, key, resp.RootCa); err != nil {
			return "", fmt.Errorf("renewed certificate from %s: %w", addr, err)
		}
		if err := manager.SaveNodeCredentials(d.cfg.DataDir, resp.Certificate, key, resp.RootCa); err != nil {
			return "", fmt.Errorf("save renewed certificate: %w", err)
		}
		id := d.creds.Identity()
		d.log.Info("certificate renewed", "role", id.Role, "expires", d.creds.Leaf().NotAfter)
		return id.Role, nil
	}
	if last == nil {
		last = errors.New("no manager address known")
	}
	return "", last
}

// managerAddrs are the managers to ask, this node first when it is one.
func (d *Daemon) managerAddrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := append([]string(nil), d.state.Managers...)
	if d.manager != nil {
		out = append([]string{d.cfg.AdvertiseAddr}, out...)
	}
	return out
}

// ensureRole renews the certificate when its role is not the one the
// cluster wants (a promotion or a demotion), and reports whether the
// certificate now carries want.
func (d *Daemon) ensureRole(want api.NodeRole) bool {
	role := ca.RoleWorker
	if want == api.NodeRole_NODE_ROLE_MANAGER {
		role = ca.RoleManager
	}
	if d.creds.Identity().Role == role {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got, err := d.renew(ctx)
	if err != nil {
		d.log.Warn("role change: new certificate", "want", role, "err", err)
		return false
	}
	return got == role
}

// followRoots takes the roots bundle the managers sent (a root rotation's
// steps): it becomes the roots the node trusts, and a certificate issued
// by another root than the signing one is renewed at once.
func (d *Daemon) followRoots(bundle []byte, signing string) {
	if len(bundle) == 0 {
		return
	}
	chain, key, roots := d.creds.Material()
	if !bytes.Equal(roots, bundle) {
		if err := d.creds.UpdateRoots(bundle); err != nil {
			d.log.Warn("root CA: the managers' roots", "err", err)
			return
		}
		if err := manager.SaveNodeCredentials(d.cfg.DataDir, chain, key, bundle); err != nil {
			d.log.Warn("root CA: save the roots", "err", err)
		}
		d.log.Info("root CA: trusting the managers' roots", "roots", len(d.creds.Roots().Certs()))
	}
	if signing != "" && d.creds.Issuer() != signing {
		select {
		case d.renewNow <- struct{}{}:
		default:
		}
	}
}

// removedNodes is what a node that is not a manager knows of the nodes
// removed from the cluster (from its heartbeats): its server refuses
// their certificates too.
type removedNodes map[string]bool

// Check implements authz.Membership.
func (r removedNodes) Check(id ca.Identity) (ca.Role, error) {
	if r[id.ID] {
		return "", authz.ErrRemoved
	}
	return id.Role, nil
}

// followRemovals takes the removed nodes the managers sent: they are
// refused from now on, and their open connections to this node cut.
func (d *Daemon) followRemovals(ids []string) {
	old := d.removed.Load()
	next := make(removedNodes, len(ids))
	for _, id := range ids {
		next[id] = true
		if old == nil || !(*old)[id] {
			d.tr.Mux.Cut(id)
		}
	}
	d.removed.Store(&next)
}
