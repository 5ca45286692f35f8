package raftnet

import (
	"crypto/tls"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/gateway/connlimit"
)

// AcceptTLS runs the server side of node-to-node TLS on an accepted c,
// bounded by timeout through c's deadline (a timeout reads "i/o timeout"
// in the log), and returns the decrypted connection with the deadline
// cleared. A failure is logged as msg with its reason, spaced per remote
// IP and cause by lim (key prefix who), and returned; c is left open so
// that the caller may answer it before closing it. The Raft port's mux and
// the transport's own listener both use it.
func AcceptTLS(c net.Conn, cfg *tls.Config, timeout time.Duration, lim *connlimit.LogLimiter, log *zap.Logger, who, msg string) (*tls.Conn, error) {
	tc := tls.Server(c, cfg)
	_ = c.SetDeadline(time.Now().Add(timeout))
	err := tc.Handshake()
	if err == nil {
		err = c.SetDeadline(time.Time{})
	}
	if err != nil {
		if lim.Allow(connlimit.RefusalKey(who+connlimit.IPOf(c.RemoteAddr()).String(), err)) {
			log.Warn(msg, zap.Stringer("remote", c.RemoteAddr()), zap.Error(err))
		}
		return nil, err
	}
	return tc, nil
}
