package scheduler

import (
	"math/rand/v2"

	"github.com/shoalhq/shoal/proto/api"
)

// Decision is the scheduler's answer for one task: the node it goes to,
// or why it goes nowhere. Exactly one of NodeID and Reason is set.
type Decision struct {
	TaskID string
	NodeID string
	// Reason is why no node fits, e.g. "no suitable node (insufficient
	// memory on 3 nodes; 1 node not available)".
	Reason string
}

// Result is the placement of a group: one Decision per task of the
// group, in the group's order, and how many of them are placed.
type Result struct {
	Decisions []Decision
	Placed    int
}

// Assignments returns the placed tasks' nodes by task ID.
func (r *Result) Assignments() map[string]string {
	out := make(map[string]string, r.Placed)
	for _, d := range r.Decisions {
		if d.NodeID != "" {
			out[d.TaskID] = d.NodeID
		}
	}
	return out
}

// Schedule places one group against a snapshot with the given seed
// (normally Seed(g)). It is a pure function: the same snapshot, group and
// seed give the same result, and the snapshot is not changed.
func Schedule(s *Snapshot, g *Group, seed uint64) *Result {
	return NewPlanner(s).Place(g, seed)
}

// Planner places groups one after another against one snapshot, each
// group seeing the tasks placed by the groups before it (their counts,
// reservations, host ports). The snapshot is never modified: the planner
// keeps its placements on the side. A Planner is not safe for concurrent
// use; its results depend only on the snapshot and the sequence of
// groups and seeds.
type Planner struct {
	snap *Snapshot
	// tasks counts the tasks placed on each node (by snapshot position).
	tasks []int
	// cpu and memory are the reservations placed on each node; nil until
	// a group that reserves is placed.
	cpu    []int64
	memory []int64
	// ports are the host ports placed on each node; nil until needed.
	ports map[int32][]HostPort
	// service counts the tasks placed per service and node.
	service map[string]map[int32]int
}

// NewPlanner returns a planner over s.
func NewPlanner(s *Snapshot) *Planner {
	return &Planner{snap: s, tasks: make([]int, s.Len()), service: make(map[string]map[int32]int)}
}

// Place places the tasks of g, using seed for tie-breaks, and returns a
// decision per task. Tasks with a preset node (global services) are
// placed on it if it passes every filter, and are left with the reason
// otherwise; the others are spread over the preferences and scored (see
// the package comment). When the spec cannot be prepared (NewSpec fails)
// every task gets the error as its reason.
func (p *Planner) Place(g *Group, seed uint64) *Result {
	res := &Result{Decisions: make([]Decision, len(g.Tasks))}
	for i, t := range g.Tasks {
		res.Decisions[i].TaskID = t.GetId()
	}
	spec, err := NewSpec(g.ServiceID, g.Spec, g.Endpoint)
	if err != nil {
		for i := range res.Decisions {
			res.Decisions[i].Reason = err.Error()
		}
		return res
	}
	filters := Pipeline(spec)
	var free []int
	for i, t := range g.Tasks {
		if id := t.GetNodeId(); id != "" {
			p.placePreset(spec, filters, &res.Decisions[i], id)
		} else {
			free = append(free, i)
		}
	}
	if len(free) > 0 {
		p.placeFree(spec, filters, res.Decisions, free, seed)
	}
	for _, d := range res.Decisions {
		if d.NodeID != "" {
			res.Placed++
		}
	}
	return res
}

// usage is what runs on the node at snapshot position i, placements
// included, for tasks of s.
func (p *Planner) usage(s *Spec, i int) usage {
	u := usageOf(s, &p.snap.nodes[i])
	if p.cpu != nil {
		u.cpu += p.cpu[i]
		u.memory += p.memory[i]
	}
	if d := p.service[s.ServiceID]; d != nil {
		u.service += d[int32(i)]
	}
	if p.ports != nil {
		u.extraPorts = p.ports[int32(i)]
	}
	return u
}

// add records c tasks of s placed on the node at snapshot position i.
func (p *Planner) add(s *Spec, i int, c int) {
	p.tasks[i] += c
	if s.CPU > 0 || s.Memory > 0 {
		if p.cpu == nil {
			p.cpu = make([]int64, len(p.tasks))
			p.memory = make([]int64, len(p.tasks))
		}
		p.cpu[i] += int64(c) * s.CPU
		p.memory[i] += int64(c) * s.Memory
	}
	if len(s.HostPorts) > 0 {
		if p.ports == nil {
			p.ports = make(map[int32][]HostPort)
		}
		for range c {
			p.ports[int32(i)] = append(p.ports[int32(i)], s.HostPorts...)
		}
	}
	d := p.service[s.ServiceID]
	if d == nil {
		d = make(map[int32]int)
		p.service[s.ServiceID] = d
	}
	d[int32(i)] += c
}

