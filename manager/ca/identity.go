package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// Role is what a certificate lets its holder do, as written in the
// certificate's organizational unit.
type Role string

// The roles a certificate can carry.
const (
	// RoleManager holds the Raft log and the CA key: it may call every
	// service.
	RoleManager Role = "shoal-manager"
	// RoleWorker runs tasks: it may speak for itself to the dispatcher.
	RoleWorker Role = "shoal-worker"
	// RoleAdmin is a user of the manager API from another machine.
	RoleAdmin Role = "shoal-admin"
)

// Valid reports whether r is one of the roles above.
func (r Role) Valid() bool {
	return r == RoleManager || r == RoleWorker || r == RoleAdmin
}

// IsNode reports whether r is a node's role (manager or worker).
func (r Role) IsNode() bool { return r == RoleManager || r == RoleWorker }

// Identity is who holds a certificate of this cluster.
type Identity struct {
	// ClusterID is the cluster that issued the certificate.
	ClusterID string
	// ID is the node ID for a node, the client's name for an admin.
	ID string
	// Role is what the holder may do.
	Role Role
}

// String names the identity for logs and error messages.
func (id Identity) String() string { return fmt.Sprintf("%s %s", id.Role, id.ID) }

// ErrNoIdentity means a certificate does not carry a Shoal identity (no
// common name, or not exactly one known role and one cluster).
var ErrNoIdentity = errors.New("the certificate carries no Shoal identity")

// IdentityOf reads the identity written in cert's subject. It does not
// check the signature or the validity period (see Roots.Verify).
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	s := cert.Subject
	if s.CommonName == "" || len(s.OrganizationalUnit) != 1 || len(s.Organization) != 1 {
		return Identity{}, ErrNoIdentity
	}
	id := Identity{ClusterID: s.Organization[0], ID: s.CommonName, Role: Role(s.OrganizationalUnit[0])}
	if !id.Role.Valid() || id.ClusterID == "" {
		return Identity{}, ErrNoIdentity
	}
	return id, nil
}
