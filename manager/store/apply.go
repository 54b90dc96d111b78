package store

import (
	"fmt"

	"github.com/shoalhq/shoal/proto/api"
)

// Apply applies a committed command at a log index: all its actions or,
// on the first failing check, none. It is the store's replicated state
// machine and is deterministic: the result depends only on the state, the
// index and the command (no clock, no map iteration order, no I/O), so
// every manager that applies the same commands in the same order holds the
// same state.
//
// Each action is checked against the state with the earlier actions of
// the command applied: a create needs an absent ID and a free unique name;
// an update or removal needs the object to exist with the Meta.Version the
// action carries (an object written by an earlier action of the same
// command has the version that action carried); an update must keep its
// unique name free and must not move a task's state or desired state
// backwards. When a check fails, the error wraps ErrInvalidObject,
// ErrExist, ErrNameConflict, ErrNotFound, ErrSequenceConflict or
// ErrTaskStateBackwards and names the object, and the state does not
// change. Otherwise every object written gets Meta.Version = index
// (CreatedAt and UpdatedAt are kept as the command carries them), and the
// changes are published to watchers in action order.
//
// index must be greater than AppliedIndex(), or Apply returns
// ErrStaleIndex and does nothing. Otherwise AppliedIndex becomes index
// even when the command fails its checks (the log entry was consumed), and
// WaitForIndex callers are woken. A nil or empty command changes nothing
// but consumes its index (for example, a log entry that cannot be
// decoded).
//
// Apply takes ownership of cmd: it stores the command's objects without
// copying them and sets their Meta.Version, so the caller must not use cmd
// or its objects afterwards (a command decoded from the log, or built by
// Update, is owned by nobody else).
func (s *MemoryStore) Apply(index uint64, cmd *api.Command) error {
	return s.ApplyBatch(index, []*api.Command{cmd})[0]
}

// ApplyBatch applies independent commands that were committed together in
// one log entry at index: each in turn, all of its actions or none,
// exactly as Apply would apply it after the ones before it. It returns one
// error per command (nil for those applied). Objects written by the batch
// all get Meta.Version = index; a later command of the batch that carries
// the version an earlier one replaced fails with ErrSequenceConflict, as
// it would in separate entries. It is deterministic and takes ownership of
// cmds, like Apply; with an index not greater than AppliedIndex() every
// command fails with ErrStaleIndex and nothing changes.
func (s *MemoryStore) ApplyBatch(index uint64, cmds []*api.Command) []error {
	errs := make([]error, len(cmds))
	s.mu.Lock()
	if applied := s.applied.Load(); index <= applied {
		s.mu.Unlock()
		for i := range errs {
			errs[i] = fmt.Errorf("%w: command at index %d, the store has applied index %d", ErrStaleIndex, index, applied)
		}
		return errs
	}
	for i, cmd := range cmds {
		errs[i] = s.applyLocked(index, cmd)
	}
	s.applied.Store(index)
	s.publishLocked(s.events)
	clear(s.events)
	if cap(s.events) > 1024 {
		s.events = nil // do not keep the buffer of a huge command
	} else {
		s.events = s.events[:0]
	}
	s.mu.Unlock()
	s.wake()
	return errs
}

// applyLocked checks every action of cmd in overlays, then applies them
// all to the tables and collects their events in s.events.
func (s *MemoryStore) applyLocked(index uint64, cmd *api.Command) error {
	actions := cmd.GetActions()
	var ov overlays
	ov.init(s.st)
	for i, a := range actions {
		// The last action's outcome need not be recorded: nothing is
		// checked after it.
		if err := ov.check(a, i < len(actions)-1); err != nil {
			return err
		}
	}
	for _, a := range actions {
		s.commit(index, a)
	}
	return nil
}

