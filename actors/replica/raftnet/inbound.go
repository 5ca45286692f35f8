package raftnet

import (
	"fmt"
	"net"
	"sync"
)

// Inbound hands connections accepted elsewhere (Skiff's Raft-port mux) to
// the running transport. It outlives transports: a NodeHost may be closed
// and another started on the same port.
type Inbound struct {
	mu sync.RWMutex
	t  *Transport
}

// Serve serves c as a Raft connection on the calling goroutine until it
// ends, and reports true; false means no transport is running (Raft has
// not started here, or is stopping): c is untouched and the caller closes
// it, and the peer retries.
func (in *Inbound) Serve(c net.Conn) bool {
	// Counted under the lock: Close detaches before it waits, so no
	// connection starts after its wait began.
	in.mu.RLock()
	t := in.t
	if t != nil {
		t.wg.Add(1)
	}
	in.mu.RUnlock()
	if t == nil {
		return false
	}
	defer t.wg.Done()
	t.serve(c)
	return true
}

func (in *Inbound) attach(t *Transport) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.t != nil {
		return fmt.Errorf("%w: another transport is serving this inbound", ErrInvalidConfig)
	}
	in.t = t
	return nil
}

func (in *Inbound) detach(t *Transport) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.t == t {
		in.t = nil
	}
}
