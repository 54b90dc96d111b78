package api

import (
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Callers is a set of kinds of caller, as the server tells them apart:
// by the role in the client certificate on TCP, or by the local unix
// socket.
type Callers uint8

// The kinds of caller.
const (
	// CallerManager holds a manager certificate of this cluster.
	CallerManager Callers = 1 << iota
	// CallerWorker holds a worker certificate of this cluster.
	CallerWorker
	// CallerAdmin holds an admin client certificate of this cluster.
	CallerAdmin
	// CallerLocal came through the node's unix socket (root only).
	CallerLocal
	// CallerAnonymous came over TCP with no certificate.
	CallerAnonymous
)

// Access says who may call one RPC.
type Access struct {
	// Callers may call it.
	Callers Callers
	// Self limits a worker to requests naming its own node (the
	// request's node_id must be the node ID in its certificate); managers
	// may name any node, as they forward agents' calls.
	Self bool
}

// methodAccess is the one table of who may call what: every RPC of every
// service the nodes serve has an entry (a test checks), and a method
// missing from it is refused. Keep it next to the services it guards.
var methodAccess = map[string]Access{
	// The user API: managers and admins; the local socket.
	"/shoal.api.Control/*": {Callers: CallerManager | CallerAdmin | CallerLocal},

	// Joining needs only a token; the handler checks it.
	Membership_Join_FullMethodName:     {Callers: CallerAnonymous | CallerWorker | CallerManager | CallerAdmin | CallerLocal},
	Membership_JoinRaft_FullMethodName: {Callers: CallerManager},
	Membership_Leave_FullMethodName:    {Callers: CallerManager | CallerWorker, Self: true},

	// Raft between managers only; the node's own root may ask its
	// manager where Raft stands (read only).
	"/shoal.api.Raft/*":           {Callers: CallerManager},
	Raft_ReadIndex_FullMethodName: {Callers: CallerManager | CallerLocal},
	Raft_Status_FullMethodName:    {Callers: CallerManager | CallerLocal},

	// Agents speak for themselves.
	"/shoal.api.Dispatcher/*":              {Callers: CallerManager | CallerWorker, Self: true},
	NodeCA_RenewCertificate_FullMethodName: {Callers: CallerManager | CallerWorker},

	// One node's own operations: on the node itself only.
	"/shoal.api.LocalNode/*": {Callers: CallerLocal},
	// Managers fetch task logs from the nodes.
	"/shoal.api.Logs/*": {Callers: CallerManager | CallerLocal},
}

// AccessOf returns who may call fullMethod ("/package.Service/Method"):
// its own entry, else its service's ("/package.Service/*"). ok is false
// for a method the table does not know: refuse it.
func AccessOf(fullMethod string) (a Access, ok bool) {
	if a, ok := methodAccess[fullMethod]; ok {
		return a, true
	}
	i := strings.LastIndexByte(fullMethod, '/')
	if i <= 0 {
		return Access{}, false
	}
	a, ok = methodAccess[fullMethod[:i]+"/*"]
	return a, ok
}

// The error detail that marks a call refused because the calling node
// was removed from the cluster: agents stop on it.
const (
	nodeRemovedReason = "NODE_REMOVED"
	nodeRemovedDomain = "shoal.authz"
)

// NodeRemovedError is the PermissionDenied status answering a removed
// node's certificate.
func NodeRemovedError(nodeID string) error {
	st := status.New(codes.PermissionDenied, fmt.Sprintf("node %s was removed from the cluster: its certificate is no longer accepted; join again with a fresh --data-dir", nodeID))
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: nodeRemovedReason, Domain: nodeRemovedDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// IsNodeRemoved reports whether err says the calling node was removed:
// NodeRemovedError, or NotFound from the dispatcher for a node it no
// longer knows.
func IsNodeRemoved(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	if st.Code() == codes.NotFound {
		return true
	}
	for _, d := range st.Details() {
		if e, ok := d.(*errdetails.ErrorInfo); ok && e.Reason == nodeRemovedReason && e.Domain == nodeRemovedDomain {
			return true
		}
	}
	return false
}
