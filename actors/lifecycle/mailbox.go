package lifecycle

import (
	"sync"

	"github.com/skiffdb/skiff/sm"
)

// mailbox is lifecycle's inbox. put never blocks (it holds a mutex for an
// append), so Dragonboat's callbacks and the state machine's apply path can
// call it, and it never loses an event that changes state: those are
// queued without bound, in order. They are rare (a leader change, a phase
// change, an error). Progress reports, which come with every applied batch
// and every snapshot chunk, are coalesced instead: a new one replaces the
// queued one of its kind unless a state event came after it, so the queue
// holds at most a few progress reports per state event and order between
// the two is kept (a snapshot chunk's progress is never applied after the
// install's end).
//
// The consumer waits on signal (capacity 1: one wake-up stands for any
// number of puts) and takes the whole queue at once.
type mailbox struct {
	mu sync.Mutex
	q  []Event
	// progressAt is, per progress kind, the index in q of its queued
	// report that later ones of the kind may replace.
	progressAt map[sm.EventKind]int
	closed     bool
	// coalesced counts progress reports replaced by later ones; dropped
	// counts events put after close (nobody would apply them).
	coalesced, dropped uint64
	signal             chan struct{}
}

func newMailbox() *mailbox {
	return &mailbox{progressAt: make(map[sm.EventKind]int), signal: make(chan struct{}, 1)}
}

// progressKind reports whether ev is a progress report, and its kind.
func progressKind(ev Event) (sm.EventKind, bool) {
	e, ok := ev.(SMEvent)
	if !ok {
		return 0, false
	}
	switch e.E.Kind {
	case sm.EventApplied, sm.EventSnapshotInstallProgress, sm.EventSnapshotSendProgress:
		return e.E.Kind, true
	}
	return 0, false
}

// coalesce merges a newer progress report into an older one of its kind.
func coalesce(older, newer Event) Event {
	o, n := older.(SMEvent), newer.(SMEvent)
	if n.E.Kind == sm.EventApplied && o.E.Index > n.E.Index {
		// Applied reports may race; the index only goes forward.
		return o
	}
	return n
}

// put queues ev and wakes the consumer. It never blocks.
func (m *mailbox) put(ev Event) {
	m.mu.Lock()
	if m.closed {
		m.dropped++
		m.mu.Unlock()
		return
	}
	if kind, ok := progressKind(ev); ok {
		if i, ok := m.progressAt[kind]; ok {
			m.q[i] = coalesce(m.q[i], ev)
			m.coalesced++
			m.mu.Unlock()
			return
		}
		m.progressAt[kind] = len(m.q)
	} else {
		// Later progress must be applied after this event.
		clear(m.progressAt)
	}
	m.q = append(m.q, ev)
	m.mu.Unlock()
	select {
	case m.signal <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// take returns every queued event, in order, and empties the queue.
func (m *mailbox) take() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.q
	m.q = nil
	clear(m.progressAt)
	return q
}

// close takes what is still queued and makes later puts count as dropped.
func (m *mailbox) close() []Event {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return m.take()
}

// counters returns the coalesced and dropped counts.
func (m *mailbox) counters() (coalesced, dropped uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.coalesced, m.dropped
}
