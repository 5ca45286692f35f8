package bootstrap

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors/replica/raftnet"
	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/gateway/connlimit"
)

// handshakeTimeout bounds the TLS handshake of a connection to the Raft
// port: a peer that has not proved itself by then is dropped (a real peer
// redials). The handshake is a few round trips; 10 s is generous on any
// network Raft itself could run on.
const handshakeTimeout = nodetls.HandshakeTimeout

// muxTLS is the Raft port's node-to-node TLS (nodetls); its zero value is
// plaintext. When on, every accepted connection is a TLS connection: the
// first-byte routing runs on the decrypted stream.
type muxTLS struct {
	tls     *nodetls.TLS
	server  *tls.Config
	log     *zap.Logger
	timeout time.Duration // handshakeTimeout; tests shorten it
	limiter *connlimit.LogLimiter
	// ok and refused count the handshakes that succeeded and failed.
	ok, refused atomic.Uint64
}

// openNodeTLS loads the node's TLS when cfg is set; nil is plaintext.
func openNodeTLS(cfg *nodetls.Config, log *zap.Logger) (*nodetls.TLS, error) {
	dbLogs.nodeTLS.Store(cfg != nil)
	if cfg == nil {
		return nil, nil
	}
	t, err := nodetls.New(*cfg, log)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	log.Info("node-to-node TLS on the Raft port", zap.String("cert", cfg.CertFile), zap.String("key", cfg.KeyFile),
		zap.String("ca_cert", cfg.CACertFile), zap.Bool("verify_client", cfg.VerifyClient), zap.Bool("no_verify", cfg.NoVerify),
		zap.String("verify_server_name", cfg.VerifyServerName), zap.String("verify_common_name", cfg.VerifyCommonName))
	return t, nil
}

// useTLS turns node-to-node TLS on (t non-nil) before start.
func (m *raftMux) useTLS(t *nodetls.TLS) {
	if t == nil {
		return
	}
	m.tls = muxTLS{tls: t, server: t.Server(), log: m.log, timeout: handshakeTimeout, limiter: connlimit.NewLogLimiter(connlimit.DefaultLogEvery)}
}

// accept runs the server side of the handshake on c, bounded by the
// timeout, and returns the decrypted connection; nil when it failed (c is
// closed, the refusal logged with its reason and counted). Plaintext
// returns c.
func (t *muxTLS) accept(c net.Conn) net.Conn {
	if t.tls == nil {
		return c
	}
	tc, err := raftnet.AcceptTLS(c, t.server, t.timeout, t.limiter, t.log, "", "raft port: TLS handshake failed; connection refused")
	if err != nil {
		t.refused.Add(1)
		hintPlaintext(err)
		_ = c.Close()
		return nil
	}
	t.ok.Add(1)
	return tc
}

// hintPlaintext answers a plain HTTP request (a peer without node TLS
// joining, say) with a 400 that says why, as net/http does for HTTP sent
// to an HTTPS port, so that the peer logs the reason, not an EOF.
func hintPlaintext(err error) {
	var rh tls.RecordHeaderError
	if !errors.As(err, &rh) || rh.Conn == nil || !looksLikeHTTP(rh.RecordHeader[:]) {
		return
	}
	_ = rh.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(rh.Conn, "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"+
		"this node's Raft port requires node-to-node TLS (-node-cert): plain HTTP refused\n")
}

// looksLikeHTTP reports whether a record header is the start of an HTTP
// request (a method name).
func looksLikeHTTP(h []byte) bool {
	for _, m := range []string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH "} {
		if strings.HasPrefix(m, string(h)) || strings.HasPrefix(string(h), m) {
			return true
		}
	}
	return false
}

// tlsStatus is the node TLS part of /status "mux": rqlite's keys
// (nodetls.TLS.Status) and the handshake counters.
func (m *raftMux) tlsStatus() map[string]any {
	s := m.tls.tls.Status()
	if m.tls.tls != nil {
		s["tls_handshakes"] = m.tls.ok.Load()
		s["tls_handshake_failures"] = m.tls.refused.Load()
		s["tls_handshake_timeout"] = m.tls.timeout.String()
	}
	return s
}
