package sm

import (
	"context"
	"sync"
	"time"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// watchInterval is how often the pool's watchdog looks at the running
// reads: a read whose context or deadline has ended is interrupted at
// most this late.
const watchInterval = 10 * time.Millisecond

// watch is what a reader's running statement answers to: its read's
// context and deadline. The pool's watchdog checks it every watchInterval
// and interrupts the connection once either has ended.
//
// Arming a watch is a few stores under a lock no one else wants. The
// other way, a context.AfterFunc per statement under a context with its
// own timer per request, costs a point read ten allocations and two
// timer operations; the README (Benchmarks) has the figures.
type watch struct {
	mu       sync.Mutex
	armed    bool
	ctx      context.Context
	deadline time.Time
	// cause is why the watchdog interrupted the armed statement.
	cause error
}

// arm starts watching a statement bounded by ctx and deadline (zero:
// ctx's only).
func (w *watch) arm(ctx context.Context, deadline time.Time) {
	w.mu.Lock()
	w.armed, w.ctx, w.deadline, w.cause = true, ctx, deadline, nil
	w.mu.Unlock()
}

// disarm stops watching and returns why the watchdog interrupted the
// statement, if it did. No interrupt comes from this watch after it
// returns: check interrupts under the same lock.
func (w *watch) disarm() error {
	w.mu.Lock()
	cause := w.cause
	w.armed, w.ctx, w.cause = false, nil, nil
	w.mu.Unlock()
	return cause
}

// check reports whether the armed statement must be interrupted now, and
// records why; it reports true once per arming. interrupt runs under the
// lock, so that it cannot reach a statement armed after this one.
func (w *watch) check(now time.Time, interrupt func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed || w.cause != nil {
		return false
	}
	switch {
	case w.ctx.Err() != nil:
		w.cause = w.ctx.Err()
	case !w.deadline.IsZero() && !now.Before(w.deadline):
		w.cause = context.DeadlineExceeded
	default:
		return false
	}
	interrupt()
	return true
}

// earliest is the earlier of two deadlines, zero meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// interrupted is a statement's outcome once the watchdog interrupted it
// for cause: any failure becomes cause's ("query timeout"), as it did
// when the statement's context ended; a statement that ended before the
// interrupt took keeps its result.
func interrupted(res *cmdpb.StatementResult, err, cause error) (*cmdpb.StatementResult, error) {
	if err == nil && res.GetError() == "" {
		return res, nil
	}
	return sqlError(cause)
}
