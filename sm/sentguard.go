package sm

import (
	"sync"
	"time"
)

// Bounds of how long a complete stream's index is refused again.
const (
	minResendGuard = time.Second
	maxResendGuard = time.Minute
)

// sentGuard remembers the last snapshot stream that completed, to refuse
// a second stream of the same index right after it.
//
// Dragonboat's leader puts the remote in a wait state once a stream ends,
// and the next heartbeat answer moves it to retry: if the receiver's Raft
// has not yet acknowledged the snapshot (it first fsyncs the received
// file, which for a large database takes about as long as the stream), the
// leader's log no longer holds the entries it would send and it streams
// the whole database again. That second stream competes for the disk with
// the install of the first and is thrown away on arrival. An abort is
// cheap and tolerated: the leader waits and retries, and once the receiver
// acknowledges, it needs no snapshot. The refusal lasts as long as the
// stream took (within bounds), so a receiver that really lost the stream
// (it crashed) gets the next one after that delay at worst.
type sentGuard struct {
	mu    sync.Mutex
	index uint64
	until time.Time
	// refused counts the refusals since the last complete stream.
	refused int
}

// sent records a complete stream of index that took took.
func (g *sentGuard) sent(index uint64, took time.Duration, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.index, g.until, g.refused = index, now.Add(min(max(took, minResendGuard), maxResendGuard)), 0
}

// refuse reports whether a stream of index should be aborted, for how much
// longer the refusal lasts, and whether it is the first since that stream.
func (g *sentGuard) refuse(index uint64, now time.Time) (refused bool, left time.Duration, first bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if index == 0 || index != g.index || !now.Before(g.until) {
		return false, 0, false
	}
	g.refused++
	return true, g.until.Sub(now), g.refused == 1
}
