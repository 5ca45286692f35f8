package raftnet

import (
	"net"
	"sync"
)

// ConnSet tracks the connections being served, so that closing cuts them
// all, including one still waiting for bytes. Once closed it refuses new
// ones. The Raft-port mux and the transport each keep one.
type ConnSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Add tracks c and reports true, or reports false once the set is closed
// (the caller then closes c).
func (s *ConnSet) Add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

// Remove stops tracking c.
func (s *ConnSet) Remove(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// CloseAll closes every tracked connection and refuses new ones.
func (s *ConnSet) CloseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
}
