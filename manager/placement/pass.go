package placement

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/shoalhq/shoal/manager/store"
	"github.com/shoalhq/shoal/proto/api"
	"github.com/shoalhq/shoal/scheduler"
)

// passStats is what one pass did, for logs and tests.
type passStats struct {
	groups   int
	waiting  int
	placed   int
	unplaced int
	// skipped counts decisions not committed because the task or the
	// node changed since planning; failed those whose commit failed.
	skipped int
	failed  int
	// commits counts the transactions proposed.
	commits int
	// list, plan and commit are the durations of the pass's phases.
	list, plan, commit time.Duration
}

// plan is one group's placement, waiting to be committed.
type plan struct {
	group   *scheduler.Group
	spec    *scheduler.Spec // nil when the spec cannot be prepared
	filters []scheduler.Filter
	// capacity is set when a filter depends on what runs on the node.
	capacity bool
	result   *scheduler.Result
}

// pass places every waiting task and reports whether another pass is
// due soon: some tasks or nodes changed between planning and committing.
// After a failed commit the next pass waits for the retry interval.
func (p *Placer) pass(ctx context.Context, m *model) bool {
	start := time.Now()
	m.failed = false
	nodes, tasks := p.listWaiting(m)
	groups := groupTasks(tasks)
	st := passStats{groups: len(groups), waiting: len(tasks), list: time.Since(start)}
	if len(groups) == 0 {
		m.unplaced = 0
		p.done(st, start)
		return false
	}

	planner := scheduler.NewPlanner(m.snapshot(nodes))
	plans := make([]*plan, len(groups))
	for i, g := range groups {
		pl := &plan{group: g, result: planner.Place(g, scheduler.Seed(g))}
		if spec, err := scheduler.NewSpec(g.ServiceID, g.Spec, g.Endpoint); err == nil {
			pl.spec = spec
			pl.filters = scheduler.Pipeline(spec)
			pl.capacity = spec.CPU > 0 || spec.Memory > 0 || len(spec.HostPorts) > 0 || spec.MaxReplicas > 0
		}
		st.placed += pl.result.Placed
		st.unplaced += len(g.Tasks) - pl.result.Placed
		plans[i] = pl
	}
	m.unplaced = st.unplaced
	st.plan = time.Since(start) - st.list
	if p.beforeCommit != nil {
		p.beforeCommit()
	}
	committing := time.Now()
	p.commit(ctx, m, nodes, plans, &st)
	st.commit = time.Since(committing)
	p.done(st, start)
	return st.skipped > 0 && ctx.Err() == nil
}

// done logs a pass and calls the test hook.
func (p *Placer) done(st passStats, start time.Time) {
	if st.waiting > 0 {
		p.cfg.Logger.Debug("placement pass", "groups", st.groups, "waiting", st.waiting, "placed", st.placed,
			"unplaced", st.unplaced, "skipped", st.skipped, "failed", st.failed, "commits", st.commits,
			"list", st.list, "plan", st.plan, "commit", st.commit, "took", time.Since(start))
	}
	if p.afterPass != nil {
		p.afterPass(st)
	}
}

// listWaiting reads the nodes and the waiting tasks, both sorted by ID:
// the unplaced tasks from the store's index of tasks without a node, and
// the model's tasks with a preset node. Presets that no longer wait are
// dropped from the model.
func (p *Placer) listWaiting(m *model) ([]*api.Node, []*api.Task) {
	ids := make([]string, 0, len(m.presets))
	for id := range m.presets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var nodes []*api.Node
	var unplaced, presets []*api.Task
	p.store.View(func(tx store.ReadTx) {
		nodes = tx.FindNodes(store.All())
		unplaced = tx.FindTasks(store.ByNodeID(""))
		for _, id := range ids {
			if t := tx.GetTask(id); t != nil && preset(t) {
				presets = append(presets, t)
			} else {
				delete(m.presets, id)
			}
		}
	})
	unplaced = slices.DeleteFunc(unplaced, func(t *api.Task) bool { return !waiting(t) })
	if len(presets) == 0 {
		return nodes, unplaced
	}
	tasks := make([]*api.Task, 0, len(unplaced)+len(presets))
	i, j := 0, 0
	for i < len(unplaced) || j < len(presets) {
		if j == len(presets) || (i < len(unplaced) && unplaced[i].GetId() < presets[j].GetId()) {
			tasks = append(tasks, unplaced[i])
			i++
		} else {
			tasks = append(tasks, presets[j])
			j++
		}
	}
	return nodes, tasks
}

// groupTasks groups tasks by service and spec version, in that order,
// keeping the tasks' order within each group. A group's spec and
// endpoint are its first task's.
func groupTasks(tasks []*api.Task) []*scheduler.Group {
	type key struct {
		service string
		version uint64
	}
	index := make(map[key]*scheduler.Group)
	var groups []*scheduler.Group
	var last *scheduler.Group
	for _, t := range tasks {
		if last == nil || last.ServiceID != t.GetServiceId() || last.SpecVersion != t.GetSpecVersion() {
			k := key{t.GetServiceId(), t.GetSpecVersion()}
			last = index[k]
			if last == nil {
				last = &scheduler.Group{ServiceID: k.service, SpecVersion: k.version, Spec: t.GetSpec(), Endpoint: t.GetEndpoint()}
				index[k] = last
				groups = append(groups, last)
			}
		}
		last.Tasks = append(last.Tasks, t)
	}
	slices.SortFunc(groups, func(a, b *scheduler.Group) int {
		if c := cmp.Compare(a.ServiceID, b.ServiceID); c != 0 {
			return c
		}
		return cmp.Compare(a.SpecVersion, b.SpecVersion)
	})
	return groups
}
