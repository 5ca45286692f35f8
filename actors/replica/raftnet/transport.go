package raftnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"github.com/lni/goutils/stringutil"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/bootstrap/nodetls"
	"github.com/skiffdb/skiff/gateway/connlimit"
)

// Name is the transport's name in Dragonboat's logs.
const Name = "skiff-raftnet"

// Config configures the transport factory.
type Config struct {
	// Inbound, when set, hands the transport the connections Skiff's
	// Raft-port mux accepted; when nil the transport listens on
	// NodeHostConfig.ListenAddress itself.
	Inbound *Inbound
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
	// DialTimeout bounds connecting to a peer (default 5 s, Dragonboat's),
	// and then its TLS handshake.
	DialTimeout time.Duration
	// TLS, when set, is the client side of node-to-node TLS: every
	// connection to a peer is a TLS connection made with it.
	TLS *tls.Config
	// ServerTLS, when set, wraps every connection the transport accepts
	// while listening itself (Inbound nil); with an Inbound, the Raft-port
	// mux has done the handshake already.
	ServerTLS *tls.Config
	// HandshakeTimeout bounds an accepted connection's TLS handshake
	// (default DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// ChunkTap, when set, is handed every snapshot chunk Dragonboat
	// accepted, in order, on the goroutine that received it
	// (sm.ReceiveTap.Chunk); the next chunk is read when it returns.
	// ChunkStreamEnded is then told, with the connection's last such chunk
	// (its Data dropped), when that connection ends: a stream whose
	// connection ended before its last chunk will not go on.
	ChunkTap         func(pb.Chunk)
	ChunkStreamEnded func(last pb.Chunk)
	// Heard, when set, records when each peer last sent a leader's
	// message that Dragonboat accepted (a follower's contact with its
	// leader).
	Heard *Heard
}

// DefaultHandshakeTimeout bounds the TLS handshake of an accepted
// connection.
const DefaultHandshakeTimeout = nodetls.HandshakeTimeout

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	return c
}

// Validate reports a configuration the transport cannot run with.
func (c Config) Validate() error {
	if c.DialTimeout < 0 || c.HandshakeTimeout < 0 {
		return fmt.Errorf("%w: negative dial or handshake timeout", ErrInvalidConfig)
	}
	if c.ServerTLS != nil && c.Inbound != nil {
		return fmt.Errorf("%w: ServerTLS is for a transport that listens itself; the mux feeding an Inbound does the handshake", ErrInvalidConfig)
	}
	if c.Inbound == nil && (c.TLS == nil) != (c.ServerTLS == nil) {
		return fmt.Errorf("%w: a transport that listens itself needs both TLS and ServerTLS, or neither", ErrInvalidConfig)
	}
	return nil
}

// Factory makes the transport for a NodeHost
// (config.ExpertConfig.TransportFactory).
type Factory struct{ cfg Config }

var _ config.TransportFactory = (*Factory)(nil)

// NewFactory returns a factory for cfg.
func NewFactory(cfg Config) (*Factory, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Factory{cfg: cfg}, nil
}

// Create implements config.TransportFactory.
func (f *Factory) Create(nh config.NodeHostConfig, onMessage raftio.MessageHandler, onChunk raftio.ChunkHandler) raftio.ITransport {
	return &Transport{cfg: f.cfg, nh: nh, onMessage: onMessage, onChunk: onChunk, refusals: connlimit.NewLogLimiter(connlimit.DefaultLogEvery)}
}

// Validate implements config.TransportFactory: addresses are host:port, as
// for Dragonboat's own transport.
func (f *Factory) Validate(addr string) bool { return stringutil.IsValidAddress(addr) }

// deliver hands b to Dragonboat, unless its source address would stop
// the process there. Dragonboat records the source address of every
// message batch for each sender it names, and panics when the address is
// not host:port or differs from the one it holds for that sender
// (internal/registry Add), before it looks at anything else in the
// batch: one frame from anyone who reaches the Raft port (without
// node-to-node TLS) would end the node. An invalid address is refused
// here; a conflicting one is known only to Dragonboat's registry, so that
// panic is recovered, and only that one: the registry panics before it
// stores the conflicting address and before the batch reaches Raft, and
// any other panic is Dragonboat's and goes on.
func (t *Transport) deliver(b pb.MessageBatch) (err error) {
	if b.SourceAddress != "" && !stringutil.IsValidAddress(b.SourceAddress) {
		return fmt.Errorf("%w: source address %q", ErrBadSender, b.SourceAddress)
	}
	defer func() {
		if p := recover(); p != nil {
			if msg := fmt.Sprint(p); strings.HasPrefix(msg, registryConflict) {
				err = fmt.Errorf("%w: %s", ErrBadSender, msg)
				return
			}
			panic(p)
		}
	}()
	t.onMessage(b)
	if t.cfg.Heard != nil {
		t.cfg.Heard.observe(&b, time.Now)
	}
	return nil
}