// passes runs filter f on the node at snapshot position i with usage u.
func (p *Planner) passes(f Filter, s *Spec, i int, u *usage) bool {
	if cf, ok := f.(capacityFilter); ok {
		return cf.room(s, p.snap.nodes[i].Node, u, 1) > 0
	}
	return f.Check(s, &p.snap.nodes[i])
}

// placePreset places a task whose node is preset, or explains why not.
func (p *Planner) placePreset(s *Spec, filters []Filter, d *Decision, nodeID string) {
	i, ok := p.snap.index(nodeID)
	if !ok {
		d.Reason = noSuitableNode([]string{"node " + nodeID + " is not in the cluster"})
		return
	}
	u := p.usage(s, i)
	for _, f := range filters {
		if !p.passes(f, s, i, &u) {
			d.Reason = noSuitableNode([]string{f.Explain(1)})
			return
		}
	}
	d.NodeID = nodeID
	p.add(s, i, 1)
}

// feasible is a group's working set: the nodes that pass the filters that
// depend on the node alone, by feasible position m, with their counts and
// room for the group.
type feasible struct {
	snap *Snapshot
	// pos is each feasible node's snapshot position.
	pos []int32
	// service and tasks count the group's service's tasks and all tasks
	// on the node; room is how many more tasks of the group it takes,
	// capped at limit, the group's number of tasks to place.
	service []int
	tasks   []int
	room    []int
	limit   int
}

// node returns the feasible node m.
func (f *feasible) node(m int32) *api.Node { return f.snap.nodes[f.pos[m]].Node }

// placeFree places the group's tasks at positions free, which have no
// preset node: filter once, spread, score with the heap, explain.
func (p *Planner) placeFree(s *Spec, filters []Filter, decisions []Decision, free []int, seed uint64) {
	k := len(free)
	static := filters
	var dynamic []capacityFilter
	for j, f := range filters {
		if cf, ok := f.(capacityFilter); ok {
			if dynamic == nil {
				static = filters[:j]
			}
			dynamic = append(dynamic, cf)
		}
	}
	fails := make([]int, len(filters))
	fe := &feasible{snap: p.snap, limit: k}
	for i := range p.snap.nodes {
		n := &p.snap.nodes[i]
		ok := true
		for j, f := range static {
			if !f.Check(s, n) {
				fails[j]++
				ok = false
				break
			}
		}
		if ok {
			fe.pos = append(fe.pos, int32(i))
		}
	}

	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	e := len(fe.pos)
	fe.service, fe.tasks, fe.room = make([]int, e), make([]int, e), make([]int, e)
	ties := make([]uint64, e)
	members := make([]int32, e)
	// u is reused: passed by pointer to interface methods, it escapes.
	var u usage
	for m, i := range fe.pos {
		u = p.usage(s, int(i))
		fe.service[m] = u.service
		fe.tasks[m] = p.snap.nodes[i].Tasks + p.tasks[i]
		room := k
		for _, cf := range dynamic {
			if room = cf.room(s, p.snap.nodes[i].Node, &u, room); room == 0 {
				break
			}
		}
		fe.room[m] = room
		ties[m] = rng.Uint64()
		members[m] = int32(m)
	}

	assigned := make([]int32, 0, k)
	put := func(m int32) { assigned = append(assigned, m) }
	var h nodeHeap
	leaf := func(nodes []int32, share int) {
		h = h[:0]
		for _, m := range nodes {
			if fe.room[m] > 0 {
				h = append(h, slot{service: int32(fe.service[m]), tasks: int32(fe.tasks[m]), tie: ties[m], room: int32(fe.room[m]), node: m})
			}
		}
		h.init()
		h.place(share, put)
	}
	if len(s.Spread) == 0 {
		leaf(members, k)
	} else {
		spreadTree(s.Spread, 0, members, k, fe, rng, leaf)
	}

	placed := make([]int, e)
	for j, m := range assigned {
		placed[m]++
		decisions[free[j]].NodeID = fe.node(m).GetId()
	}
	for m, c := range placed {
		if c > 0 {
			p.add(s, int(fe.pos[m]), c)
		}
	}
	if len(assigned) == k {
		return
	}

	// Every feasible node is now full for the group: count each under
	// the first capacity filter it fails.
	for _, i := range fe.pos {
		u = p.usage(s, int(i))
		for j, cf := range dynamic {
			if cf.room(s, p.snap.nodes[i].Node, &u, 1) == 0 {
				fails[len(static)+j]++
				break
			}
		}
	}
	reason := explain(filters, fails)
	for _, j := range free[len(assigned):] {
		decisions[j].Reason = reason
	}
}