// check checks one action against the overlays and, when record is set,
// stages its outcome for the actions after it.
func (ov *overlays) check(a *api.StoreAction, record bool) error {
	k := a.GetKind()
	switch t := a.GetTarget().(type) {
	case *api.StoreAction_Cluster:
		return checkAction(&ov.clusters, k, t.Cluster, record)
	case *api.StoreAction_Node:
		return checkAction(&ov.nodes, k, t.Node, record)
	case *api.StoreAction_Service:
		return checkAction(&ov.services, k, t.Service, record)
	case *api.StoreAction_Task:
		return checkAction(&ov.tasks, k, t.Task, record)
	case *api.StoreAction_Network:
		return checkAction(&ov.networks, k, t.Network, record)
	case *api.StoreAction_Secret:
		return checkAction(&ov.secrets, k, t.Secret, record)
	case *api.StoreAction_Config:
		return checkAction(&ov.configs, k, t.Config, record)
	}
	return fmt.Errorf("%w: %s action without an object", ErrInvalidObject, actionVerb(k))
}

func checkAction[T object](o *overlay[T], k api.StoreAction_Kind, obj T, record bool) error {
	switch k {
	case api.StoreAction_KIND_CREATE:
		if err := o.checkCreate(obj); err != nil {
			return err
		}
		if record {
			o.put(obj)
		}
	case api.StoreAction_KIND_UPDATE:
		if _, err := o.checkUpdate(obj); err != nil {
			return err
		}
		if record {
			o.put(obj)
		}
	case api.StoreAction_KIND_REMOVE:
		if _, err := o.checkVersion(k, obj); err != nil {
			return err
		}
		if record {
			o.del(obj.GetId())
		}
	default:
		if err := o.checkObject(k, obj); err != nil {
			return err
		}
		return fmt.Errorf("%w: unknown action kind %d on %s %s", ErrInvalidObject, int32(k), o.t.desc.name, obj.GetId())
	}
	return nil
}

// commit applies one checked action to the tables.
func (s *MemoryStore) commit(index uint64, a *api.StoreAction) {
	k, st := a.GetKind(), s.st
	switch t := a.GetTarget().(type) {
	case *api.StoreAction_Cluster:
		s.events = commitAction(st.clusters, k, t.Cluster, index, s.events)
	case *api.StoreAction_Node:
		s.events = commitAction(st.nodes, k, t.Node, index, s.events)
	case *api.StoreAction_Service:
		s.events = commitAction(st.services, k, t.Service, index, s.events)
	case *api.StoreAction_Task:
		s.events = commitAction(st.tasks, k, t.Task, index, s.events)
	case *api.StoreAction_Network:
		s.events = commitAction(st.networks, k, t.Network, index, s.events)
	case *api.StoreAction_Secret:
		s.events = commitAction(st.secrets, k, t.Secret, index, s.events)
	case *api.StoreAction_Config:
		s.events = commitAction(st.configs, k, t.Config, index, s.events)
	}
}

// commitAction applies one checked action to a table and appends its
// event.
func commitAction[T object](t *table[T], k api.StoreAction_Kind, obj T, index uint64, events []Event) []Event {
	switch k {
	case api.StoreAction_KIND_CREATE:
		stamp(t.desc, obj, index)
		t.insert(obj)
		return append(events, Event{Kind: EventCreate, Object: obj, Index: index})
	case api.StoreAction_KIND_UPDATE:
		e := t.byID[obj.GetId()]
		old := e.obj
		stamp(t.desc, obj, index)
		t.update(e, obj)
		return append(events, Event{Kind: EventUpdate, Object: obj, Old: old, Index: index})
	case api.StoreAction_KIND_REMOVE:
		e := t.byID[obj.GetId()]
		t.remove(e)
		return append(events, Event{Kind: EventRemove, Object: e.obj, Index: index})
	}
	return events
}

// stamp sets the object's Meta.Version to the index of the write.
func stamp[T object](d *kindDesc[T], obj T, index uint64) {
	m := obj.GetMeta()
	if m == nil {
		m = &api.Meta{}
		d.setMeta(obj, m)
	}
	m.Version = index
}
