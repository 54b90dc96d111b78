package daemon

// How a node comes into a cluster: creating it (--init) or joining it
// (--join), with the certificate the CA gives it.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager"
	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/proto/api"
)

func (d *Daemon) initCluster(ctx context.Context) error {
	var root *ca.RootCA
	if d.cfg.ExternalCACert != "" {
		var err error
		if root, err = manager.LoadExternalCA(d.cfg.ExternalCACert, d.cfg.ExternalCAKey); err != nil {
			return err
		}
	}
	var expiry *int64
	if d.cfg.CertExpiry != 0 {
		e := int64(d.cfg.CertExpiry)
		expiry = &e
	}
	clusterID, nodeID, root, creds, err := manager.NewClusterCredentials(d.cfg.DataDir, root, expiry)
	if err != nil {
		return err
	}
	d.state = &nodeState{NodeID: nodeID, ClusterID: clusterID}
	d.creds, d.root, d.clusterID = creds, root, clusterID
	if err := d.serve(); err != nil {
		return err
	}
	if err := d.startManager(false); err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cluster, err := d.currentManager().Bootstrap(bctx)
	if err != nil {
		return err
	}
	d.root = nil // the store holds it now
	d.cluster = cluster
	d.setGossipKeys(cluster.GetGossipKeys())
	d.state.Managers = []string{d.cfg.AdvertiseAddr}
	return saveState(d.cfg.DataDir, d.state)
}

// JoinTokens are the cluster's join tokens (for the banner after --init).
func (d *Daemon) JoinTokens() (*api.JoinTokens, error) {
	m := d.currentManager()
	if m == nil {
		return nil, errors.New("not a manager")
	}
	return m.JoinTokens()
}

// join asks the cluster at JoinAddr to admit this node: the manager is
// checked against the token's CA digest, the node gets its ID and
// certificate, and a manager then starts its Raft server and asks to be
// made a voter.
func (d *Daemon) join(ctx context.Context) error {
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req := &api.JoinRequest{Addr: d.cfg.AdvertiseAddr, Description: d.desc, Availability: d.cfg.Availability}
	var resp *api.JoinResponse
	err := d.untilAvailable(jctx, "join", func() (err error) {
		resp, d.creds, err = manager.JoinCluster(jctx, d.cfg.JoinAddr, d.cfg.Token, d.cfg.DataDir, req)
		return err
	})
	if err != nil {
		return refused("join "+d.cfg.JoinAddr, err)
	}
	d.state = &nodeState{NodeID: resp.NodeId, ClusterID: resp.ClusterId}
	d.setGossipKeys(resp.GossipKeys)
	for _, p := range resp.Managers {
		d.state.Managers = append(d.state.Managers, p.Addr)
	}
	if err := d.serve(); err != nil {
		return err
	}
	if resp.Role == api.NodeRole_NODE_ROLE_MANAGER {
		if err := d.startManager(false); err != nil {
			return err
		}
		if err := d.joinRaft(jctx); err != nil {
			d.stopManager(true)
			return err
		}
	}
	d.log.Info("joined cluster", "cluster", resp.ClusterId, "node", resp.NodeId, "role", resp.Role.String())
	return saveState(d.cfg.DataDir, d.state)
}

// joinRaft asks the managers to make this manager a Raft voter, retrying
// while the cluster has no leader.
func (d *Daemon) joinRaft(ctx context.Context) error {
	conn, err := d.dial(d.cfg.JoinAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = d.untilAvailable(ctx, "join raft", func() error {
		_, err := api.NewMembershipClient(conn).JoinRaft(ctx, &api.JoinRaftRequest{Addr: d.cfg.AdvertiseAddr})
		return err
	})
	if err != nil {
		return refused("join the managers' Raft group through "+d.cfg.JoinAddr, err)
	}
	return nil
}

// untilAvailable calls fn until it answers something other than
// Unavailable (a cluster electing a leader, a manager still starting) or
// ctx ends, pausing between tries.
func (d *Daemon) untilAvailable(ctx context.Context, what string, fn func() error) error {
	for {
		err := fn()
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			return err
		}
		d.log.Info(what+": cluster not ready, retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// refused words a failed call for the user: a status's message, or the
// error itself.
func refused(what string, err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s refused: %s", what, st.Message())
	}
	return fmt.Errorf("%s: %w", what, err)
}
