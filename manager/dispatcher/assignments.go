package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
)

// maxChangesPerMessage is how many changed tasks (updated or removed) make
// a stream send at once rather than wait out AssignmentBatchDelay.
const maxChangesPerMessage = 1000

// errResync makes a stream start over with a COMPLETE message.
var errResync = errors.New("assignments: events were missed")

// Assignments streams a node's assignments through send until ctx ends,
// Run's context ends (ErrNotRunning: leadership was lost) or send fails.
//
// The first message is COMPLETE: every task whose node_id is the node and
// whose status is ASSIGNED or later, until it is deleted from the store.
// Then INCREMENTAL messages carry, gathered for AssignmentBatchDelay, the
// tasks newly visible to the node (assigned, or created on it) and those
// changed in anything but their status and meta (a desired state raised,
// for one) in update_tasks, and the tasks deleted, or no longer on the
// node, in remove_tasks. Status changes alone are not sent: the agent
// made them. When the stream falls behind the store it starts over with
// a new COMPLETE message.
//
// Both kinds of message also carry the networks the node's tasks attach
// to: in update_networks when a task first needs one (all of them in a
// COMPLETE message), in remove_networks once no task of the node does.
//
// Messages carry the store's shared task objects: send must not change
// them. Fails at once with ErrNotRunning when Run is not running, and
// with ErrNodeRemoved for an unknown node.
func (d *Dispatcher) Assignments(ctx context.Context, nodeID string, send func(*api.AssignmentsMessage) error) error {
	rs := d.current()
	if rs == nil {
		return ErrNotRunning
	}
	var node *api.Node
	d.cfg.Store.View(func(tx store.ReadTx) { node = tx.GetNode(nodeID) })
	if node == nil {
		return fmt.Errorf("node %s: %w", nodeID, ErrNodeRemoved)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(rs.ctx, cancel)()
	s := &assignmentStream{d: d, hub: rs.hub, node: nodeID, send: send}
	for {
		err := s.follow(ctx)
		switch {
		case errors.Is(err, errResync):
			continue
		case rs.ctx.Err() != nil:
			return ErrNotRunning
		}
		return err
	}
}

// assignmentStream is one node's stream: what the node was sent and what
// waits to be sent.
type assignmentStream struct {
	d    *Dispatcher
	hub  *hub
	node string
	send func(*api.AssignmentsMessage) error

	// index is the store index the last COMPLETE listing saw; events at
	// or below it are in that listing.
	index uint64
	// known is every task the node was sent, as last sent or seen.
	known map[string]*api.Task
	// pending are the changes not sent yet, in the order they came:
	// a task to update, or nil to remove the ID.
	pending map[string]*api.Task
	order   []string
	// nets are the IDs of the networks the node was sent.
	nets map[string]bool
}

// follow subscribes, sends a COMPLETE message and then INCREMENTAL ones,
// until ctx ends (ctx.Err()), the hub stops (ErrNotRunning), events were
// missed (errResync) or send fails.
func (s *assignmentStream) follow(ctx context.Context) error {
	sub, err := s.hub.subscribe(s.node)
	if err != nil {
		return err
	}
	defer sub.unsubscribe()
	if err := s.sendComplete(); err != nil {
		return err
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var due <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-due:
			due = nil
			if err := s.flush(); err != nil {
				return err
			}
		case <-sub.notify:
			events, ended, overflowed := sub.take()
			if ended {
				if overflowed {
					return errResync
				}
				return ErrNotRunning
			}
			for _, ev := range events {
				if ev.Index > s.index {
					s.note(ev)
				}
			}
			switch {
			case len(s.order) >= maxChangesPerMessage:
				timer.Stop()
				due = nil
				if err := s.flush(); err != nil {
					return err
				}
			case len(s.order) > 0 && due == nil:
				timer.Reset(s.d.cfg.AssignmentBatchDelay)
				due = timer.C
			}
		}
	}
}

// sendComplete lists the node's tasks and sends them as COMPLETE.
func (s *assignmentStream) sendComplete() error {
	var tasks []*api.Task
	var nets []*api.Network
	s.d.cfg.Store.View(func(tx store.ReadTx) {
		// Apply changes the applied index only under the store's write
		// lock, so it is the index of the state this view reads.
		s.index = s.d.cfg.Store.AppliedIndex()
		for _, t := range tx.FindTasks(store.ByNodeID(s.node)) {
			if visible(t, s.node) {
				tasks = append(tasks, t)
			}
		}
		s.known = make(map[string]*api.Task, len(tasks))
		for _, t := range tasks {
			s.known[t.GetId()] = t
		}
		s.nets = map[string]bool{}
		nets, _ = s.networkChanges(tx)
	})
	s.pending, s.order = map[string]*api.Task{}, nil
	return s.send(&api.AssignmentsMessage{Type: api.AssignmentsMessage_TYPE_COMPLETE, UpdateTasks: tasks, UpdateNetworks: nets})
}

