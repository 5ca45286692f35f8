package replica

import (
	"context"
	"sync"
	"time"
)

// leaderView is Dragonboat's view of the leader on this node: its replica
// ID (0: none known) and the term it leads.
type leaderView struct{ leader, term uint64 }

// leaderWatch publishes leader changes to the proposals in flight
// (proposeCommand), which re-propose when a new leader becomes known: a
// proposal that a follower forwarded to a leader that then died is lost
// without an answer, and would otherwise wait for its deadline. The
// listener updates it; update only swaps a value and closes a channel
// under a mutex held for nothing else, so the callback never waits.
type leaderWatch struct {
	mu      sync.Mutex
	view    leaderView
	changed chan struct{} // closed, and replaced, on every change
}

func newLeaderWatch() *leaderWatch {
	return &leaderWatch{changed: make(chan struct{})}
}

// update records Dragonboat's latest view; a repeat of the current one
// wakes nobody.
func (w *leaderWatch) update(v leaderView) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v == w.view {
		return
	}
	w.view = v
	close(w.changed)
	w.changed = make(chan struct{})
}

// current returns the view and a channel closed at the next change.
func (w *leaderWatch) current() (leaderView, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.view, w.changed
}

// waitMoved waits until a leader other than from is known, and reports
// whether one is before ctx ends or expired fires: woken by the changes
// themselves, not by polling Dragonboat.
func (w *leaderWatch) waitMoved(ctx context.Context, from uint64, expired <-chan time.Time) bool {
	for {
		v, changed := w.current()
		if v.leader != 0 && v.leader != from {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		case <-expired:
			return false
		}
	}
}
