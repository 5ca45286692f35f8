package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

const (
	// readyPoll is how often a service without Config.ReadyChanged
	// (tests) looks again at whether the node serves data, or at NATS
	// without its status events.
	readyPoll = 100 * time.Millisecond
	// bindTimeout bounds finding the stream and creating the consumer.
	bindTimeout = 10 * time.Second
	// publishTimeout bounds a dead letter's publication.
	publishTimeout = 5 * time.Second
)

// Data is where requests go: the router in front of the replica.
type Data interface {
	Execute(ctx context.Context, req *cmdpb.Request) (*cmdpb.Response, error)
	Query(ctx context.Context, req *cmdpb.Request, opts replica.ReadOptions) (*cmdpb.Response, error)
}

// Service is the ingest actor.
type Service struct {
	cfg   Config
	data  Data
	ready func() bool
	log   *zap.Logger

	// connected mirrors the connection's state for /status, which must
	// not wait on the connection's lock (held while a reconnect dials).
	connected atomic.Bool
	fetching  atomic.Bool
	c         counters
	health    health
	// idle counts the loop's turns without a fetch (node not ready, NATS
	// down): tests wait on it instead of sleeping.
	idle atomic.Int64

	// afterExecute, when set (tests), runs once a write committed, before
	// the reply and the ack; false drops the message there, as a crash
	// would.
	afterExecute func(m jetstream.Msg) bool
}

// New returns the service; Run starts it. ready reports whether the node
// serves data: while it is false nothing is fetched.
func New(cfg Config, data Data, ready func() bool, log *zap.Logger) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if data == nil || ready == nil {
		return nil, fmt.Errorf("%w: data and ready are required", ErrInvalidConfig)
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Service{cfg: cfg, data: data, ready: ready, log: log}, nil
}

// Run consumes until ctx ends, then lets the messages in flight finish
// (within ShutdownGrace) and closes the connection. NATS being unreachable
// is never an error: it retries forever, and /status says why it waits.
func (s *Service) Run(ctx context.Context) error {
	nc, err := s.connect(ctx)
	if err != nil {
		return nil // ctx ended while connecting
	}
	defer func() {
		// Acks and replies still buffered go out before the close.
		_ = nc.FlushTimeout(time.Second)
		nc.Close()
		s.connected.Store(false)
	}()
	s.consume(ctx, nc)
	return nil
}

// connect opens the connection. With RetryOnFailedConnect it returns at
// once even when no server answers, and keeps trying in the background;
// an error here is a configuration fault (an unreadable credentials file),
// retried too in case the operator fixes it.
func (s *Service) connect(ctx context.Context) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("skiff-ingest"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(s.cfg.ReconnectWait),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			s.connected.Store(false)
			if err != nil {
				s.fail(fmt.Errorf("disconnected: %w", err))
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				s.fail(fmt.Errorf("connect: %w", err))
			}
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			s.connected.Store(true)
			s.log.Info("connected to NATS", zap.String("server", nc.ConnectedUrlRedacted()))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.connected.Store(true)
			s.log.Info("reconnected to NATS", zap.String("server", nc.ConnectedUrlRedacted()))
		}),
		nats.ClosedHandler(func(*nats.Conn) { s.connected.Store(false) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { s.fail(err) }),
	}
	if s.cfg.CredentialsFile != "" {
		opts = append(opts, nats.UserCredentials(s.cfg.CredentialsFile))
	}
	for {
		nc, err := s.dial(opts)
		if err == nil {
			return nc, nil
		}
		s.fail(fmt.Errorf("connect: %w", err))
		if !actors.Sleep(ctx, s.cfg.ReconnectWait) {
			return nil, ctx.Err()
		}
	}
}

// dial connects with opts and, when configured, TLS; a TLS file that no
// longer loads (it did at start) fails the attempt rather than connect
// without it.
func (s *Service) dial(opts []nats.Option) (*nats.Conn, error) {
	if s.cfg.TLS != nil {
		tc, err := s.cfg.TLS.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		opts = append(opts[:len(opts):len(opts)], nats.Secure(tc))
	}
	return nats.Connect(s.cfg.URL, opts...)
}

// binding is the consumer the service fetches from, and what a message's
// request ID is derived from.
type binding struct {
	js      jetstream.JetStream
	cons    jetstream.Consumer
	stream  string
	created time.Time
	// deadLetterStored: a stream captures the dead-letter subject, so dead
	// letters are published with JetStream (acknowledged by the stream);
	// otherwise with core NATS, to whoever subscribes.
	deadLetterStored bool
}

// bind finds the stream and creates (or updates to this config) the
// durable consumer every node shares. Its MaxDeliver is unlimited: a write
// that could not be applied yet must be delivered until it is (doc.go).
func (s *Service) bind(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (*binding, error) {
	ctx, cancel := context.WithTimeout(ctx, bindTimeout)
	defer cancel()
	ctx, stop := untilDisconnected(ctx, nc)
	defer stop()
	name := s.cfg.Stream
	if name == "" {
		var err error
		if name, err = js.StreamNameBySubject(ctx, s.cfg.Subject); err != nil {
			return nil, fmt.Errorf("find the stream capturing %q: %w", s.cfg.Subject, err)
		}
	}
	st, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %q: %w", name, err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, name, jetstream.ConsumerConfig{
		Durable:       s.cfg.Durable,
		Description:   "Skiff ingest: SQL commands applied through Raft, shared by every node",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    -1,
		FilterSubject: s.cfg.Subject,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %q on stream %q: %w", s.cfg.Durable, name, err)
	}
	b := &binding{js: js, cons: cons, stream: name, created: st.CachedInfo().Created}
	if s.cfg.DeadLetterSubject != "" {
		_, err := js.StreamNameBySubject(ctx, s.cfg.DeadLetterSubject)
		switch {
		case err == nil:
			b.deadLetterStored = true
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, fmt.Errorf("find the stream capturing dead-letter subject %q: %w", s.cfg.DeadLetterSubject, err)
		}
	}
	s.log.Info("ingest consumer bound", zap.String("stream", name), zap.String("durable", s.cfg.Durable),
		zap.String("subject", s.cfg.Subject), zap.Bool("dead_letters_stored", b.deadLetterStored))
	return b, nil
}

