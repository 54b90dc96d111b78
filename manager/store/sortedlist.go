package store

import (
	"slices"
	"sort"
)

// blockSize is the number of entries above which a block of a sortedList
// splits in two. Blocks are small enough that inserting into one is a short
// copy, and few enough that the list of blocks stays short: a million
// entries make a few thousand blocks.
const blockSize = 512

// entry is one stored object. Tables and indexes share the entry, so an
// update that keeps an object's index keys only swaps obj. The id never
// changes.
type entry[T object] struct {
	id  string
	obj T
}

// sortedList is a set of entries ordered by ID: a list of sorted blocks
// (every ID in a block is lower than every ID in the next). Insert and
// remove cost O(log n + blockSize); iterating k entries costs O(k).
// A sortedList is not safe for concurrent writes; the store's lock guards
// it.
type sortedList[T object] struct {
	blocks [][]*entry[T]
	n      int
}

// len is the number of entries.
func (l *sortedList[T]) len() int { return l.n }

// block returns the index of the block where id belongs: the first block
// whose last ID is >= id, or else the last block. l must not be empty.
func (l *sortedList[T]) block(id string) int {
	i := sort.Search(len(l.blocks), func(i int) bool {
		b := l.blocks[i]
		return b[len(b)-1].id >= id
	})
	if i == len(l.blocks) {
		i--
	}
	return i
}

// searchBlock returns the position of the first entry of b whose ID is >=
// id.
func searchBlock[T object](b []*entry[T], id string) int {
	return sort.Search(len(b), func(i int) bool { return b[i].id >= id })
}

// insert adds e, or replaces the entry with the same ID.
func (l *sortedList[T]) insert(e *entry[T]) {
	if len(l.blocks) == 0 {
		b := make([]*entry[T], 1, 8)
		b[0] = e
		l.blocks = append(l.blocks, b)
		l.n = 1
		return
	}
	bi := l.block(e.id)
	b := l.blocks[bi]
	i := searchBlock(b, e.id)
	if i < len(b) && b[i].id == e.id {
		b[i] = e
		return
	}
	b = slices.Insert(b, i, e)
	l.n++
	if len(b) <= blockSize {
		l.blocks[bi] = b
		return
	}
	half := len(b) / 2
	right := make([]*entry[T], len(b)-half, blockSize)
	copy(right, b[half:])
	clear(b[half:])
	l.blocks[bi] = b[:half]
	l.blocks = slices.Insert(l.blocks, bi+1, right)
}

// remove deletes the entry with the ID and reports whether there was one.
func (l *sortedList[T]) remove(id string) bool {
	if len(l.blocks) == 0 {
		return false
	}
	bi := l.block(id)
	b := l.blocks[bi]
	i := searchBlock(b, id)
	if i == len(b) || b[i].id != id {
		return false
	}
	b = slices.Delete(b, i, i+1)
	l.n--
	switch {
	case len(b) == 0:
		l.blocks = slices.Delete(l.blocks, bi, bi+1)
	case bi+1 < len(l.blocks) && len(b)+len(l.blocks[bi+1]) <= blockSize/2:
		// Merge small neighbours so heavy deletion does not leave many
		// tiny blocks behind.
		l.blocks[bi] = append(b, l.blocks[bi+1]...)
		l.blocks = slices.Delete(l.blocks, bi+1, bi+2)
	default:
		l.blocks[bi] = b
	}
	return true
}

// ascend calls fn on the entries whose ID is >= from, in ID order, until fn
// returns false.
func (l *sortedList[T]) ascend(from string, fn func(*entry[T]) bool) {
	if len(l.blocks) == 0 {
		return
	}
	bi := l.block(from)
	i := searchBlock(l.blocks[bi], from)
	for ; bi < len(l.blocks); bi++ {
		for _, e := range l.blocks[bi][i:] {
			if !fn(e) {
				return
			}
		}
		i = 0
	}
}

// objects returns every object in ID order, in a new slice; nil when the
// list is empty.
func (l *sortedList[T]) objects() []T {
	if l == nil || l.n == 0 {
		return nil
	}
	out := make([]T, 0, l.n)
	for _, b := range l.blocks {
		for _, e := range b {
			out = append(out, e.obj)
		}
	}
	return out
}
