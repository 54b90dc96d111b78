package api

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

// NeedsAllocation reports whether the tasks of a service with this spec
// must get network addresses before they are scheduled: they attach to
// networks, or the service publishes through the routing mesh. The
// orchestrator creates such tasks NEW, for the allocator; others PENDING.
func (s *ServiceSpec) NeedsAllocation() bool {
	return len(s.GetTask().GetNetworks()) > 0 || s.PublishesIngress()
}
