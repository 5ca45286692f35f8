package raftnet

import (
	"errors"
	"net"
	"time"

	"go.uber.org/zap"
)

// AcceptLoop accepts from ln until it is closed, handing each connection
// to handle, which must return at once (it starts the connection's
// goroutine). Any other accept error (out of file descriptors, say) is
// retried with backoff, as net/http does: returning would leave the node
// deaf to its peers for good. Both the Raft-port mux and a transport
// listening itself accept through it.
func AcceptLoop(ln net.Listener, log *zap.Logger, handle func(net.Conn)) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", zap.Stringer("addr", ln.Addr()), zap.Error(err), zap.Duration("in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		handle(c)
	}
}