// registryConflict begins Dragonboat's panic message for a sender whose
// address differs from the one its registry holds.
const registryConflict = "inconsistent target for "

// Transport is one NodeHost's transport.
type Transport struct {
	cfg       Config
	nh        config.NodeHostConfig
	onMessage raftio.MessageHandler
	onChunk   raftio.ChunkHandler

	ln    net.Listener // nil with an Inbound
	wg    sync.WaitGroup
	conns ConnSet // inbound connections being served
	// watched are the outbound message connections watchRefusal reads;
	// Close cuts them (Dragonboat has closed them by then) and waits.
	watched ConnSet
	watchMu sync.Mutex
	// refusals spaces the log lines about TLS refusals, per peer.
	refusals *connlimit.LogLimiter
}

var _ raftio.ITransport = (*Transport)(nil)

// Name implements raftio.ITransport.
func (t *Transport) Name() string { return Name }

// Start implements raftio.ITransport.
func (t *Transport) Start() error {
	if t.nh.MutualTLS {
		// Node-to-node TLS is Config.TLS (Skiff's -node-* flags), not
		// Dragonboat's own.
		return fmt.Errorf("%w: Dragonboat's MutualTLS is not supported; use Config.TLS", ErrInvalidConfig)
	}
	if t.cfg.Inbound != nil {
		return t.cfg.Inbound.attach(t)
	}
	ln, err := net.Listen("tcp", t.nh.GetListenAddress())
	if err != nil {
		return fmt.Errorf("raftnet: listen: %w", err)
	}
	t.ln = ln
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		AcceptLoop(ln, t.cfg.Logger, func(c net.Conn) {
			t.wg.Add(1) // the loop's own count keeps the group above zero
			go func() { defer t.wg.Done(); t.serveAccepted(c) }()
		})
	}()
	return nil
}

// Close implements raftio.ITransport: it stops accepting, cuts every
// inbound connection and waits for their handlers.
func (t *Transport) Close() error {
	if t.cfg.Inbound != nil {
		t.cfg.Inbound.detach(t)
	}
	if t.ln != nil {
		_ = t.ln.Close()
	}
	t.conns.CloseAll()
	t.closeWatched()
	t.wg.Wait()
	return nil
}

// serveAccepted serves a connection the transport accepted itself, after
// its TLS handshake when ServerTLS is set.
func (t *Transport) serveAccepted(c net.Conn) {
	if t.cfg.ServerTLS != nil {
		// Tracked during the handshake, so that Close cuts it.
		if !t.conns.Add(c) {
			_ = c.Close()
			return
		}
		tc, err := AcceptTLS(c, t.cfg.ServerTLS, t.cfg.HandshakeTimeout, t.refusals, t.cfg.Logger, "in ",
			"raft transport: TLS handshake with a connecting peer failed; connection refused")
		t.conns.Remove(c)
		if err != nil {
			_ = c.Close()
			return
		}
		c = tc
	}
	t.serve(c)
}

// serve reads c's frames until it ends, then closes it.
func (t *Transport) serve(c net.Conn) {
	if !t.conns.Add(c) {
		_ = c.Close()
		return
	}
	defer func() {
		t.conns.Remove(c)
		_ = c.Close()
	}()
	f := newFrameReader(c)
	var tapped *pb.Chunk // the last chunk handed to ChunkTap
	if t.cfg.ChunkStreamEnded != nil {
		defer func() {
			if tapped != nil {
				t.cfg.ChunkStreamEnded(*tapped)
			}
		}()
	}
	for {
		method, body, err := f.next()
		switch {
		case errors.Is(err, errIdle):
			continue
		case errors.Is(err, errPoison):
			// The sender ended its snapshot stream and waits for this.
			_ = c.SetWriteDeadline(time.Now().Add(headerTimeout))
			_, _ = c.Write(poison[:])
			return
		case errors.Is(err, ErrBadFrame):
			t.cfg.Logger.Warn("raft transport: dropping a connection that sent a bad frame",
				zap.Stringer("remote", c.RemoteAddr()), zap.Error(err))
			return
		case err != nil:
			return // closed, reset or timed out mid-frame: the peer reconnects
		}
		if method == methodRaft {
			var b pb.MessageBatch
			if err := b.Unmarshal(body); err != nil {
				t.cfg.Logger.Warn("raft transport: undecodable message batch", zap.Error(err))
				return
			}
			if err := t.deliver(b); err != nil {
				t.cfg.Logger.Warn("raft transport: dropping a connection whose message batch names its sender wrongly",
					zap.Stringer("remote", c.RemoteAddr()), zap.Error(err))
				return
			}
			continue
		}
		var ch pb.Chunk
		if err := ch.Unmarshal(body); err != nil {
			t.cfg.Logger.Warn("raft transport: undecodable snapshot chunk", zap.Error(err))
			return
		}
		if !t.onChunk(ch) {
			t.cfg.Logger.Warn("raft transport: snapshot chunk rejected",
				zap.Uint64("shard", ch.ShardID), zap.Uint64("replica", ch.ReplicaID), zap.Uint64("index", ch.Index))
			return
		}
		if t.cfg.ChunkTap != nil {
			t.cfg.ChunkTap(ch)
			ch.Data = nil
			tapped = &ch
		}
	}
}

