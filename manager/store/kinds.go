package store

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// object is what every stored kind has in common. Instances are the
// generated pointer types (*api.Task, ...), so they are comparable and the
// zero value is nil.
type object interface {
	comparable
	proto.Message
	GetId() string
	GetMeta() *api.Meta
}

// kindDesc describes one kind of object to the generic tables, overlays and
// Apply: how it is named, indexed, stamped and wrapped in an action.
type kindDesc[T object] struct {
	// name is the kind's name in error messages ("task").
	name string
	// uniqueName returns the name that must be unique among the objects of
	// the kind; nil when names are not unique (nodes, tasks). Empty names
	// are neither indexed nor checked.
	uniqueName func(T) string
	// indexes are the kind's secondary indexes.
	indexes []indexDef[T]
	// setMeta replaces the object's Meta.
	setMeta func(T, *api.Meta)
	// skeleton returns an object carrying only an ID and a Meta, used as the
	// target of a removal.
	skeleton func(id string, m *api.Meta) T
	// action wraps the object in a store action of the given kind.
	action func(api.StoreAction_Kind, T) *api.StoreAction
	// checkUpdate, when not nil, refuses a change from old to new that the
	// kind never allows (task states moving backwards).
	checkUpdate func(old, new T) error
	// conflicts, when not nil, refuses obj if it claims what other (a
	// visible object of the same kind with another ID) holds; checked on
	// create and update, deterministically, so that two writes racing
	// through different managers cannot both win.
	conflicts func(other, obj T) error
}

// indexDef is one secondary index: a selector it answers and the key each
// object is filed under.
type indexDef[T object] struct {
	// selector returns the key a By asks for, and whether this index
	// answers that By at all.
	selector func(By) (string, bool)
	// key is the key an object is filed under.
	key func(T) string
	// skipEmpty leaves objects whose key is "" out of the index.
	skipEmpty bool
}

// version is the object's Meta.Version, 0 when it has no Meta.
func version[T object](obj T) uint64 { return obj.GetMeta().GetVersion() }

// enumKeys holds index keys for the enum values the schema defines, so
// that computing a key does not allocate.
var enumKeys = func() map[int32]string {
	m := make(map[int32]string)
	for v := range api.TaskState_name {
		m[v] = strconv.Itoa(int(v))
	}
	for v := range api.NodeRole_name {
		m[v] = strconv.Itoa(int(v))
	}
	return m
}()

// enumKey is the index key of an enum value.
func enumKey(v int32) string {
	if k, ok := enumKeys[v]; ok {
		return k
	}
	return strconv.Itoa(int(v))
}

// nodeName is the name a node is found by: its spec name, or else its
// hostname.
func nodeName(n *api.Node) string {
	if name := n.GetSpec().GetAnnotations().GetName(); name != "" {
		return name
	}
	return n.GetDescription().GetHostname()
}

// checkTaskForward refuses a task update whose observed state or desired
// state is lower than the task's current one.
func checkTaskForward(old, new *api.Task) error {
	if o, n := old.GetStatus().GetState(), new.GetStatus().GetState(); n < o {
		return fmt.Errorf("%w: task %s state %s -> %s", ErrTaskStateBackwards, new.GetId(), o, n)
	}
	if o, n := old.GetDesiredState(), new.GetDesiredState(); n < o {
		return fmt.Errorf("%w: task %s desired state %s -> %s", ErrTaskStateBackwards, new.GetId(), o, n)
	}
	return nil
}

var nameIndex = func(by By) (string, bool) { b, ok := by.(byName); return string(b), ok }

var clusterKind = &kindDesc[*api.Cluster]{
	name:       "cluster",
	uniqueName: func(c *api.Cluster) string { return c.GetSpec().GetAnnotations().GetName() },
	setMeta:    func(c *api.Cluster, m *api.Meta) { c.Meta = m },
	skeleton:   func(id string, m *api.Meta) *api.Cluster { return &api.Cluster{Id: id, Meta: m} },
	action: func(k api.StoreAction_Kind, c *api.Cluster) *api.StoreAction {
		return &api.StoreAction{Kind: k, Target: &api.StoreAction_Cluster{Cluster: c}}
	},
}

