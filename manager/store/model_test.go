package store

import (
	"cmp"
	"errors"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/proto/api"
)

// The model is a deliberately naive store for the property tests: maps,
// full scans, and a copy of the whole state per command. It states Apply's
// rules in the plainest terms so the real store can be compared with it.

// kinds of the model, in a fixed order.
var modelKinds = []string{"cluster", "node", "service", "task", "network", "secret", "config"}

// model holds objects by kind, then by ID.
type model struct {
	objs map[string]map[string]proto.Message
}

func newModel() *model {
	m := &model{objs: make(map[string]map[string]proto.Message)}
	for _, k := range modelKinds {
		m.objs[k] = make(map[string]proto.Message)
	}
	return m
}

// target returns the kind and object of an action; obj is nil when the
// action has none.
func target(a *api.StoreAction) (string, proto.Message) {
	switch t := a.GetTarget().(type) {
	case *api.StoreAction_Cluster:
		return "cluster", nilIfNil(t.Cluster)
	case *api.StoreAction_Node:
		return "node", nilIfNil(t.Node)
	case *api.StoreAction_Service:
		return "service", nilIfNil(t.Service)
	case *api.StoreAction_Task:
		return "task", nilIfNil(t.Task)
	case *api.StoreAction_Network:
		return "network", nilIfNil(t.Network)
	case *api.StoreAction_Secret:
		return "secret", nilIfNil(t.Secret)
	case *api.StoreAction_Config:
		return "config", nilIfNil(t.Config)
	}
	return "", nil
}

// nilIfNil turns a typed nil into an untyped one.
func nilIfNil[T interface {
	comparable
	proto.Message
}](m T) proto.Message {
	var zero T
	if m == zero {
		return nil
	}
	return m
}

type modelObject interface {
	proto.Message
	GetId() string
	GetMeta() *api.Meta
}

func idOf(m proto.Message) string      { return m.(modelObject).GetId() }
func versionOf(m proto.Message) uint64 { return m.(modelObject).GetMeta().GetVersion() }

// nameOf returns the name an object is found by, and whether it must be
// unique in its kind.
func nameOf(kind string, m proto.Message) (string, bool) {
	switch o := m.(type) {
	case *api.Cluster:
		return o.GetSpec().GetAnnotations().GetName(), true
	case *api.Node:
		if n := o.GetSpec().GetAnnotations().GetName(); n != "" {
			return n, false
		}
		return o.GetDescription().GetHostname(), false
	case *api.Service:
		return o.GetSpec().GetAnnotations().GetName(), true
	case *api.Network:
		return o.GetSpec().GetAnnotations().GetName(), true
	case *api.Secret:
		return o.GetSpec().GetAnnotations().GetName(), true
	case *api.Config:
		return o.GetSpec().GetAnnotations().GetName(), true
	}
	return "", false
}

func setVersion(m proto.Message, v uint64) {
	meta := &api.Meta{Version: v}
	if old := m.(modelObject).GetMeta(); old != nil {
		meta.CreatedAt, meta.UpdatedAt = old.CreatedAt, old.UpdatedAt
	}
	switch o := m.(type) {
	case *api.Cluster:
		o.Meta = meta
	case *api.Node:
		o.Meta = meta
	case *api.Service:
		o.Meta = meta
	case *api.Task:
		o.Meta = meta
	case *api.Network:
		o.Meta = meta
	case *api.Secret:
		o.Meta = meta
	case *api.Config:
		o.Meta = meta
	}
}

// apply applies cmd at index, all or nothing, and returns the sentinel of
// the first failing check. It owns cmd.
func (m *model) apply(index uint64, cmd *api.Command) error {
	work := make(map[string]map[string]proto.Message)
	for k, objs := range m.objs {
		work[k] = make(map[string]proto.Message, len(objs))
		for id, o := range objs {
			work[k][id] = o
		}
	}
	type key struct{ kind, id string }
	var written []key
	for _, a := range cmd.GetActions() {
		kind, obj := target(a)
		if obj == nil || idOf(obj) == "" {
			return ErrInvalidObject
		}
		id := idOf(obj)
		cur, exists := work[kind][id]
		nameTaken := func() bool {
			name, unique := nameOf(kind, obj)
			if !unique || name == "" {
				return false
			}
			for oid, o := range work[kind] {
				if n, _ := nameOf(kind, o); oid != id && n == name {
					return true
				}
			}
			return false
		}
		resourceTaken := func() bool {
			n, ok := obj.(*api.Network)
			if !ok {
				return false
			}
			for oid, o := range work[kind] {
				if oid != id && networkConflicts(o.(*api.Network), n) != nil {
					return true
				}
			}
			return false
		}
		switch a.GetKind() {
		case api.StoreAction_KIND_CREATE:
			if exists {
				return ErrExist
			}
			if nameTaken() {
				return ErrNameConflict
			}
			if resourceTaken() {
				return ErrResourceConflict
			}
			work[kind][id] = obj
			written = append(written, key{kind, id})
		case api.StoreAction_KIND_UPDATE:
			if !exists {
				return ErrNotFound
			}
			if versionOf(obj) != versionOf(cur) {
				return ErrSequenceConflict
			}
			if nameTaken() {
				return ErrNameConflict
			}
			if resourceTaken() {
				return ErrResourceConflict
			}
			if kind == "task" {
				o, n := cur.(*api.Task), obj.(*api.Task)
				if n.GetStatus().GetState() < o.GetStatus().GetState() || n.GetDesiredState() < o.GetDesiredState() {
					return ErrTaskStateBackwards
				}
			}
			work[kind][id] = obj
			written = append(written, key{kind, id})
		case api.StoreAction_KIND_REMOVE:
			if !exists {
				return ErrNotFound
			}
			if versionOf(obj) != versionOf(cur) {
				return ErrSequenceConflict
			}
			delete(work[kind], id)
		default:
			return ErrInvalidObject
		}
	}
	for _, k := range written {
		if o, ok := work[k.kind][k.id]; ok {
			setVersion(o, index)
		}
	}
	m.objs = work
	return nil
}