// networkChanges compares the networks the known tasks attach to with
// those the node was sent: it returns the objects of those to send and
// the IDs of those to forget, and records the new set.
func (s *assignmentStream) networkChanges(tx store.ReadTx) (add []*api.Network, remove []string) {
	refs := map[string]bool{}
	for _, t := range s.known {
		for _, a := range t.GetNetworks() {
			refs[a.GetNetworkId()] = true
		}
	}
	for id := range refs {
		if !s.nets[id] {
			if n := tx.GetNetwork(id); n != nil {
				add = append(add, n)
				s.nets[id] = true
			}
		}
	}
	for id := range s.nets {
		if !refs[id] {
			remove = append(remove, id)
			delete(s.nets, id)
		}
	}
	slices.SortFunc(add, func(a, b *api.Network) int { return strings.Compare(a.GetId(), b.GetId()) })
	slices.Sort(remove)
	return add, remove
}

// note records what one event means for the node.
func (s *assignmentStream) note(ev store.Event) {
	t := ev.Object.(*api.Task)
	id := t.GetId()
	prev, known := s.known[id]
	switch {
	case ev.Kind == store.EventRemove || !visible(t, s.node):
		if known {
			delete(s.known, id)
			s.queue(id, nil)
		}
	case !known || !sameForAgent(prev, t):
		s.known[id] = t
		s.queue(id, t)
	default:
		s.known[id] = t // a status change: the agent made it
	}
}

func (s *assignmentStream) queue(id string, t *api.Task) {
	if _, ok := s.pending[id]; !ok {
		s.order = append(s.order, id)
	}
	s.pending[id] = t
}

// flush sends the pending changes as one INCREMENTAL message.
func (s *assignmentStream) flush() error {
	if len(s.order) == 0 {
		return nil
	}
	msg := &api.AssignmentsMessage{Type: api.AssignmentsMessage_TYPE_INCREMENTAL}
	for _, id := range s.order {
		if t := s.pending[id]; t != nil {
			msg.UpdateTasks = append(msg.UpdateTasks, t)
		} else {
			msg.RemoveTasks = append(msg.RemoveTasks, id)
		}
	}
	clear(s.pending)
	s.order = s.order[:0]
	s.d.cfg.Store.View(func(tx store.ReadTx) { msg.UpdateNetworks, msg.RemoveNetworks = s.networkChanges(tx) })
	return s.send(msg)
}

// visible reports whether node must know task t: it is placed there and
// at least ASSIGNED.
func visible(t *api.Task, node string) bool {
	return t.GetNodeId() == node && t.GetStatus().GetState() >= api.TaskState_TASK_STATE_ASSIGNED
}

// sameForAgent reports whether a and b differ only in what the agent does
// not act on: Meta (versions, times) and Status (observed, mostly by the
// agent itself). Every other field of Task is compared; the test
// TestSameForAgentCoversEveryTaskField fails when Task gains a field this
// function does not know.
func sameForAgent(a, b *api.Task) bool {
	return a.GetId() == b.GetId() &&
		a.GetServiceId() == b.GetServiceId() &&
		a.GetSlot() == b.GetSlot() &&
		a.GetNodeId() == b.GetNodeId() &&
		a.GetDesiredState() == b.GetDesiredState() &&
		a.GetSpecVersion() == b.GetSpecVersion() &&
		a.GetImageDigest() == b.GetImageDigest() &&
		a.GetDrain() == b.GetDrain() &&
		proto.Equal(a.GetSpec(), b.GetSpec()) &&
		proto.Equal(a.GetAnnotations(), b.GetAnnotations()) &&
		proto.Equal(a.GetEndpoint(), b.GetEndpoint()) &&
		slices.EqualFunc(a.GetNetworks(), b.GetNetworks(), func(x, y *api.NetworkAttachment) bool { return proto.Equal(x, y) })
}

// sameForAgentFields are the Task fields sameForAgent compares or ignores
// on purpose; the test checks it against the Task descriptor.
var sameForAgentFields = []string{
	"id", "meta", "spec", "service_id", "slot", "node_id", "annotations",
	"status", "desired_state", "networks", "endpoint", "spec_version",
	"image_digest", "drain",
}
