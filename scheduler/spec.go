package scheduler

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/shoalhq/shoal/proto/api"
)

// Group is a set of pending tasks of one service made from one spec
// version: the unit the scheduler places at once. Spec and Endpoint are
// the tasks' (all tasks of a group share them); Tasks are read for their
// ID and, for tasks of global services, their preset NodeId: such a task
// is placed on that node or not at all.
type Group struct {
	ServiceID   string
	SpecVersion uint64
	Spec        *api.TaskSpec
	// Endpoint carries the host-mode published ports; nil when none.
	Endpoint *api.Endpoint
	Tasks    []*api.Task
}

// Seed is the seed of a group's random tie-breaks: an FNV-1a hash of the
// service ID, the spec version and the task IDs in order. The same group
// gets the same seed in every process, so a placement replays.
func Seed(g *Group) uint64 {
	h := fnv.New64a()
	h.Write([]byte(g.ServiceID))
	var b [9]byte
	binary.BigEndian.PutUint64(b[1:], g.SpecVersion)
	h.Write(b[:])
	buf := make([]byte, 0, 4096)
	for _, t := range g.Tasks {
		if len(buf)+len(t.GetId())+1 > cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
		buf = append(buf, t.GetId()...)
		buf = append(buf, 0)
	}
	h.Write(buf)
	return h.Sum64()
}

// SpreadKey is a parsed placement preference: the node label or engine
// label whose values the tasks spread over.
type SpreadKey struct {
	Label  string
	Engine bool
}

// String renders the key as node.labels.NAME or engine.labels.NAME.
func (k SpreadKey) String() string {
	if k.Engine {
		return EngineLabelPrefix + k.Label
	}
	return NodeLabelPrefix + k.Label
}

// value returns the node's value of the key, and false when the node does
// not have the label.
func (k SpreadKey) value(n *api.Node) (string, bool) {
	labels := n.GetSpec().GetAnnotations().GetLabels()
	if k.Engine {
		labels = n.GetDescription().GetEngineLabels()
	}
	v, ok := labels[k.Label]
	return v, ok
}

// ParseSpread parses a placement preference's spread attribute,
// node.labels.NAME or engine.labels.NAME. Errors wrap
// ErrInvalidPreference.
func ParseSpread(s string) (SpreadKey, error) {
	if name, ok := strings.CutPrefix(s, NodeLabelPrefix); ok && name != "" {
		return SpreadKey{Label: name}, nil
	}
	if name, ok := strings.CutPrefix(s, EngineLabelPrefix); ok && name != "" {
		return SpreadKey{Label: name, Engine: true}, nil
	}
	return SpreadKey{}, fmt.Errorf("%w: %q: spread over node.labels.NAME or engine.labels.NAME, e.g. node.labels.zone", ErrInvalidPreference, s)
}

// Spec is a group's task spec prepared for the filters: what each task of
// the group asks of a node. It is made once per group by NewSpec and read
// by every filter check.
type Spec struct {
	ServiceID   string
	Constraints []Constraint
	Spread      []SpreadKey
	// Platforms, when not empty, are the platforms the task runs on; an
	// empty os or architecture matches any.
	Platforms []*api.Platform
	// CPU and Memory are each task's reservations (0: none).
	CPU    int64
	Memory int64
	// MaxReplicas caps the service's live tasks per node (0: no cap).
	MaxReplicas uint64
	// HostPorts are the host-mode ports each task binds.
	HostPorts []HostPort
}

// NewSpec prepares the spec of tasks of a service with the given task
// spec and endpoint (nil when it publishes nothing). It fails, wrapping
// ErrInvalidConstraint, ErrInvalidPreference or ErrDuplicateHostPort,
// when the spec can never be placed as written.
func NewSpec(serviceID string, ts *api.TaskSpec, ep *api.Endpoint) (*Spec, error) {
	pl := ts.GetPlacement()
	s := &Spec{
		ServiceID:   serviceID,
		Platforms:   pl.GetPlatforms(),
		CPU:         ts.GetResources().GetReservations().GetNanoCpus(),
		Memory:      ts.GetResources().GetReservations().GetMemoryBytes(),
		MaxReplicas: pl.GetMaxReplicas(),
		HostPorts:   HostPorts(ep),
	}
	for _, raw := range pl.GetConstraints() {
		c, err := ParseConstraint(raw)
		if err != nil {
			return nil, err
		}
		s.Constraints = append(s.Constraints, c)
	}
	for _, p := range pl.GetPreferences() {
		k, err := ParseSpread(p.GetSpread())
		if err != nil {
			return nil, err
		}
		s.Spread = append(s.Spread, k)
	}
	for i, p := range s.HostPorts {
		for _, q := range s.HostPorts[:i] {
			if p == q {
				return nil, fmt.Errorf("%w: %s", ErrDuplicateHostPort, p)
			}
		}
	}
	return s, nil
}
