package store

import (
	"strings"

	"github.com/shoalhq/shoal/proto/api"
)

// table holds the objects of one kind with their indexes. Tables are
// changed only by Apply and Restore under the store's write lock, and read
// under its read lock.
type table[T object] struct {
	desc *kindDesc[T]
	byID map[string]*entry[T]
	// all orders every entry by ID, for All and ByIDPrefix.
	all sortedList[T]
	// names maps a unique name to its holder; nil for kinds without unique
	// names.
	names map[string]*entry[T]
	// multi[i] are the buckets of desc.indexes[i], by key.
	multi []map[string]*sortedList[T]
}

func newTable[T object](d *kindDesc[T]) *table[T] {
	t := &table[T]{desc: d, byID: make(map[string]*entry[T])}
	if d.uniqueName != nil {
		t.names = make(map[string]*entry[T])
	}
	t.multi = make([]map[string]*sortedList[T], len(d.indexes))
	for i := range t.multi {
		t.multi[i] = make(map[string]*sortedList[T])
	}
	return t
}

// get returns the object with the ID.
func (t *table[T]) get(id string) (T, bool) {
	if e, ok := t.byID[id]; ok {
		return e.obj, true
	}
	var zero T
	return zero, false
}

// nameHolder returns the entry holding a unique name, or nil.
func (t *table[T]) nameHolder(name string) *entry[T] {
	if t.names == nil || name == "" {
		return nil
	}
	return t.names[name]
}

// find returns the objects selected by by, sorted by ID, in a new slice.
func (t *table[T]) find(by By) []T {
	switch b := by.(type) {
	case byAll:
		return t.all.objects()
	case byIDPrefix:
		var out []T
		t.all.ascend(string(b), func(e *entry[T]) bool {
			if !strings.HasPrefix(e.id, string(b)) {
				return false
			}
			out = append(out, e.obj)
			return true
		})
		return out
	case byName:
		if t.names != nil {
			if e := t.nameHolder(string(b)); e != nil {
				return []T{e.obj}
			}
			return nil
		}
	}
	for i, ix := range t.desc.indexes {
		if key, ok := ix.selector(by); ok {
			return t.multi[i][key].objects()
		}
	}
	return nil
}

// matches reports whether by selects obj; it agrees with find.
func (t *table[T]) matches(by By, obj T) bool {
	switch b := by.(type) {
	case byAll:
		return true
	case byIDPrefix:
		return strings.HasPrefix(obj.GetId(), string(b))
	case byName:
		if un := t.desc.uniqueName; un != nil {
			n := un(obj)
			return n != "" && n == string(b)
		}
	}
	for _, ix := range t.desc.indexes {
		if key, ok := ix.selector(by); ok {
			k := ix.key(obj)
			return k == key && !(ix.skipEmpty && k == "")
		}
	}
	return false
}

// insert adds obj, whose ID must be absent.
func (t *table[T]) insert(obj T) {
	e := &entry[T]{id: obj.GetId(), obj: obj}
	t.byID[e.id] = e
	t.all.insert(e)
	if t.names != nil {
		if n := t.desc.uniqueName(obj); n != "" {
			t.names[n] = e
		}
	}
	for i, ix := range t.desc.indexes {
		t.bucketAdd(i, ix.key(obj), e)
	}
}

// update replaces e's object by obj (same ID), moving e between index
// buckets whose keys changed.
func (t *table[T]) update(e *entry[T], obj T) {
	old := e.obj
	if t.names != nil {
		on, nn := t.desc.uniqueName(old), t.desc.uniqueName(obj)
		if on != nn {
			if on != "" && t.names[on] == e {
				delete(t.names, on)
			}
			if nn != "" {
				t.names[nn] = e
			}
		}
	}
	for i, ix := range t.desc.indexes {
		if ok, nk := ix.key(old), ix.key(obj); ok != nk {
			t.bucketRemove(i, ok, e.id)
			t.bucketAdd(i, nk, e)
		}
	}
	e.obj = obj
}

// remove deletes e from the table and its indexes.
func (t *table[T]) remove(e *entry[T]) {
	delete(t.byID, e.id)
	t.all.remove(e.id)
	if t.names != nil {
		if n := t.desc.uniqueName(e.obj); n != "" && t.names[n] == e {
			delete(t.names, n)
		}
	}
	for i, ix := range t.desc.indexes {
		t.bucketRemove(i, ix.key(e.obj), e.id)
	}
}

func (t *table[T]) bucketAdd(i int, key string, e *entry[T]) {
	if key == "" && t.desc.indexes[i].skipEmpty {
		return
	}
	l := t.multi[i][key]
	if l == nil {
		l = &sortedList[T]{}
		t.multi[i][key] = l
	}
	l.insert(e)
}

func (t *table[T]) bucketRemove(i int, key, id string) {
	l := t.multi[i][key]
	if l == nil {
		return
	}
	l.remove(id)
	if l.len() == 0 {
		delete(t.multi[i], key)
	}
}

// state is the whole content of a store: one table per kind.
type state struct {
	clusters *table[*api.Cluster]
	nodes    *table[*api.Node]
	services *table[*api.Service]
	tasks    *table[*api.Task]
	networks *table[*api.Network]
	secrets  *table[*api.Secret]
	configs  *table[*api.Config]
}

func newState() *state {
	return &state{
		clusters: newTable(clusterKind),
		nodes:    newTable(nodeKind),
		services: newTable(serviceKind),
		tasks:    newTable(taskKind),
		networks: newTable(networkKind),
		secrets:  newTable(secretKind),
		configs:  newTable(configKind),
	}
}
