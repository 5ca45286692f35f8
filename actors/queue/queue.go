package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/sm/cmdpb"
)

// Defaults, as rqlited's -write-queue-* flags (API.md 5).
const (
	DefaultCapacity      = 1024
	DefaultBatchSize     = 128
	DefaultTimeout       = 50 * time.Millisecond
	DefaultRetryInterval = time.Second
	// DefaultShutdownGrace bounds how long shutdown keeps writing: the
	// batch in flight and what is still queued.
	DefaultShutdownGrace = 5 * time.Second
	// flushDeadline bounds one attempt to write a batch.
	flushDeadline = 10 * time.Second
)

// Sentinel errors of package queue.
var (
	ErrInvalidConfig = errors.New("invalid queue config")
	// ErrWaitTimeout: ?wait gave up before the queue was flushed past the
	// request's sequence number (HTTP 408 "queue wait timeout").
	ErrWaitTimeout = errors.New("queue wait timeout")
)

// Executor writes a batch through the log.
type Executor interface {
	Execute(ctx context.Context, req *cmdpb.Request) (*cmdpb.Response, error)
}

// Config configures the queue.
type Config struct {
	// Capacity bounds queued requests; past it Enqueue waits (back-pressure
	// bounded by the caller's context).
	Capacity int
	// BatchSize is the number of requests that triggers a flush.
	BatchSize int
	// Timeout flushes a non-empty batch this long after its first request.
	Timeout time.Duration
	// Tx wraps each batch in a transaction (rqlited's -write-queue-tx).
	Tx            bool
	RetryInterval time.Duration
	// ShutdownGrace bounds the drain at shutdown: the batch being written
	// finishes (its proposal is not cancelled with the actor) and what is
	// still queued is written, until this long after shutdown began. What
	// is not written by then is logged as dropped, with a count.
	ShutdownGrace time.Duration
	Logger        *zap.Logger
	// Now is the clock; sequence numbers are seeded from it.
	Now func() time.Time
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Capacity == 0 {
		c.Capacity = DefaultCapacity
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if c.Capacity < 1 || c.BatchSize < 1 || c.Timeout <= 0 || c.RetryInterval <= 0 || c.ShutdownGrace <= 0 {
		return fmt.Errorf("%w: capacity %d, batch size %d, timeout %s, retry %s, shutdown grace %s", ErrInvalidConfig,
			c.Capacity, c.BatchSize, c.Timeout, c.RetryInterval, c.ShutdownGrace)
	}
	return nil
}

type enqueueReq struct{ stmts []*cmdpb.Statement }

type waitReq struct{ seq int64 }

// Stats is what /status shows under http.queue._default.
type Stats struct {
	// SequenceNumber is the last sequence number persisted.
	SequenceNumber int64
	Pending        int
	BatchSize      int
	MaxSize        int
	Timeout        time.Duration
}

// Queue is the actor.
type Queue struct {
	cfg    Config
	exec   Executor
	enqC   chan actors.Envelope[enqueueReq, int64]
	waitC  chan actors.Envelope[waitReq, struct{}]
	statsC chan actors.Envelope[struct{}, Stats]
	done   *actors.Done
}

// New returns a queue writing through exec.
func New(cfg Config, exec Executor) (*Queue, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Queue{
		cfg: cfg, exec: exec,
		enqC:   make(chan actors.Envelope[enqueueReq, int64]),
		waitC:  make(chan actors.Envelope[waitReq, struct{}]),
		statsC: make(chan actors.Envelope[struct{}, Stats]),
		done:   actors.NewDone(),
	}, nil
}

// Enqueue queues stmts and returns their sequence number.
func (q *Queue) Enqueue(ctx context.Context, stmts []*cmdpb.Statement) (int64, error) {
	return actors.Call(ctx, q.done.C(), q.enqC, enqueueReq{stmts: stmts})
}

// Wait blocks until every request up to seq is persisted, or ctx ends
// (ErrWaitTimeout).
func (q *Queue) Wait(ctx context.Context, seq int64) error {
	_, err := actors.Call(ctx, q.done.C(), q.waitC, waitReq{seq: seq})
	if errors.Is(err, actors.ErrCanceled) {
		return fmt.Errorf("%w: %w", ErrWaitTimeout, err)
	}
	return err
}

// Stats returns the queue's counters.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	return actors.Call(ctx, q.done.C(), q.statsC, struct{}{})
}