// untilDisconnected returns ctx cancelled as well when nc loses its
// server: a JetStream API request sent as the connection drops is never
// answered, and would otherwise hold the service for its whole timeout.
func untilDisconnected(ctx context.Context, nc *nats.Conn) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	ch := nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	if !nc.IsConnected() {
		cancel()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		cancel()
		<-done
		nc.RemoveStatusListener(ch)
	}
}

// drainStatus empties ch of the events it holds (ch may be nil).
func drainStatus(ch <-chan nats.Status) {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// waitReconnected waits for ch's next event or ctx's end, and reports
// whether ch is still open. Only RemoveStatusListener closes it; were a
// client to close it otherwise, the caller polls instead of spinning.
func waitReconnected(ctx context.Context, ch <-chan nats.Status) bool {
	if ch == nil {
		actors.Sleep(ctx, readyPoll)
		return false
	}
	select {
	case <-ctx.Done():
		return true
	case _, ok := <-ch:
		return ok
	}
}

// consume fetches while the node serves data and NATS answers, handing
// each message to a goroutine of its own, at most MaxInFlight at once.
func (s *Service) consume(ctx context.Context, nc *nats.Conn) {
	js, err := jetstream.New(nc)
	if err != nil {
		// Only invalid options fail here; there are none.
		s.fail(fmt.Errorf("jetstream: %w", err))
		<-ctx.Done()
		return
	}
	// Handlers outlive ctx by up to ShutdownGrace: a write in flight
	// finishes and is acked rather than left to its ack wait.
	hctx, cancelHandlers := context.WithCancel(context.Background())
	defer cancelHandlers()
	var wg sync.WaitGroup
	inFlight := &s.c.inFlight
	freed := make(chan struct{}, 1)
	// A lost server is waited for on the client's own reconnection
	// event, not polled.
	listener := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(listener)
	reconnected := (<-chan nats.Status)(listener)
	var b *binding
	for ctx.Err() == nil {
		// Taken before readiness is read: a change in between closes it.
		var readyChanged <-chan struct{}
		if s.cfg.ReadyChanged != nil {
			readyChanged = s.cfg.ReadyChanged()
		}
		// Emptied before the connection is read, so that a reconnection
		// after the read is in the channel (older ones are not).
		drainStatus(reconnected)
		// The handlers' reports arrive asynchronously: the loop's own look
		// at the connection corrects any reordering within a turn.
		up := nc.IsConnected()
		s.connected.Store(up)
		if !up {
			s.fetching.Store(false)
			s.idle.Add(1)
			if !waitReconnected(ctx, reconnected) {
				reconnected = nil
			}
			continue
		}
		if b == nil {
			if b, err = s.bind(ctx, nc, js); err != nil {
				b = nil
				s.fail(err)
				s.health.setBound("", false)
				s.idle.Add(1)
				actors.Sleep(ctx, s.cfg.ReconnectWait)
				continue
			}
			s.health.setBound(b.stream, true)
		}
		if !s.ready() {
			s.fetching.Store(false)
			s.idle.Add(1)
			if readyChanged == nil {
				actors.Sleep(ctx, readyPoll)
				continue
			}
			select {
			case <-ctx.Done():
			case <-readyChanged:
			}
			continue
		}
		free := s.cfg.MaxInFlight - int(inFlight.Load())
		if free <= 0 {
			select {
			case <-ctx.Done():
			case <-freed:
			}
			continue
		}
		s.fetching.Store(true)
		batch, err := b.cons.Fetch(free, jetstream.FetchMaxWait(s.cfg.FetchWait))
		if err != nil {
			s.fetchFailed(ctx, &b, err)
			continue
		}
		for m := range batch.Messages() {
			if ctx.Err() != nil {
				// Fetched as shutdown began: another node takes it now
				// rather than after the ack wait.
				_ = m.Nak()
				continue
			}
			inFlight.Add(1)
			wg.Add(1)
			go func(b *binding) {
				defer wg.Done()
				s.handle(hctx, nc, b, m)
				inFlight.Add(-1)
				select {
				case freed <- struct{}{}:
				default:
				}
			}(b)
		}
		if err := batch.Error(); err != nil && ctx.Err() == nil {
			s.fetchFailed(ctx, &b, err)
		}
	}
	s.fetching.Store(false)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(s.cfg.ShutdownGrace):
		s.log.Warn("ingest: messages still in flight at the end of the shutdown grace are cancelled (they are redelivered)",
			zap.Int64("in_flight", inFlight.Load()))
		cancelHandlers()
		<-drained
	}
}

// fetchFailed records a failed pull and drops the binding: the consumer or
// stream may be gone (deleted, a server that lost its store), and binding
// again recreates it.
func (s *Service) fetchFailed(ctx context.Context, b **binding, err error) {
	s.fail(fmt.Errorf("fetch: %w", err))
	if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, nats.ErrConnectionReconnecting) {
		return
	}
	*b = nil
	s.health.setBound("", false)
	actors.Sleep(ctx, s.cfg.ReconnectWait)
}

// fail records a NATS-side error for /status.
func (s *Service) fail(err error) {
	s.c.errors.Add(1)
	s.health.setError(err)
	s.log.Debug("ingest", zap.Error(err))
}
