package store

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/shoalhq/shoal/proto/api"
)

// staged is the state of one object changed in an overlay.
type staged[T object] struct {
	// obj is the object as changed; nil once removed.
	obj T
	// last is the position, in the transaction's actions, of the last
	// action on the object (unused by Apply).
	last int
}

// overlay is a table seen through a set of staged changes: reads see the
// table plus the changes, and the checks of a write are made against that
// view. A transaction stages its writes in overlays, and Apply checks a
// command's actions in overlays before it changes any table, so a command
// that fails a check leaves nothing behind.
type overlay[T object] struct {
	t *table[T]
	// staged holds the changed objects by ID; nil until the first change.
	staged map[string]*staged[T]
	// names maps the unique name of each changed, present object to its ID.
	names map[string]string
}

// get returns the visible object with the ID.
func (o *overlay[T]) get(id string) (T, bool) {
	if s, ok := o.staged[id]; ok {
		var zero T
		return s.obj, s.obj != zero
	}
	return o.t.get(id)
}

// nameHolder returns the ID of the visible object other than except that
// holds the unique name.
func (o *overlay[T]) nameHolder(name, except string) (string, bool) {
	if name == "" || o.t.desc.uniqueName == nil {
		return "", false
	}
	if id, ok := o.names[name]; ok && id != except {
		return id, true
	}
	if e := o.t.nameHolder(name); e != nil && e.id != except {
		if _, changed := o.staged[e.id]; !changed {
			return e.id, true
		}
	}
	return "", false
}

// put stages obj as the visible object with its ID and returns its staged
// record (the same record when the ID was staged before).
func (o *overlay[T]) put(obj T) *staged[T] {
	id := obj.GetId()
	s := o.unname(id)
	if un := o.t.desc.uniqueName; un != nil {
		if n := un(obj); n != "" {
			if o.names == nil {
				o.names = make(map[string]string)
			}
			o.names[n] = id
		}
	}
	s.obj = obj
	return s
}

// del stages the removal of the object with the ID and returns its staged
// record.
func (o *overlay[T]) del(id string) *staged[T] {
	s := o.unname(id)
	var zero T
	s.obj = zero
	return s
}

// unname returns the staged record of the ID, made if needed, after
// dropping the name its staged object held.
func (o *overlay[T]) unname(id string) *staged[T] {
	s, ok := o.staged[id]
	if !ok {
		if o.staged == nil {
			o.staged = make(map[string]*staged[T])
		}
		s = &staged[T]{last: -1}
		o.staged[id] = s
		return s
	}
	var zero T
	if un := o.t.desc.uniqueName; un != nil && s.obj != zero {
		if n := un(s.obj); n != "" && o.names[n] == id {
			delete(o.names, n)
		}
	}
	return s
}

// find returns the visible objects selected by by, sorted by ID.
func (o *overlay[T]) find(by By) []T {
	base := o.t.find(by)
	if len(o.staged) == 0 {
		return base
	}
	var extra []T
	var zero T
	for _, s := range o.staged {
		if s.obj != zero && o.t.matches(by, s.obj) {
			extra = append(extra, s.obj)
		}
	}
	// Map order is random; sorting makes the result independent of it.
	slices.SortFunc(extra, func(a, b T) int { return cmp.Compare(a.GetId(), b.GetId()) })
	out := make([]T, 0, len(base)+len(extra))
	i := 0
	for _, obj := range base {
		if _, changed := o.staged[obj.GetId()]; changed {
			continue
		}
		for i < len(extra) && extra[i].GetId() < obj.GetId() {
			out = append(out, extra[i])
			i++
		}
		out = append(out, obj)
	}
	out = append(out, extra[i:]...)
	if len(out) == 0 {
		return nil
	}
	return out
}

// checkObject refuses a nil object or one without an ID.
func (o *overlay[T]) checkObject(k api.StoreAction_Kind, obj T) error {
	var zero T
	if obj == zero {
		return fmt.Errorf("%w: %s of a nil %s", ErrInvalidObject, actionVerb(k), o.t.desc.name)
	}
	if obj.GetId() == "" {
		return fmt.Errorf("%w: %s of a %s with no ID", ErrInvalidObject, actionVerb(k), o.t.desc.name)
	}
	return nil
}

