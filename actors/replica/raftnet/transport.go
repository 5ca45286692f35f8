package raftnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4/config"
	"github.com/lni/dragonboat/v4/raftio"
	pb "github.com/lni/dragonboat/v4/raftpb"
	"github.com/lni/goutils/stringutil"
	"go.uber.org/zap"
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
	// DialTimeout bounds connecting to a peer (default 5 s, Dragonboat's).
	DialTimeout time.Duration
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	return c
}

// Validate reports a configuration the transport cannot run with.
func (c Config) Validate() error {
	if c.DialTimeout < 0 {
		return fmt.Errorf("%w: negative dial timeout", ErrInvalidConfig)
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
	return &Transport{cfg: f.cfg, nh: nh, onMessage: onMessage, onChunk: onChunk}
}

// Validate implements config.TransportFactory: addresses are host:port, as
// for Dragonboat's own transport.
func (f *Factory) Validate(addr string) bool { return stringutil.IsValidAddress(addr) }

// Transport is one NodeHost's transport.
type Transport struct {
	cfg       Config
	nh        config.NodeHostConfig
	onMessage raftio.MessageHandler
	onChunk   raftio.ChunkHandler

	ln    net.Listener // nil with an Inbound
	wg    sync.WaitGroup
	conns ConnSet // inbound connections being served
}

var _ raftio.ITransport = (*Transport)(nil)

// Name implements raftio.ITransport.
func (t *Transport) Name() string { return Name }

// Start implements raftio.ITransport.
func (t *Transport) Start() error {
	if t.nh.MutualTLS {
		return fmt.Errorf("%w: TLS between nodes is not supported", ErrInvalidConfig)
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
			go func() { defer t.wg.Done(); t.serve(c) }()
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
	t.wg.Wait()
	return nil
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
			t.onMessage(b)
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
	}
}

// GetConnection implements raftio.ITransport.
func (t *Transport) GetConnection(ctx context.Context, target string) (raftio.IConnection, error) {
	c, err := t.dial(ctx, target)
	if err != nil {
		return nil, err
	}
	redial := func(deadline time.Time) (net.Conn, error) {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		return t.dial(dctx, target)
	}
	return &msgConn{c: c, redial: redial, ctx: ctx}, nil
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
	return c, nil
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
}

var _ raftio.ISnapshotConnection = (*chunkConn)(nil)

// Close ends the stream with the poison and waits (bounded) for the
// receiver's answer, so that the last chunk is known to have been read.
func (s *chunkConn) Close() {
	defer s.c.Close()
	_ = s.c.SetWriteDeadline(time.Now().Add(headerTimeout))
	if _, err := s.c.Write(poison[:]); err != nil {
		return
	}
	_ = s.c.SetReadDeadline(time.Now().Add(keepAlive))
	var ack [2]byte
	_, _ = io.ReadFull(s.c, ack[:])
}

// SendChunk implements raftio.ISnapshotConnection.
func (s *chunkConn) SendChunk(ch pb.Chunk) error {
	need := frameHead + ch.Size()
	if need > len(s.buf) {
		s.buf = make([]byte, need)
	}
	payload := pb.MustMarshalTo(&ch, s.buf[frameHead:need])
	frame := s.buf[:frameHead+len(payload)]
	putFrame(frame, methodSnapshot)
	return writeFrame(s.c, frame)
}
