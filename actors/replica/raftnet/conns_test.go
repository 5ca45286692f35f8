package raftnet

import (
	"net"
	"sync/atomic"
	"testing"
)

// closeCounter is a connection that only counts its Close calls.
type closeCounter struct {
	net.Conn
	closes atomic.Int32
}

func (c *closeCounter) Close() error { c.closes.Add(1); return nil }

func TestConnSetClosesTrackedAndRefusesLater(t *testing.T) {
	var s ConnSet
	tracked, removed, late := &closeCounter{}, &closeCounter{}, &closeCounter{}
	if !s.Add(tracked) || !s.Add(removed) {
		t.Fatal("an open set refused a connection")
	}
	s.Remove(removed)
	s.CloseAll()
	if tracked.closes.Load() != 1 {
		t.Fatalf("a tracked connection was closed %d times by CloseAll, want 1", tracked.closes.Load())
	}
	if removed.closes.Load() != 0 {
		t.Fatal("CloseAll closed a connection removed before it")
	}
	if s.Add(late) {
		t.Fatal("a closed set accepted a connection")
	}
	if late.closes.Load() != 0 {
		t.Fatal("Add closed the connection it refused; the caller does")
	}
}