// checkName refuses obj when another visible object of its kind holds its
// unique name.
func (o *overlay[T]) checkName(obj T) error {
	un := o.t.desc.uniqueName
	if un == nil {
		return nil
	}
	name := un(obj)
	if holder, taken := o.nameHolder(name, obj.GetId()); taken {
		d := o.t.desc.name
		return fmt.Errorf("%w: %s %s cannot be named %q: %s %s has that name", ErrNameConflict, d, obj.GetId(), name, d, holder)
	}
	return nil
}

// checkCreate returns why obj cannot be created in the visible state, or
// nil.
func (o *overlay[T]) checkCreate(obj T) error {
	if err := o.checkObject(api.StoreAction_KIND_CREATE, obj); err != nil {
		return err
	}
	if _, ok := o.get(obj.GetId()); ok {
		return fmt.Errorf("%w: %s %s", ErrExist, o.t.desc.name, obj.GetId())
	}
	if err := o.checkName(obj); err != nil {
		return err
	}
	return o.checkConflicts(obj)
}

// checkConflicts runs the kind's conflicts check of obj against every
// other visible object, in ID order.
func (o *overlay[T]) checkConflicts(obj T) error {
	check := o.t.desc.conflicts
	if check == nil {
		return nil
	}
	for _, other := range o.find(All()) {
		if other.GetId() == obj.GetId() {
			continue
		}
		if err := check(other, obj); err != nil {
			return err
		}
	}
	return nil
}

// checkVersion returns the visible object with obj's ID, or why obj
// cannot replace or remove it: it is absent, or obj carries another
// version.
func (o *overlay[T]) checkVersion(k api.StoreAction_Kind, obj T) (T, error) {
	if err := o.checkObject(k, obj); err != nil {
		return obj, err
	}
	d := o.t.desc.name
	cur, ok := o.get(obj.GetId())
	if !ok {
		return cur, fmt.Errorf("%w: %s of %s %s", ErrNotFound, actionVerb(k), d, obj.GetId())
	}
	if have, got := version(cur), version(obj); have != got {
		return cur, fmt.Errorf("%w: %s of %s %s carries version %d, the stored version is %d: read it again and retry",
			ErrSequenceConflict, actionVerb(k), d, obj.GetId(), got, have)
	}
	return cur, nil
}

// checkUpdate returns the visible object obj would replace, or why it
// cannot: absent, out of sequence, name taken or a change the kind never
// allows.
func (o *overlay[T]) checkUpdate(obj T) (T, error) {
	cur, err := o.checkVersion(api.StoreAction_KIND_UPDATE, obj)
	if err != nil {
		return cur, err
	}
	if err := o.checkName(obj); err != nil {
		return cur, err
	}
	if err := o.checkConflicts(obj); err != nil {
		return cur, err
	}
	if check := o.t.desc.checkUpdate; check != nil {
		if err := check(cur, obj); err != nil {
			return cur, err
		}
	}
	return cur, nil
}

// actionVerb names an action kind in messages.
func actionVerb(k api.StoreAction_Kind) string {
	switch k {
	case api.StoreAction_KIND_CREATE:
		return "create"
	case api.StoreAction_KIND_UPDATE:
		return "update"
	case api.StoreAction_KIND_REMOVE:
		return "removal"
	}
	return fmt.Sprintf("action kind %d", int32(k))
}

// overlays holds one overlay per kind over a state.
type overlays struct {
	clusters overlay[*api.Cluster]
	nodes    overlay[*api.Node]
	services overlay[*api.Service]
	tasks    overlay[*api.Task]
	networks overlay[*api.Network]
	secrets  overlay[*api.Secret]
	configs  overlay[*api.Config]
}

func (ov *overlays) init(st *state) {
	ov.clusters.t = st.clusters
	ov.nodes.t = st.nodes
	ov.services.t = st.services
	ov.tasks.t = st.tasks
	ov.networks.t = st.networks
	ov.secrets.t = st.secrets
	ov.configs.t = st.configs
}
