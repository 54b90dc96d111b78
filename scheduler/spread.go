package scheduler

import (
	"cmp"
	"math/rand/v2"
	"slices"
)

// This file shares a group's tasks over the values of its placement
// preferences: swarmkit's decision tree. The feasible nodes are split by
// the first preference's label (nodes without the label form a branch of
// their own), the tasks are shared out over the branches, and each branch
// is split again by the next preference, down to leaves whose nodes are
// scored by the heap.

// branch is a set of feasible nodes sharing the preference values so far.
type branch struct {
	nodes []int32
	// existing counts the group's service's tasks on the branch's nodes;
	// capacity is how many more tasks of the group they take (capped).
	existing int
	capacity int
}

// spreadTree shares k tasks over the feasible nodes in members (feasible
// positions in f) by keys from depth on, and calls leaf for every leaf
// with a share above zero. A share never exceeds the leaf's capacity, the
// sum of its nodes' room.
func spreadTree(keys []SpreadKey, depth int, members []int32, k int, f *feasible, rng *rand.Rand, leaf func(nodes []int32, k int)) {
	if k <= 0 {
		return
	}
	if depth == len(keys) {
		leaf(members, k)
		return
	}
	branches := partition(keys[depth], members, f)
	existing := make([]int, len(branches))
	capacity := make([]int, len(branches))
	for i, b := range branches {
		existing[i], capacity[i] = b.existing, b.capacity
	}
	shares := waterfill(existing, capacity, k, rng)
	for i, b := range branches {
		spreadTree(keys, depth+1, b.nodes, shares[i], f, rng, leaf)
	}
}

// partition splits members by their value of key: one branch per value
// in increasing order, then the nodes without the label.
func partition(key SpreadKey, members []int32, f *feasible) []branch {
	index := make(map[string]int)
	var values []string
	var missing branch
	var byValue []branch
	for _, m := range members {
		v, ok := key.value(f.node(m))
		var b *branch
		if !ok {
			b = &missing
		} else {
			i, seen := index[v]
			if !seen {
				i = len(byValue)
				index[v] = i
				values = append(values, v)
				byValue = append(byValue, branch{})
			}
			b = &byValue[i]
		}
		b.nodes = append(b.nodes, m)
		b.existing += f.service[m]
		b.capacity = min(b.capacity+f.room[m], f.limit)
	}
	order := make([]int, len(values))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(values[a], values[b]) })
	out := make([]branch, 0, len(order)+1)
	for _, i := range order {
		out = append(out, byValue[i])
	}
	if len(missing.nodes) > 0 {
		out = append(out, missing)
	}
	return out
}

// waterfill shares k tasks over branches that hold existing[i] tasks and
// take at most capacity[i] more, so that the totals (existing + share)
// end as level as the capacities allow: the branches with the fewest
// tasks are filled first, up to a common level, and the last tasks that
// cannot raise every branch to the next level go to branches drawn with
// rng. When the capacities sum to at most k, every branch gets its
// capacity. The shares sum to min(k, sum of capacities).
func waterfill(existing, capacity []int, k int, rng *rand.Rand) []int {
	shares := make([]int, len(existing))
	total := 0
	for _, c := range capacity {
		total += c
	}
	if total <= k {
		copy(shares, capacity)
		return shares
	}
	// filled is how many tasks raising every branch to level holds.
	filled := func(level int) int {
		n := 0
		for i, e := range existing {
			n += min(max(level-e, 0), capacity[i])
		}
		return n
	}
	lo, hi := slices.Min(existing), slices.Max(existing)+k
	// The smallest level holding at least k tasks; filled(hi) >= k since
	// every branch with capacity is raised by k or to its capacity.
	for lo < hi {
		mid := lo + (hi-lo)/2
		if filled(mid) >= k {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	level := lo
	left := k
	var candidates []int
	for i, e := range existing {
		shares[i] = min(max(level-1-e, 0), capacity[i])
		left -= shares[i]
		if e <= level-1 && shares[i] < capacity[i] {
			candidates = append(candidates, i)
		}
	}
	// left <= len(candidates): filled(level) >= k. Draw left of them.
	for j := 0; j < left; j++ {
		r := j + rng.IntN(len(candidates)-j)
		candidates[j], candidates[r] = candidates[r], candidates[j]
		shares[candidates[j]]++
	}
	return shares
}
