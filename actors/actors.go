package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Sentinel errors of package actors.
var (
	// ErrStopped is returned by Call when the actor has stopped.
	ErrStopped = errors.New("actor stopped")
	// ErrCanceled is returned by Call when the caller's context ended first.
	ErrCanceled = errors.New("call canceled")
)

// Result is an actor's answer to one request.
type Result[A any] struct {
	Val A
	Err error
}

// Envelope carries a request and the channel its answer goes back on. The
// channel has capacity 1 so that answering never blocks the actor, even
// when the caller has given up.
type Envelope[Q, A any] struct {
	Req   Q
	reply chan Result[A]
}

// NewEnvelope wraps req with a fresh reply channel.
func NewEnvelope[Q, A any](req Q) Envelope[Q, A] {
	return Envelope[Q, A]{Req: req, reply: make(chan Result[A], 1)}
}

// Answer replies to the request. Each envelope must be answered exactly
// once; answering never blocks.
func (e Envelope[Q, A]) Answer(v A, err error) { e.reply <- Result[A]{Val: v, Err: err} }

// Call sends req to inbox and waits for the answer. It gives up when ctx
// ends (ErrCanceled) or the actor's done channel closes (ErrStopped), so a
// caller never blocks forever on a dead actor.
func Call[Q, A any](ctx context.Context, done <-chan struct{}, inbox chan<- Envelope[Q, A], req Q) (A, error) {
	var zero A
	env := NewEnvelope[Q, A](req)
	select {
	case inbox <- env:
	case <-ctx.Done():
		return zero, fmt.Errorf("%w: %w", ErrCanceled, ctx.Err())
	case <-done:
		return zero, ErrStopped
	}
	select {
	case r := <-env.reply:
		return r.Val, r.Err
	case <-ctx.Done():
		return zero, fmt.Errorf("%w: %w", ErrCanceled, ctx.Err())
	case <-done:
		// The actor may have answered just before stopping.
		select {
		case r := <-env.reply:
			return r.Val, r.Err
		default:
			return zero, ErrStopped
		}
	}
}

// Done is a signal closed exactly once; closing it again is harmless.
type Done struct {
	once sync.Once
	ch   chan struct{}
}

// NewDone returns an open signal.
func NewDone() *Done { return &Done{ch: make(chan struct{})} }

// C is closed when the signal fires.
func (d *Done) C() <-chan struct{} { return d.ch }

// Close fires the signal.
func (d *Done) Close() { d.once.Do(func() { close(d.ch) }) }

// Sleep waits d, or until ctx ends; it reports whether the whole of d
// passed. Retry loops use it so that a stop never waits out a backoff.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
