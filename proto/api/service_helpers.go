package api

import (
	"crypto/sha256"
	"encoding/binary"
)

// PublishesIngress reports whether the service publishes a port through
// the routing mesh (publish mode ingress).
func (s *ServiceSpec) PublishesIngress() bool {
	for _, p := range s.GetEndpoint().GetPorts() {
		if p.GetPublishMode() == PortConfig_PUBLISH_MODE_INGRESS {
			return true
		}
	}
	return false
}

// Node-local network modes, named as network targets in a task spec.
// They are not cluster objects and need no addresses from the managers:
// host shares the node's network namespace, bridge is the node's own
// bridge with outbound NAT (the default for tasks with no network), none
// leaves the task a loopback interface only.
const (
	NetworkHost   = "host"
	NetworkBridge = "bridge"
	NetworkNone   = "none"
)

// IsNodeLocalNetwork reports whether a network target names a node-local
// mode rather than an overlay network.
func IsNodeLocalNetwork(target string) bool {
	return target == NetworkHost || target == NetworkBridge || target == NetworkNone
}

// NetworkMode returns the node-local mode a task spec asks for (host,
// bridge or none), or "" when it attaches to overlay networks. A spec
// with no network at all gets bridge.
func (t *TaskSpec) NetworkMode() string {
	nets := t.GetNetworks()
	if len(nets) == 0 {
		return NetworkBridge
	}
	if IsNodeLocalNetwork(nets[0].GetTarget()) {
		return nets[0].GetTarget()
	}
	return ""
}

// NeedsAllocation reports whether the tasks of a service with this spec
// must go through the allocator before they are scheduled: they attach to
// networks, or the service publishes ports (the allocator gives ingress
// addresses and copies the published ports into each task). The
// orchestrator creates such tasks NEW, for the allocator; others PENDING.
func (s *ServiceSpec) NeedsAllocation() bool {
	return s.GetTask().NetworkMode() == "" || len(s.GetEndpoint().GetPorts()) > 0
}

// GossipKeyringDigest is the digest a node reports of the gossip keys it
// has installed (primary first): the managers compare it with the
// cluster's keys to advance a rotation.
func GossipKeyringDigest(keys [][]byte) []byte {
	h := sha256.New()
	for _, k := range keys {
		_ = binary.Write(h, binary.BigEndian, uint32(len(k)))
		h.Write(k)
	}
	return h.Sum(nil)
}
