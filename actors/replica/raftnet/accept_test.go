package raftnet

import (
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// flakyListener fails its first accepts (EMFILE), then hands out one
// connection, then reports itself closed.
type flakyListener struct {
	fails int
	conn  net.Conn
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	if c := l.conn; c != nil {
		l.conn = nil
		return c, nil
	}
	return nil, net.ErrClosed
}

func (l *flakyListener) Close() error   { return nil }
func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{} }

// An accept error that is not the listener closing is retried, not the end
// of accepting: a node out of file descriptors for a moment must not stay
// deaf to its peers.
func TestAcceptLoopRetriesAcceptErrors(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ln := &flakyListener{fails: 3, conn: b}
	var got []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		AcceptLoop(ln, zap.NewNop(), func(c net.Conn) { got = append(got, c) })
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("AcceptLoop did not return once the listener was closed")
	}
	if len(got) != 1 || got[0] != b {
		t.Fatalf("handled %v, want the one connection after three failed accepts", got)
	}
}