// GetConnection implements raftio.ITransport.
func (t *Transport) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	c, err := t.dialMsg(ctx, target)
	if err != nil {
		return nil, err
	}
	redial := func(deadline time.Time) (net.Conn, error) {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return t.dialMsg(dctx, target)
	}
	return &msgConn{c: c, redial: redial, ctx: ctx}, nil
}

// dialMsg dials a message connection. Over TLS it is watched: see
// watchRefusal.
func (t *Transport) dialMsg(ctx context.Context, target string) (net.Conn, error) {
	c, err := t.dial(ctx, target)
	if err != nil || t.cfg.TLS == nil {
		return c, err
	}
	if !t.watch(c) {
		_ = c.Close()
		return nil, fmt.Errorf("raftnet: dial %s: %w", target, net.ErrClosed)
	}
	go func() {
		defer t.wg.Done()
		defer t.watched.Remove(c)
		t.watchRefusal(target, c)
	}()
	return c, nil
}

// watch counts c's watcher in t.wg unless Close has begun. The lock
// orders the count before Close's Wait (a WaitGroup's Add at zero must
// happen before its Wait).
func (t *Transport) watch(c net.Conn) bool {
	t.watchMu.Lock()
	defer t.watchMu.Unlock()
	if !t.watched.Add(c) {
		return false
	}
	t.wg.Add(1)
	return true
}

func (t *Transport) closeWatched() {
	t.watchMu.Lock()
	defer t.watchMu.Unlock()
	t.watched.CloseAll()
}

// watchRefusal reads a message connection, on which the peer never sends
// a byte, until it ends. With TLS 1.3 the client's side of the handshake
// ends before the server has checked the client's certificate, and a
// refusal (an alert) arrives only on a read: it is logged here, with its
// reason, and c closed so that the next send fails at once and redials
// instead of writing into a connection the peer already dropped.
func (t *Transport) watchRefusal(target string, c net.Conn) {
	var b [1]byte
	_, err := c.Read(b[:])
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" && t.refusals.Allow(connlimit.RefusalKey("out "+target, err)) {
		t.cfg.Logger.Warn("raft transport: peer refused this node's TLS certificate",
			zap.String("target", target), zap.Error(err))
	}
	_ = c.Close()
}

// GetSnapshotConnection implements raftio.ITransport.
func (t *Transport) GetSnapshotConnection(ctx context.Context, target string) (raftio.ISnapshotConnection, error) {
	c, err := t.dial(ctx, target)
	if err != nil {
		return nil, err
	}
	return &chunkConn{c: c}, nil
}

func (t *Transport) dial(ctx context.Context, target string) (net.Conn, error) {
	d := net.Dialer{Timeout: t.cfg.DialTimeout, KeepAlive: keepAlive}
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// As Dragonboat's transport: a closed connection is reset, not
		// lingered on; Raft resends what was lost.
		if err := tc.SetLinger(0); err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	if t.cfg.TLS == nil {
		return c, nil
	}
	return t.handshake(ctx, target, c)
}

