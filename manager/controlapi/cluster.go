package controlapi

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoalhq/shoal/manager/ca"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// GetClusterInfo returns the cluster object (nil before the cluster is
// initialized), the Raft members as RaftInfo reports them, the answering
// node's ID, the store's applied index and how many nodes, services and
// tasks the store holds. The response includes the join tokens (computed
// from the root CA; the caller's role is checked by the server's
// interceptor) but never the CA key or the gossip keys.
func (s *Server) GetClusterInfo(ctx context.Context, _ *api.GetClusterInfoRequest) (*api.GetClusterInfoResponse, error) {
	resp := &api.GetClusterInfoResponse{
		Members: s.members(),
		NodeId:  s.nodeID(),
	}
	s.store.View(func(tx store.ReadTx) {
		if clusters := tx.FindClusters(store.All()); len(clusters) > 0 {
			resp.Cluster = clusters[0]
		}
		resp.Nodes = uint64(len(tx.FindNodes(store.All())))
		resp.Services = uint64(len(tx.FindServices(store.All())))
		resp.Tasks = uint64(len(tx.FindTasks(store.All())))
	})
	var err error
	if resp.Cluster, err = redactCluster(resp.Cluster, true); err != nil {
		return nil, err
	}
	// Read after the View: the counts are at least this recent.
	resp.StoreHash, resp.AppliedIndex = s.store.HashAndIndex()
	return resp, nil
}

// UpdateCluster replaces the cluster spec and, when asked, starts a
// rotation of the gossip key (FailedPrecondition while one is going) and
// rotates the
// worker and/or manager join token (a rotated token is a fresh
// new nonce for the token's secret; the old one stops admitting new nodes
// at once, nodes already in the cluster are unaffected). cluster_id may be empty for "the
// cluster". version must be the cluster's current Meta.Version. A nil
// spec keeps the current spec (to rotate a token alone); a spec is
// otherwise validated (see ValidateClusterSpec) and stored as given.
func (s *Server) UpdateCluster(ctx context.Context, req *api.UpdateClusterRequest) (*api.UpdateClusterResponse, error) {
	if req.GetSpec() != nil {
		if err := ValidateClusterSpec(req.GetSpec()); err != nil {
			return nil, ToStatus(err)
		}
	}
	var id string
	err := s.store.Update(ctx, func(tx store.Tx) error {
		cur, err := findCluster(tx, req.GetClusterId())
		if err != nil {
			return err
		}
		id = cur.GetId()
		if err := checkVersion("cluster", id, cur.GetMeta().GetVersion(), req.GetVersion()); err != nil {
			return err
		}
		c := clone(cur)
		if req.GetSpec() != nil {
			c.Spec = clone(req.GetSpec())
		}
		if req.GetRotateRootCa() {
			if err := startRootRotation(c, req); err != nil {
				return err
			}
		}
		if req.GetRotateGossipKey() {
			if err := StartGossipKeyRotation(c); err != nil {
				return status.Error(codes.FailedPrecondition, err.Error())
			}
		}
		if req.GetRotateWorkerToken() || req.GetRotateManagerToken() {
			root, err := ClusterRoot(c)
			if err != nil {
				return err
			}
			for role, rotate := range map[ca.Role]bool{ca.RoleWorker: req.GetRotateWorkerToken(), ca.RoleManager: req.GetRotateManagerToken()} {
				if rotate {
					if err := RotateJoinToken(c.RootCa, root, role); err != nil {
						return err
					}
				}
			}
		}
		return tx.UpdateCluster(c)
	})
	if err != nil {
		return nil, writeErr("update cluster", err)
	}
	var c *api.Cluster
	s.store.View(func(tx store.ReadTx) { c = tx.GetCluster(id) })
	if c == nil {
		return nil, notFoundf("cluster %s not found (it was removed after the update)", id)
	}
	out, err := redactCluster(c, true)
	if err != nil {
		return nil, err
	}
	return &api.UpdateClusterResponse{Cluster: out}, nil
}

// startRootRotation starts a root rotation in c with the request's
// certificate and key, or a generated root.
func startRootRotation(c *api.Cluster, req *api.UpdateClusterRequest) error {
	var next *ca.RootCA
	var err error
	switch {
	case len(req.GetRootCaCert()) == 0 && len(req.GetRootCaKey()) == 0:
		next, err = ca.NewRootCA(time.Now())
	case len(req.GetRootCaCert()) == 0 || len(req.GetRootCaKey()) == 0:
		return invalidf("rotate root CA: give both the certificate and its key, or neither for a generated root")
	default:
		next, err = ca.ParseRootCA(req.GetRootCaCert(), req.GetRootCaKey())
		if err != nil {
			return invalidf("rotate root CA: %v", err)
		}
	}
	if err != nil {
		return err
	}
	if err := StartRootRotation(c, next); err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return nil
}

// findCluster returns the cluster with the ID, or the only cluster when
// id is empty.
func findCluster(tx store.ReadTx, id string) (*api.Cluster, error) {
	if id == "" {
		clusters := tx.FindClusters(store.All())
		if len(clusters) == 0 {
			return nil, preconditionf("the cluster is not initialized yet: run `shoal daemon --init` on the first manager")
		}
		return clusters[0], nil
	}
	c := tx.GetCluster(id)
	if c == nil {
		return nil, notFoundf("cluster %s not found", id)
	}
	return c, nil
}

// ValidateClusterSpec checks a cluster spec and returns nil or a
// *FieldError: task_history_retention_limit is not negative, and
// heartbeat_period, heartbeat_grace_periods and snapshot_interval, where
// set, are positive (unset
// means the default; zero would stop heartbeats or snapshots).
func ValidateClusterSpec(spec *api.ClusterSpec) error {
	if v := spec.TaskHistoryRetentionLimit; v != nil && *v < 0 {
		return fieldErr("task_history_retention_limit", "must not be negative, got %d (0 keeps no dead tasks; unset means 5)", *v)
	}
	if v := spec.HeartbeatPeriod; v != nil && *v <= 0 {
		if err := nonNegativeDuration("heartbeat_period", *v); err != nil {
			return err
		}
		return fieldErr("heartbeat_period", "must be positive, got 0: unset it for the default of 5s")
	}
	if v := spec.HeartbeatGracePeriods; v != nil && *v == 0 {
		return fieldErr("heartbeat_grace_periods", "must be positive, got 0: unset it for the default of 3 periods")
	}
	if v := spec.CertExpiry; v != nil && (time.Duration(*v) < ca.MinCertLifetime || time.Duration(*v) > ca.RootLifetime/2) {
		return fieldErr("cert_expiry", "must be between %s and %s, got %s", ca.MinCertLifetime, ca.RootLifetime/2, time.Duration(*v))
	}
	if v := spec.SnapshotInterval; v != nil && *v == 0 {
		return fieldErr("snapshot_interval", "must be positive, got 0: unset it for the default of 10000 entries")
	}
	return validateLabels("annotations.labels", spec.GetAnnotations().GetLabels())
}