type item struct {
	seq   int64
	stmts []*cmdpb.Statement
}

// batch is one proposal: the requests it carries and its request ID, chosen
// when the batch is formed and sent with every attempt, so that an attempt
// that timed out but did commit is not applied again by a retry (the state
// machine answers a known request ID with its first result).
type batch struct {
	id    []byte
	items []item
}

// flushed reports the end of a batch's writing: persisted up to upTo, or
// given up (only at the end of the shutdown grace) with err.
type flushed struct {
	upTo int64
	lost int
	err  error
}

// loop is the actor's state, owned by Run.
type loop struct {
	q         *Queue
	pending   []item
	lastSeq   int64
	persisted int64
	waiters   []actors.Envelope[waitReq, struct{}]
	flushing  bool
	// wctx bounds writes. It is not cancelled with Run's context: a
	// proposal in flight when shutdown begins must finish, not be
	// abandoned half way. Shutdown cancels it when its grace is over.
	wctx context.Context
	// lost counts requests given up at shutdown.
	lost int
}

// Run serves until ctx ends, then drains: the batch in flight finishes
// and what is still queued is written, in batches and in order, within
// ShutdownGrace. Requests still unwritten then are logged with a count.
func (q *Queue) Run(ctx context.Context) error {
	defer q.done.Close()
	wctx, stopWriting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriting()
	l := &loop{q: q, lastSeq: q.cfg.Now().UnixNano(), wctx: wctx}
	flushC := make(chan flushed, 1)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	stop := ctx.Done()
	draining := false
	var grace *time.Timer
	defer func() {
		if grace != nil {
			grace.Stop()
		}
	}()
	for {
		enq, timerC := q.enqC, timer.C
		if len(l.pending) >= q.cfg.Capacity {
			enq = nil // full: callers wait, bounded by their contexts
		}
		if draining {
			// Nothing new is taken (callers get ErrStopped once Run
			// returns), and batches go out back to back.
			enq, timerC = nil, nil
		}
		select {
		case env := <-enq:
			if len(l.pending) == 0 {
				timer.Reset(q.cfg.Timeout)
			}
			env.Answer(l.add(env.Req.stmts), nil)
			if len(l.pending) >= q.cfg.BatchSize {
				l.startFlush(flushC)
			}
		case <-timerC:
			l.startFlush(flushC)
		case f := <-flushC:
			l.flushing = false
			if f.err != nil {
				l.lost += f.lost
			} else {
				l.persisted = max(l.persisted, f.upTo)
				l.answerWaiters()
			}
			if draining {
				l.startFlush(flushC)
				if !l.flushing {
					l.finishDrain()
					return nil
				}
				continue
			}
			if len(l.pending) > 0 {
				if len(l.pending) >= q.cfg.BatchSize {
					l.startFlush(flushC)
				} else {
					timer.Reset(q.cfg.Timeout)
				}
			}
		case env := <-q.waitC:
			if env.Req.seq <= l.persisted {
				env.Answer(struct{}{}, nil)
			} else {
				l.waiters = append(l.waiters, env)
			}
		case env := <-q.statsC:
			env.Answer(Stats{SequenceNumber: l.persisted, Pending: len(l.pending), BatchSize: q.cfg.BatchSize,
				MaxSize: q.cfg.Capacity, Timeout: q.cfg.Timeout}, nil)
		case <-stop:
			stop, draining = nil, true
			timer.Stop()
			grace = time.AfterFunc(q.cfg.ShutdownGrace, stopWriting)
			if l.flushing || len(l.pending) > 0 {
				q.cfg.Logger.Info("draining queued writes", zap.Int("queued_requests", len(l.pending)),
					zap.Bool("batch_in_flight", l.flushing), zap.Duration("grace", q.cfg.ShutdownGrace))
			}
			l.startFlush(flushC)
			if !l.flushing {
				l.finishDrain()
				return nil
			}
		}
	}
}

