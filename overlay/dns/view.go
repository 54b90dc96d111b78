package dns

import (
	"fmt"
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// View is what one container can resolve: the networks it is attached to
// and the services on them. A View is copied when it is handed to the
// Server; the caller may reuse it afterwards.
type View struct {
	// Networks are the names of the networks the container is attached
	// to, in order of preference: an unscoped name found on several of
	// them is answered from the first. Duplicates are ignored.
	Networks []string
	// Services are the records. A service on a network that is not in
	// Networks is ignored, so a caller may pass every service it knows.
	Services []Service
}

// Service is one service's records on one network. A service attached to
// two networks appears twice, once per network, with the addresses it has
// on each.
type Service struct {
	// Name is the service name, answered by NAME, tasks.NAME, NAME.NETWORK
	// and tasks.NAME.NETWORK.
	Name string
	// Network is the network these records belong to.
	Network string
	// VIP is the service's virtual IP on Network (endpoint mode vip). The
	// zero Addr means endpoint mode dnsrr: NAME answers the task addresses.
	VIP netip.Addr
	// Tasks are the service's tasks that may receive traffic (running
	// and healthy), with their addresses on Network.
	Tasks []Task
	// Aliases are the service's network aliases on Network; each answers
	// like Name.
	Aliases []string
}

// Task is one task's endpoint on a network.
type Task struct {
	// Name is the task's own name (its container name, such as
	// "web.1.x5h2k"); when set it answers Addr alone. Optional.
	Name string
	// Addr is the task's address on the service's network.
	Addr netip.Addr
}

// addrSet holds the addresses of one name, split by family, without
// duplicates, in the order they were added.
type addrSet struct {
	v4 []netip.Addr
	v6 []netip.Addr
}

func (a *addrSet) add(addrs ...netip.Addr) {
	for _, addr := range addrs {
		addr = addr.Unmap()
		list := &a.v6
		if addr.Is4() {
			list = &a.v4
		}
		dup := false
		for _, have := range *list {
			if have == addr {
				dup = true
				break
			}
		}
		if !dup {
			*list = append(*list, addr)
		}
	}
}

// index is a View compiled for lookups. It is immutable once built, so a
// query reads it without locks while SetView swaps in a new one.
type index struct {
	// names maps a lower-case fully qualified name to its addresses.
	names map[string]*addrSet
	// suffixes are ".NETWORK." for each attached network, lower case.
	suffixes []string
}

// lookupResult says how a name is answered.
type lookupResult int

const (
	// forwardName: not a cluster name; ask the upstream resolvers.
	forwardName lookupResult = iota
	// localName: a cluster name with records (possibly none of the asked family).
	localName
	// unknownClusterName: shaped like a cluster name but unknown: NXDOMAIN.
	unknownClusterName
)

// lookup finds qname (any case, with or without the trailing dot).
func (ix *index) lookup(qname string) (*addrSet, lookupResult) {
	name := canonical(qname)
	if set, ok := ix.names[name]; ok {
		return set, localName
	}
	if ix.clusterShaped(name) {
		return nil, unknownClusterName
	}
	return nil, forwardName
}

// clusterShaped reports whether a canonical name can only be a cluster
// name: one label, anything under tasks., or NAME.NET and tasks.NAME.NET
// for an attached network NET.
func (ix *index) clusterShaped(name string) bool {
	trimmed := strings.TrimSuffix(name, ".")
	if trimmed == "" {
		return false // the root
	}
	if !strings.Contains(trimmed, ".") || strings.HasPrefix(trimmed, "tasks.") {
		return true
	}
	for _, suffix := range ix.suffixes {
		head, ok := strings.CutSuffix(name, suffix)
		if !ok || head == "" {
			continue
		}
		if !strings.Contains(head, ".") {
			return true
		}
	}
	return false
}

// canonical lower-cases a name and adds the trailing dot.
func canonical(name string) string {
	return mdns.Fqdn(strings.ToLower(name))
}

// compile validates a View and builds its index. It errs with
// ErrInvalidView, naming the offending record, and builds nothing then.
func compile(v View) (*index, error) {
	attached := make(map[string]int) // canonical network label → position
	var order []string
	for _, network := range v.Networks {
		if err := checkName(network); err != nil {
			return nil, fmt.Errorf("%w: network %q: %v", ErrInvalidView, network, err)
		}
		key := strings.ToLower(strings.TrimSuffix(network, "."))
		if _, dup := attached[key]; dup {
			continue
		}
		attached[key] = len(order)
		order = append(order, key)
	}

	// unscoped[i] holds the names of network order[i], without the network.
	unscoped := make([]map[string]*addrSet, len(order))
	for i := range unscoped {
		unscoped[i] = make(map[string]*addrSet)
	}
	add := func(names map[string]*addrSet, name string, addrs ...netip.Addr) {
		set := names[name]
		if set == nil {
			set = &addrSet{}
			names[name] = set
		}
		set.add(addrs...)
	}
	for _, svc := range v.Services {
		if err := checkService(svc); err != nil {
			return nil, err
		}
		pos, ok := attached[strings.ToLower(strings.TrimSuffix(svc.Network, "."))]
		if !ok {
			continue // not attached: the container must not resolve it
		}
		names := unscoped[pos]
		taskAddrs := make([]netip.Addr, 0, len(svc.Tasks))
		for _, task := range svc.Tasks {
			taskAddrs = append(taskAddrs, task.Addr)
			if task.Name != "" {
				add(names, canonical(task.Name), task.Addr)
			}
		}
		for _, name := range append([]string{svc.Name}, svc.Aliases...) {
			key := canonical(name)
			if svc.VIP.IsValid() {
				add(names, key, svc.VIP)
			} else {
				add(names, key, taskAddrs...)
			}
			add(names, "tasks."+key, taskAddrs...)
		}
	}

	ix := &index{names: make(map[string]*addrSet)}
	// Scoped names first: NAME.NET is more specific than an unscoped
	// name spelled the same.
	for i, network := range order {
		suffix := "." + network + "."
		ix.suffixes = append(ix.suffixes, suffix)
		for name, set := range unscoped[i] {
			scoped := strings.TrimSuffix(name, ".") + suffix
			if _, taken := ix.names[scoped]; !taken {
				ix.names[scoped] = set
			}
		}
	}
	for i := range order {
		for name, set := range unscoped[i] {
			if _, taken := ix.names[name]; !taken {
				ix.names[name] = set
			}
		}
	}
	return ix, nil
}

// checkService validates one Service of a View.
func checkService(svc Service) error {
	where := fmt.Sprintf("service %q on network %q", svc.Name, svc.Network)
	if err := checkName(svc.Name); err != nil {
		return fmt.Errorf("%w: %s: name: %v", ErrInvalidView, where, err)
	}
	if err := checkName(svc.Network); err != nil {
		return fmt.Errorf("%w: %s: network: %v", ErrInvalidView, where, err)
	}
	for _, alias := range svc.Aliases {
		if err := checkName(alias); err != nil {
			return fmt.Errorf("%w: %s: alias %q: %v", ErrInvalidView, where, alias, err)
		}
	}
	for _, task := range svc.Tasks {
		if !task.Addr.IsValid() {
			return fmt.Errorf("%w: %s: task %q has no address", ErrInvalidView, where, task.Name)
		}
		if task.Name != "" {
			if err := checkName(task.Name); err != nil {
				return fmt.Errorf("%w: %s: task name %q: %v", ErrInvalidView, where, task.Name, err)
			}
		}
	}
	return nil
}

// checkName accepts a DNS name of at least one label.
func checkName(name string) error {
	trimmed := strings.TrimSuffix(name, ".")
	if trimmed == "" {
		return fmt.Errorf("empty name")
	}
	if strings.ContainsAny(trimmed, " \t\n\\") {
		return fmt.Errorf("has whitespace or a backslash")
	}
	if _, ok := mdns.IsDomainName(trimmed); !ok {
		return fmt.Errorf("not a valid DNS name")
	}
	if strings.Contains(trimmed, "..") {
		return fmt.Errorf("has an empty label")
	}
	return nil
}
