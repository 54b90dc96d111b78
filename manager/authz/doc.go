// Package authz decides who is calling a node's gRPC services and whether
// they may: the server's transport credentials turn each connection into
// a caller (a certificate of this cluster with its identity, a TCP client
// with no certificate, or the local unix socket), and one unary and one
// stream interceptor check every call against the table in proto/api
// (api.AccessOf), the certificate's validity, the cluster's list of
// removed nodes, and, for calls that name a node, that a worker names
// itself.
//
// Refusals are gRPC statuses: Unauthenticated for a caller without a
// valid certificate (with what to do about it), PermissionDenied for a
// role that may not make the call or a node speaking for another.
package authz
