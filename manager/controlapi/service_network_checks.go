package controlapi

import (
	"fmt"

	"github.com/shoalhq/shoal/manager/ipam"
	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// checkServiceNetworks refuses, before anything is written, a service
// (ID id, "" when new) whose published ports another service already
// publishes through the routing mesh (AlreadyExists), or whose networks
// have too few free addresses for its replicas and VIP
// (ResourceExhausted). The spec's network targets are network IDs.
func checkServiceNetworks(tx store.ReadTx, id string, spec *api.ServiceSpec) error {
	if err := checkPublishedPorts(tx, id, spec); err != nil {
		return err
	}
	return checkNetworkCapacity(tx, id, spec)
}

// checkPublishedPorts: a port published through the mesh is taken on
// every node, so no other service may publish it, through the mesh or in
// host mode. (Two services publishing the same port in host mode are
// kept on different nodes by the scheduler.)
func checkPublishedPorts(tx store.ReadTx, id string, spec *api.ServiceSpec) error {
	type claim struct{ ingress bool }
	mine := map[string]claim{}
	for _, p := range spec.GetEndpoint().GetPorts() {
		if p.GetPublishedPort() != 0 {
			mine[portID(p)] = claim{ingress: p.GetPublishMode() == api.PortConfig_PUBLISH_MODE_INGRESS}
		}
	}
	if len(mine) == 0 {
		return nil
	}
	for _, s := range tx.FindServices(store.All()) {
		if s.GetId() == id {
			continue
		}
		ports := append([]*api.PortConfig{}, s.GetSpec().GetEndpoint().GetPorts()...)
		ports = append(ports, s.GetEndpoint().GetPorts()...) // allocated dynamic ones too
		for _, p := range ports {
			c, ok := mine[portID(p)]
			if !ok || p.GetPublishedPort() == 0 {
				continue
			}
			theirs := p.GetPublishMode() == api.PortConfig_PUBLISH_MODE_INGRESS
			if c.ingress || theirs {
				return alreadyExistsf("published port %s is already published by service %s (%s mode): choose another port, or remove or update that service",
					portID(p), s.GetSpec().GetAnnotations().GetName(), publishModeName(theirs))
			}
		}
	}
	return nil
}

func publishModeName(ingress bool) string {
	if ingress {
		return "ingress"
	}
	return "host"
}

func portID(p *api.PortConfig) string {
	return fmt.Sprintf("%d/%s", p.GetPublishedPort(), protoName(p.GetProtocol()))
}

// checkNetworkCapacity: each network must hold the service's replicas
// (and its VIP in endpoint mode vip) in its free addresses plus those the
// service already holds. Global services and jobs are not counted: their
// size follows the nodes.
func checkNetworkCapacity(tx store.ReadTx, id string, spec *api.ServiceSpec) error {
	r, ok := spec.GetMode().GetMode().(*api.ServiceMode_Replicated)
	if !ok || spec.GetTask().NetworkMode() != "" {
		return nil
	}
	need := int(r.Replicated.GetReplicas())
	vip := spec.GetEndpoint().GetMode() == api.EndpointSpec_MODE_VIP
	if vip {
		need++
	}
	held := map[string]int{} // addresses the service holds, by network
	used := map[string]int{} // addresses held by anyone, by network
	for _, s := range tx.FindServices(store.All()) {
		for _, v := range s.GetEndpoint().GetVirtualIps() {
			used[v.GetNetworkId()]++
			if s.GetId() == id {
				held[v.GetNetworkId()]++
			}
		}
	}
	for _, t := range tx.FindTasks(store.All()) {
		if t.GetStatus().GetState() >= api.TaskState_TASK_STATE_COMPLETE {
			continue
		}
		for _, a := range t.GetNetworks() {
			used[a.GetNetworkId()]++
			if id != "" && t.GetServiceId() == id && t.GetDesiredState() <= api.TaskState_TASK_STATE_RUNNING {
				held[a.GetNetworkId()]++
			}
		}
	}
	for _, a := range spec.GetTask().GetNetworks() {
		n := tx.GetNetwork(a.GetTarget())
		if n == nil {
			continue
		}
		subnet, gw, ok := ipam.Subnet(n)
		if !ok {
			continue
		}
		capacity := ipam.HostCount(subnet)
		if gw.IsValid() && subnet.Contains(gw) {
			capacity--
		}
		free := capacity - used[n.GetId()] + held[n.GetId()]
		if need > free {
			what := fmt.Sprintf("%d replicas", need)
			if vip {
				what = fmt.Sprintf("%d replicas and its virtual IP", need-1)
			}
			return resourceExhaustedf("network %s (%s) has %d free addresses; the service needs %s: create the network with a larger subnet, or run fewer replicas",
				n.GetSpec().GetAnnotations().GetName(), subnet, free, what)
		}
	}
	return nil
}
