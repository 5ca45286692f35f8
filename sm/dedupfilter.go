package sm

import (
	"hash/maphash"
)

// dedupFilter answers "never remembered" for a request ID without a query:
// every ID in the dedup table is in it, so a miss here is a miss there.
// It may also hold IDs the table no longer has (a batch undone by a client
// ROLLBACK and redone puts the same ID twice); those cost one lookup.
//
// Almost every write is new, and the lookup it replaces was the dearest
// statement of an insert's apply: a go-sqlite3 query, rows and all.
type dedupFilter struct {
	seed  maphash.Seed
	count map[uint64]uint32
	// order holds the remembered IDs by log index, oldest first from head,
	// so that pruning by index drops them from count.
	order []filterEntry
	head  int
}

type filterEntry struct {
	idx  uint64
	hash uint64
}

func newDedupFilter() *dedupFilter {
	return &dedupFilter{seed: maphash.MakeSeed(), count: make(map[uint64]uint32)}
}

// mayContain reports whether id may be in the table.
func (f *dedupFilter) mayContain(id []byte) bool {
	return f.count[maphash.Bytes(f.seed, id)] > 0
}

// add records id, remembered at log index idx. Indexes arrive in
// non-decreasing order.
func (f *dedupFilter) add(idx uint64, id []byte) {
	h := maphash.Bytes(f.seed, id)
	f.count[h]++
	f.order = append(f.order, filterEntry{idx: idx, hash: h})
}

// prune forgets the IDs remembered before index below, as the table's
// prune deletes them.
func (f *dedupFilter) prune(below uint64) {
	for f.head < len(f.order) && f.order[f.head].idx < below {
		h := f.order[f.head].hash
		if f.count[h] <= 1 {
			delete(f.count, h)
		} else {
			f.count[h]--
		}
		f.head++
	}
	// Reclaim the popped front once it is most of the slice.
	if f.head > 1024 && f.head*2 > len(f.order) {
		n := copy(f.order, f.order[f.head:])
		clear(f.order[n:])
		f.order = f.order[:n]
		f.head = 0
	}
}

// len is the number of IDs held.
func (f *dedupFilter) len() int { return len(f.order) - f.head }