// handshake runs the client side of node-to-node TLS on c, bounded by the
// dial timeout. A failure is the peer's certificate refused here, or this
// node's refused there (TLS 1.2); it is logged with the reason.
func (t *Transport) handshake(ctx context.Context, target string, c net.Conn) (net.Conn, error) {
	cfg := t.cfg.TLS
	if cfg.ServerName == "" {
		// What tls.Dial does: verify the dialed host's name.
		host, _, err := net.SplitHostPort(target)
		if err != nil {
			host = target
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	hctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	defer cancel()
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = c.Close()
		if ctx.Err() == nil && t.refusals.Allow(connlimit.RefusalKey("out "+target, err)) {
			t.cfg.Logger.Warn("raft transport: TLS handshake with a peer failed", zap.String("target", target), zap.Error(err))
		}
		return nil, fmt.Errorf("raftnet: TLS handshake with %s: %w", target, err)
	}
	return tc, nil
}

// Redialling a peer whose connection failed (msgConn.SendMessageBatch).
const (
	// redialWindow bounds how long a failed send keeps redialling before
	// it reports the failure.
	redialWindow = 500 * time.Millisecond
	// redialPause separates the attempts.
	redialPause = 20 * time.Millisecond
)

// msgConn sends message batches.
type msgConn struct {
	c   net.Conn
	buf []byte // grown to the largest frame sent, kept up to maxKeptBuf
	// redial connects to the same peer again, by deadline; ctx ends with
	// the transport.
	redial func(deadline time.Time) (net.Conn, error)
	ctx    context.Context
}

var _ raftio.IConnection = (*msgConn)(nil)

func (m *msgConn) Close() { _ = m.c.Close() }

// SendMessageBatch implements raftio.IConnection: one frame, one write.
func (m *msgConn) SendMessageBatch(b pb.MessageBatch) error {
	need := frameHead + b.SizeUpperLimit()
	buf := m.buf
	if need > len(buf) {
		buf = make([]byte, need)
		if need <= maxKeptBuf {
			m.buf = buf
		}
	}
	payload := pb.MustMarshalTo(&b, buf[frameHead:need])
	frame := buf[:frameHead+len(payload)]
	putFrame(frame, methodRaft)
	err := writeFrame(m.c, frame)
	if err == nil {
		return nil
	}
	return m.resend(frame, err)
}

// resend redials the peer for up to redialWindow and sends frame on the
// new connection. A failed send makes Dragonboat's transport open its
// circuit breaker to the peer, which then drops every message to it for
// 250-750 ms; when the peer was a killed leader that restarted at once
// and is campaigning, that dropped the votes and appends it was owed and
// cost a second election round (the failover nemesis, README
// "Failover"). A peer that stays down costs the same failure, reported
// redialWindow later; Raft tolerates the messages lost with the old
// connection.
func (m *msgConn) resend(frame []byte, cause error) error {
	if m.redial == nil {
		return cause
	}
	deadline := time.Now().Add(redialWindow)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return cause
		case <-pause.C:
		}
		if c, err := m.redial(deadline); err == nil {
			if err := writeFrame(c, frame); err == nil {
				_ = m.c.Close()
				m.c = c
				return nil
			}
			_ = c.Close()
		}
		if time.Now().Add(redialPause).After(deadline) {
			return cause
		}
		pause.Reset(redialPause)
	}
}

// chunkConn streams one snapshot.
type chunkConn struct {
	c   net.Conn
	buf []byte // one chunk's frame, reused: chunks are all about chunkBytes
	// ended: the poison was sent and answered (or that failed).
	ended bool
}

var _ raftio.ISnapshotConnection = (*chunkConn)(nil)

// Close ends the stream with the poison, unless its last chunk did, and
// closes the connection.
func (s *chunkConn) Close() {
	defer s.c.Close()
	s.end()
}

// end sends the poison and waits (bounded) for the receiver's answer,
// which it sends once it has handled every chunk before it.
func (s *chunkConn) end() {
	if s.ended {
		return
	}
	s.ended = true
	// keepAlive, not headerTimeout: a receiver handling the stream's tail
	// (its receive tap may hold a chunk for seconds) leaves the socket
	// full, and the wait below is the point.
	_ = s.c.SetWriteDeadline(time.Now().Add(keepAlive))
	if _, err := s.c.Write(poison[:]); err != nil {
		return
	}
	_ = s.c.SetReadDeadline(time.Now().Add(keepAlive))
	var ack [2]byte
	_, _ = io.ReadFull(s.c, ack[:])
}

// SendChunk implements raftio.ISnapshotConnection. After a stream's last
// chunk it waits for the receiver to have handled it (end) before it
// returns: Dragonboat reports the stream done to Raft when the last
// SendChunk returns, and the leader then replicates to the receiver from
// after the snapshot. A receiver still reading the stream's tail (its
// socket holds megabytes) has not yet given Raft the snapshot, rejects
// that, and is sent the whole database again (docs/recovery.md).
func (s *chunkConn) SendChunk(ch pb.Chunk) error {
	need := frameHead + ch.Size()
	if need > len(s.buf) {
		s.buf = make([]byte, need)
	}
	payload := pb.MustMarshalTo(&ch, s.buf[frameHead:need])
	frame := s.buf[:frameHead+len(payload)]
	putFrame(frame, methodSnapshot)
	if err := writeFrame(s.c, frame); err != nil {
		return err
	}
	if ch.IsLastChunk() {
		s.end()
	}
	return nil
}