// sorted returns a kind's objects sorted by ID.
func (m *model) sorted(kind string) []proto.Message {
	var out []proto.Message
	for _, o := range m.objs[kind] {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b proto.Message) int { return cmp.Compare(idOf(a), idOf(b)) })
	return out
}

// find is Find by full scan.
func (m *model) find(kind string, by By) []proto.Message {
	var out []proto.Message
	for _, o := range m.sorted(kind) {
		if modelMatches(kind, by, o) {
			out = append(out, o)
		}
	}
	return out
}

func modelMatches(kind string, by By, o proto.Message) bool {
	switch b := by.(type) {
	case byAll:
		return true
	case byIDPrefix:
		return strings.HasPrefix(idOf(o), string(b))
	case byName:
		n, _ := nameOf(kind, o)
		return kind != "task" && n != "" && n == string(b)
	case byServiceID:
		t, ok := o.(*api.Task)
		return ok && t.GetServiceId() == string(b)
	case byNodeID:
		t, ok := o.(*api.Task)
		return ok && t.GetNodeId() == string(b)
	case byDesiredState:
		t, ok := o.(*api.Task)
		return ok && t.GetDesiredState() == api.TaskState(b)
	case byRole:
		n, ok := o.(*api.Node)
		return ok && n.GetRole() == api.NodeRole(b)
	}
	return false
}

// findAny runs the Find of a kind and returns its objects as messages.
func findAny(tx ReadTx, kind string, by By) []proto.Message {
	var out []proto.Message
	add := func(m proto.Message) { out = append(out, m) }
	switch kind {
	case "cluster":
		for _, o := range tx.FindClusters(by) {
			add(o)
		}
	case "node":
		for _, o := range tx.FindNodes(by) {
			add(o)
		}
	case "service":
		for _, o := range tx.FindServices(by) {
			add(o)
		}
	case "task":
		for _, o := range tx.FindTasks(by) {
			add(o)
		}
	case "network":
		for _, o := range tx.FindNetworks(by) {
			add(o)
		}
	case "secret":
		for _, o := range tx.FindSecrets(by) {
			add(o)
		}
	case "config":
		for _, o := range tx.FindConfigs(by) {
			add(o)
		}
	}
	return out
}

// getAny runs the Get of a kind; nil when absent.
func getAny(tx ReadTx, kind, id string) proto.Message {
	switch kind {
	case "cluster":
		return nilIfNil(tx.GetCluster(id))
	case "node":
		return nilIfNil(tx.GetNode(id))
	case "service":
		return nilIfNil(tx.GetService(id))
	case "task":
		return nilIfNil(tx.GetTask(id))
	case "network":
		return nilIfNil(tx.GetNetwork(id))
	case "secret":
		return nilIfNil(tx.GetSecret(id))
	case "config":
		return nilIfNil(tx.GetConfig(id))
	}
	return nil
}

// snapshot is the model's state as a StoreSnapshot.
func (m *model) snapshot() *api.StoreSnapshot {
	snap := &api.StoreSnapshot{}
	for _, o := range m.sorted("cluster") {
		snap.Clusters = append(snap.Clusters, o.(*api.Cluster))
	}
	for _, o := range m.sorted("node") {
		snap.Nodes = append(snap.Nodes, o.(*api.Node))
	}
	for _, o := range m.sorted("service") {
		snap.Services = append(snap.Services, o.(*api.Service))
	}
	for _, o := range m.sorted("task") {
		snap.Tasks = append(snap.Tasks, o.(*api.Task))
	}
	for _, o := range m.sorted("network") {
		snap.Networks = append(snap.Networks, o.(*api.Network))
	}
	for _, o := range m.sorted("secret") {
		snap.Secrets = append(snap.Secrets, o.(*api.Secret))
	}
	for _, o := range m.sorted("config") {
		snap.Configs = append(snap.Configs, o.(*api.Config))
	}
	return snap
}

// sentinelOf returns which of the package's sentinels err wraps.
func sentinelOf(err error) error {
	for _, s := range []error{ErrInvalidObject, ErrExist, ErrNameConflict, ErrNotFound, ErrSequenceConflict, ErrTaskStateBackwards, ErrResourceConflict, ErrStaleIndex} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}
