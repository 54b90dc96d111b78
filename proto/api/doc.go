// Package api is Shoal's API: the objects that make up the cluster state
// (Cluster, Node, Service, Task, Network, Secret, Config), the specs users
// write, the store's replicated commands, and the gRPC services (Control
// for users, Dispatcher for agents, Membership and Raft between nodes).
//
// The Go code is generated from the .proto files beside this one by
// `make proto`; do not edit the *.pb.go files by hand.
package api
