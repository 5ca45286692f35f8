package replica

import (
	"sync"
	"sync/atomic"
)

// hotPath is the lease of the replica's handle: every handle method
// (Execute, Query, the admin calls, the membership calls) runs on its
// caller's goroutine inside a lease on what Run started (running), rather
// than through an inbox: a hop would cost a goroutine and two wake-ups per
// request and order nothing. The lease is what keeps shutdown from
// closing the NodeHost, or stopping the actors, under a request.
type hotPath struct {
	// stopping refuses new requests at once when shutdown begins.
	stopping atomic.Bool
	// held refuses callers (ErrNotStarted) until release, with the
	// NodeHost running: only enterHeld gets in (Config.Held).
	held atomic.Bool
	// mu is held for reading by each request for as long as it uses run;
	// shutdown takes it for writing, so it waits out the requests (whose
	// deadlines, and at worst the cancelled work context, bound them).
	mu  sync.RWMutex
	run *running
}

// enter leases what Run started; leave must follow when it returns no
// error.
func (h *hotPath) enter() (*running, error) {
	if h.held.Load() && !h.stopping.Load() {
		return nil, ErrNotStarted
	}
	return h.enterHeld()
}

// enterHeld is enter, let in while held.
func (h *hotPath) enterHeld() (*running, error) {
	if h.stopping.Load() {
		return nil, ErrStopped
	}
	h.mu.RLock()
	if h.run == nil {
		h.mu.RUnlock()
		if h.stopping.Load() {
			return nil, ErrStopped
		}
		return nil, ErrNotStarted
	}
	return h.run, nil
}

func (h *hotPath) leave() { h.mu.RUnlock() }

// open lends run from now on.
func (h *hotPath) open(run *running) {
	h.mu.Lock()
	h.run = run
	h.mu.Unlock()
}

// release ends the hold.
func (h *hotPath) release() { h.held.Store(false) }

// refuse refuses new requests; those in flight go on.
func (h *hotPath) refuse() { h.stopping.Store(true) }

// close refuses new requests and returns once none holds the lease.
func (h *hotPath) close() {
	h.stopping.Store(true)
	h.mu.Lock()
	h.run = nil
	h.mu.Unlock()
}
