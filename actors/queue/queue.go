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
	// flushDeadline bounds one attempt to write a batch.
	flushDeadline = 10 * time.Second
	// finalFlushGrace bounds the last flush at shutdown.
	finalFlushGrace = 5 * time.Second
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
	if c.Capacity < 1 || c.BatchSize < 1 || c.Timeout <= 0 || c.RetryInterval <= 0 {
		return fmt.Errorf("%w: capacity %d, batch size %d, timeout %s, retry %s", ErrInvalidConfig,
			c.Capacity, c.BatchSize, c.Timeout, c.RetryInterval)
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

type flushed struct{ upTo int64 }

// loop is the actor's state, owned by Run.
type loop struct {
	q         *Queue
	pending   []item
	lastSeq   int64
	persisted int64
	waiters   []actors.Envelope[waitReq, struct{}]
	flushing  bool
}

// Run serves until ctx ends, then makes one bounded attempt to flush what
// is still queued.
func (q *Queue) Run(ctx context.Context) error {
	defer q.done.Close()
	l := &loop{q: q, lastSeq: q.cfg.Now().UnixNano()}
	flushC := make(chan flushed, 1)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		enq := q.enqC
		if len(l.pending) >= q.cfg.Capacity {
			enq = nil // full: callers wait, bounded by their contexts
		}
		select {
		case env := <-enq:
			if len(l.pending) == 0 {
				timer.Reset(q.cfg.Timeout)
			}
			env.Answer(l.add(env.Req.stmts), nil)
			if len(l.pending) >= q.cfg.BatchSize {
				l.startFlush(ctx, flushC)
			}
		case <-timer.C:
			l.startFlush(ctx, flushC)
		case f := <-flushC:
			l.flushing = false
			l.persisted = max(l.persisted, f.upTo)
			l.answerWaiters()
			if len(l.pending) > 0 {
				if len(l.pending) >= q.cfg.BatchSize {
					l.startFlush(ctx, flushC)
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
		case <-ctx.Done():
			timer.Stop()
			if l.flushing {
				<-flushC
			}
			if len(l.pending) > 0 {
				fctx, cancel := context.WithTimeout(context.Background(), finalFlushGrace)
				if err := q.write(fctx, l.pending); err != nil {
					q.cfg.Logger.Error("queued writes lost at shutdown", zap.Int("requests", len(l.pending)), zap.Error(err))
				}
				cancel()
			}
			return nil
		}
	}
}

// add assigns the next sequence number: time-seeded and strictly
// increasing, so numbers stay monotonic across restarts (API.md 1.4).
func (l *loop) add(stmts []*cmdpb.Statement) int64 {
	l.lastSeq = max(l.lastSeq+1, l.q.cfg.Now().UnixNano())
	l.pending = append(l.pending, item{seq: l.lastSeq, stmts: stmts})
	return l.lastSeq
}

// startFlush hands the pending batch to a writer goroutine, one at a time
// so batches reach the log in order.
func (l *loop) startFlush(ctx context.Context, out chan<- flushed) {
	if l.flushing || len(l.pending) == 0 {
		return
	}
	n := min(len(l.pending), l.q.cfg.BatchSize)
	batch := append([]item(nil), l.pending[:n]...)
	l.pending = append(l.pending[:0], l.pending[n:]...)
	l.flushing = true
	go func() {
		for {
			err := l.q.write(ctx, batch)
			if err == nil {
				out <- flushed{upTo: batch[len(batch)-1].seq}
				return
			}
			l.q.cfg.Logger.Warn("queued batch not written; retrying", zap.Int("requests", len(batch)), zap.Error(err))
			select {
			case <-ctx.Done():
				// Put nothing back: Run's shutdown path writes what is
				// still pending; this batch is reported lost.
				l.q.cfg.Logger.Error("queued batch lost at shutdown", zap.Int("requests", len(batch)))
				out <- flushed{}
				return
			case <-time.After(l.q.cfg.RetryInterval):
			}
		}
	}()
}

// write proposes a batch as one request.
func (q *Queue) write(ctx context.Context, batch []item) error {
	req := &cmdpb.Request{Transaction: q.cfg.Tx}
	for _, it := range batch {
		req.Statements = append(req.Statements, it.stmts...)
	}
	ctx, cancel := context.WithTimeout(ctx, flushDeadline)
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