// finishDrain reports what shutdown could not write.
func (l *loop) finishDrain() {
	if n := l.lost + len(l.pending); n > 0 {
		stmts := 0
		for _, it := range l.pending {
			stmts += len(it.stmts)
		}
		l.q.cfg.Logger.Error("queued writes dropped at shutdown", zap.Int("dropped_requests", n),
			zap.Int("unconfirmed_requests", l.lost), zap.Int("unsent_requests", len(l.pending)),
			zap.Int("unsent_statements", stmts), zap.Int64("last_persisted_sequence_number", l.persisted),
			zap.Duration("grace", l.q.cfg.ShutdownGrace))
		return
	}
	l.q.cfg.Logger.Info("queued writes drained", zap.Int64("last_persisted_sequence_number", l.persisted))
}

// add assigns the next sequence number: time-seeded and strictly
// increasing, so numbers stay monotonic across restarts (API.md 1.4).
func (l *loop) add(stmts []*cmdpb.Statement) int64 {
	l.lastSeq = max(l.lastSeq+1, l.q.cfg.Now().UnixNano())
	l.pending = append(l.pending, item{seq: l.lastSeq, stmts: stmts})
	return l.lastSeq
}

// startFlush forms the next batch, with its request ID, and hands it to a
// writer goroutine, one at a time so batches reach the log in order. It
// does nothing while a batch is in flight, when nothing is pending, or
// once the shutdown grace is over.
func (l *loop) startFlush(out chan<- flushed) {
	if l.flushing || len(l.pending) == 0 || l.wctx.Err() != nil {
		return
	}
	n := min(len(l.pending), l.q.cfg.BatchSize)
	b := batch{id: actors.NewRequestID(), items: append([]item(nil), l.pending[:n]...)}
	l.pending = append(l.pending[:0], l.pending[n:]...)
	l.flushing = true
	q, ctx := l.q, l.wctx
	go func() { out <- q.writeBatch(ctx, b) }()
}

// writeBatch writes b, retrying every RetryInterval with the same request
// ID, until it is written or ctx ends (the shutdown grace is over).
func (q *Queue) writeBatch(ctx context.Context, b batch) flushed {
	for attempt := 1; ; attempt++ {
		err := q.write(ctx, b)
		if err == nil {
			return flushed{upTo: b.items[len(b.items)-1].seq}
		}
		if ctx.Err() != nil {
			return flushed{lost: len(b.items), err: err}
		}
		q.cfg.Logger.Warn("queued batch not written; retrying", zap.Int("requests", len(b.items)),
			zap.Int("attempt", attempt), zap.Error(err))
		select {
		case <-ctx.Done():
			return flushed{lost: len(b.items), err: err}
		case <-time.After(q.cfg.RetryInterval):
		}
	}
}

// write proposes a batch as one request, under the batch's request ID.
func (q *Queue) write(ctx context.Context, b batch) error {
	req := &cmdpb.Request{Transaction: q.cfg.Tx}
	for _, it := range b.items {
		req.Statements = append(req.Statements, it.stmts...)
	}
	ctx, cancel := context.WithTimeout(actors.WithRequestID(ctx, b.id), flushDeadline)
	defer cancel()
	_, err := q.exec.Execute(ctx, req)
	return err
}

func (l *loop) answerWaiters() {
	kept := l.waiters[:0]
	for _, w := range l.waiters {
		if w.Req.seq <= l.persisted {
			w.Answer(struct{}{}, nil)
		} else {
			kept = append(kept, w)
		}
	}
	l.waiters = kept
}
