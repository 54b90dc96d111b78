package scheduler

// slot is a candidate node in a leaf's heap: its score and how many more
// tasks of the group it can take.
type slot struct {
	// tie is the node's random tie-break, drawn from the group's seed.
	tie uint64
	// service is the node's count of the group's service's tasks, live
	// and placed; tasks its count of all tasks. Lower is better, service
	// first.
	service int32
	tasks   int32
	// room is how many more tasks of the group the node takes (> 0).
	room int32
	// node is the node's position among the group's feasible nodes.
	node int32
}

// before orders slots: fewest tasks of the service, then fewest tasks,
// then the random tie-break (then the position, so the order is total).
func (a *slot) before(b *slot) bool {
	if a.service != b.service {
		return a.service < b.service
	}
	if a.tasks != b.tasks {
		return a.tasks < b.tasks
	}
	if a.tie != b.tie {
		return a.tie < b.tie
	}
	return a.node < b.node
}

// nodeHeap is a 4-ary min-heap of slots by before: the children of i are
// 4i+1..4i+4. It is typed rather than container/heap, and 4-ary rather
// than binary, so that a placement costs one short sift over a few
// adjacent 24-byte values, not interface calls and a cache miss per level.
type nodeHeap []slot

// init establishes the heap order in O(n).
func (h nodeHeap) init() {
	for i := (len(h) - 2) / 4; len(h) > 1 && i >= 0; i-- {
		h.down(i)
	}
}

// down moves h[i] down to its place.
func (h nodeHeap) down(i int) {
	n := len(h)
	if i >= n {
		return
	}
	x := h[i]
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < c+4 && j < n; j++ {
			if h[j].before(&h[m]) {
				m = j
			}
		}
		if !h[m].before(&x) {
			break
		}
		h[i] = h[m]
		i = m
	}
	h[i] = x
}

// place hands k tasks, one at a time, to the best node, counting each on
// it, and calls put with the node's position for each. It stops early
// when no node has room, and returns how many it placed.
func (h *nodeHeap) place(k int, put func(node int32)) int {
	placed := 0
	for placed < k && len(*h) > 0 {
		s := &(*h)[0]
		put(s.node)
		placed++
		s.service++
		s.tasks++
		s.room--
		if s.room == 0 {
			last := len(*h) - 1
			(*h)[0] = (*h)[last]
			*h = (*h)[:last]
		}
		h.down(0)
	}
	return placed
}
