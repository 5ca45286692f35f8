package replica

import (
	"sync"
	"sync/atomic"

	"github.com/lni/dragonboat/v4"
)

// hotPath lends the NodeHost to the data requests (Execute, Query), which
// run on their caller's goroutine rather than through the actor's inbox:
// the hop cost a goroutine, two wake-ups and the actor loop's select over
// every inbox per request, a tenth of a point read's CPU. The NodeHost is
// still this package's alone; the lease is what keeps shutdown from
// closing it under a request.
type hotPath struct {
	// stopping refuses new requests at once when shutdown begins.
	stopping atomic.Bool
	// mu is held for reading by each request for as long as it uses nh;
	// shutdown takes it for writing, so it waits out the requests (whose
	// deadlines, and at worst the cancelled work context, bound them).
	mu sync.RWMutex
	nh *dragonboat.NodeHost
}

// enter leases the NodeHost; leave must follow when it returns no error.
func (h *hotPath) enter() (*dragonboat.NodeHost, error) {
	if h.stopping.Load() {
		return nil, ErrStopped
	}
	h.mu.RLock()
	if h.nh == nil {
		h.mu.RUnlock()
		if h.stopping.Load() {
			return nil, ErrStopped
		}
		return nil, ErrNotStarted
	}
	return h.nh, nil
}

func (h *hotPath) leave() { h.mu.RUnlock() }

// open lends nh from now on.
func (h *hotPath) open(nh *dragonboat.NodeHost) {
	h.mu.Lock()
	h.nh = nh
	h.mu.Unlock()
}

// close refuses new requests and returns once none holds the NodeHost.
func (h *hotPath) close() {
	h.stopping.Store(true)
	h.mu.Lock()
	h.nh = nil
	h.mu.Unlock()
}