var nodeKind = &kindDesc[*api.Node]{
	name: "node",
	indexes: []indexDef[*api.Node]{
		{selector: nameIndex, key: nodeName, skipEmpty: true},
		{
			selector: func(by By) (string, bool) { b, ok := by.(byRole); return enumKey(int32(b)), ok },
			key:      func(n *api.Node) string { return enumKey(int32(n.GetRole())) },
		},
	},
	setMeta:  func(n *api.Node, m *api.Meta) { n.Meta = m },
	skeleton: func(id string, m *api.Meta) *api.Node { return &api.Node{Id: id, Meta: m} },
	action: func(k api.StoreAction_Kind, n *api.Node) *api.StoreAction {
		return &api.StoreAction{Kind: k, Target: &api.StoreAction_Node{Node: n}}
	},
}

var serviceKind = &kindDesc[*api.Service]{
	name:       "service",
	uniqueName: func(s *api.Service) string { return s.GetSpec().GetAnnotations().GetName() },
	setMeta:    func(s *api.Service, m *api.Meta) { s.Meta = m },
	skeleton:   func(id string, m *api.Meta) *api.Service { return &api.Service{Id: id, Meta: m} },
	action: func(k api.StoreAction_Kind, s *api.Service) *api.StoreAction {
		return &api.StoreAction{Kind: k, Target: &api.StoreAction_Service{Service: s}}
	},
}

var taskKind = &kindDesc[*api.Task]{
	name: "task",
	indexes: []indexDef[*api.Task]{
		{
			selector: func(by By) (string, bool) { b, ok := by.(byServiceID); return string(b), ok },
			key:      (*api.Task).GetServiceId,
		},
		{
			selector: func(by By) (string, bool) { b, ok := by.(byNodeID); return string(b), ok },
			key:      (*api.Task).GetNodeId,
		},
		{
			selector: func(by By) (string, bool) { b, ok := by.(byDesiredState); return enumKey(int32(b)), ok },
			key:      func(t *api.Task) string { return enumKey(int32(t.GetDesiredState())) },
		},
	},
	setMeta:     func(t *api.Task, m *api.Meta) { t.Meta = m },
	skeleton:    func(id string, m *api.Meta) *api.Task { return &api.Task{Id: id, Meta: m} },
	checkUpdate: checkTaskForward,
	action: func(k api.StoreAction_Kind, t *api.Task) *api.StoreAction {
		return &api.StoreAction{Kind: k, Target: &api.StoreAction_Task{Task: t}}
	},
}

var networkKind = &kindDesc[*api.Network]{
	name:       "network",
	uniqueName: func(n *api.Network) string { return n.GetSpec().GetAnnotations().GetName() },
	conflicts:  networkConflicts,
	setMeta:    func(n *api.Network, m *api.Meta) { n.Meta = m },
	skeleton:   func(id string, m *api.Meta) *api.Network { return &api.Network{Id: id, Meta: m} },
	action: func(k api.StoreAction_Kind, n *api.Network) *api.StoreAction {
		return &api.StoreAction{Kind: k, Target: &api.StoreAction_Network{Network: n}}
	},
}

var secretKind = &kindDesc[*api.Secret]{
	name:       "secret",
	uniqueName: func(s *api.Secret) string { return s.GetSpec().GetAnnotations().GetName() },
	setMeta:    func(s *api.Secret, m *api.Meta) { s.Meta = m },
	skeleton:   func(id string, m *api.Meta) *api.Secret { return &api.Secret{Id: id, Meta: m} },
	action: func(k api.StoreAction_Kind, s *api.Secret) *api.StoreAction {
		return &api.StoreAction{Kind: k, Target: &api.StoreAction_Secret{Secret: s}}
	},
}

var configKind = &kindDesc[*api.Config]{
	name:       "config",
	uniqueName: func(c *api.Config) string { return c.GetSpec().GetAnnotations().GetName() },
	setMeta:    func(c *api.Config, m *api.Meta) { c.Meta = m },
	skeleton:   func(id string, m *api.Meta) *api.Config { return &api.Config{Id: id, Meta: m} },
	action: func(k api.StoreAction_Kind, c *api.Config) *api.StoreAction {
		return &api.StoreAction{Kind: k, Target: &api.StoreAction_Config{Config: c}}
	},
}
