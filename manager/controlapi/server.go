// Package controlapi is the user-facing Control API of a manager: the
// gRPC service the `shoal` command line speaks (api.ControlServer).
//
// Every write is validated here first, then staged in one store
// transaction and proposed through Raft, so a request is applied whole or
// not at all. Writes to existing objects carry the version the client
// read (Meta.Version); a stale version fails with FailedPrecondition
// ("update out of sequence"), and the client reads again and retries.
// Specs are stored exactly as given: the API never fills in defaults or
// otherwise alters the user's intent; other components (orchestrator,
// allocator, dispatcher) act on it and write what they observe into
// status fields.
//
// Errors: this package is the API edge, the only place store sentinels
// become gRPC codes (see ToStatus). Validation failures are
// InvalidArgument with a message naming the field and what to change;
// missing objects NotFound; taken names AlreadyExists; stale versions and
// refusals that depend on the cluster's state FailedPrecondition. Any
// other error from the store (no Raft leader, no quorum) is returned
// wrapped but unconverted, for the server's interceptor to map; for such
// an error the write may or may not have been applied.
//
// Objects are found by exact ID, else by exact name (a node's name is its
// spec name or, when that is empty, its hostname), else by unique ID
// prefix; a name or prefix that matches several objects is refused with
// InvalidArgument listing the candidates.
//
// Objects in responses are copies: the caller may change them.
package controlapi

import (
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// RaftInfo is what the Control API needs of the Raft layer.
type RaftInfo interface {
	// Members returns the current Raft configuration: one entry per
	// manager, with the leader flagged and each member's reachability as
	// seen from the leader (REACHABILITY_UNKNOWN when not known). The
	// result is owned by the caller.
	Members() []*api.RaftMember
	// NodeID is the node ID of the manager answering the request.
	NodeID() string
}

// Server implements api.ControlServer over a MemoryStore. It is safe for
// concurrent use; it keeps no state of its own besides its
// dependencies.
type Server struct {
	api.UnimplementedControlServer

	store  *store.MemoryStore
	raft   RaftInfo
	images ImageResolver // nil: services are written without a digest
}

var _ api.ControlServer = (*Server)(nil)

// NewServer returns a Control API server that reads and writes s and
// asks r about the Raft group. r may be nil (a single-process test
// setup): the cluster then has no members to report and demotion checks
// count managers from the store.
func NewServer(s *store.MemoryStore, r RaftInfo) *Server {
	return &Server{store: s, raft: r}
}

// members returns the Raft configuration, or nil without Raft.
func (s *Server) members() []*api.RaftMember {
	if s.raft == nil {
		return nil
	}
	return s.raft.Members()
}

// nodeID returns the answering manager's node ID, or "" without Raft.
func (s *Server) nodeID() string {
	if s.raft == nil {
		return ""
	}
	return s.raft.NodeID()
}
