package replica

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/lni/dragonboat/v4"

	"github.com/skiffdb/skiff/actors"
)

// readRounds confirms linearizable reads in rounds, the way etcd's
// linearizable read loop does: one ReadIndex serves every read that was
// waiting when it started. A read joins the next round to start, so the
// index that round confirms was fixed after the read arrived, and once
// the round completes (Dragonboat completes a ReadIndex only when this
// node has applied up to the index) a local Lookup is linearizable.
//
// It is the read-round actor: Run alone runs rounds, at most one in
// flight. A read joins the forming round under a mutex and waits on the
// round's channel rather than sending an envelope: the round is shared,
// so one close answers every read in it, where an envelope per read would
// wake the actor once per read (Dragonboat's SyncRead per read, which
// this replaces, cost the leader as much CPU again as the read itself).
type readRounds struct {
	// confirm runs one ReadIndex round.
	confirm func(context.Context) error
	// hold, gather and busy regather a round's readers (regather): after
	// a round of at least busy reads, the next one starts once that
	// round's readers are back, or gather reads wait, or hold after that
	// round started. Under load a round then carries more reads, and its
	// messages and wake-ups on every node are shared by more of them.
	// hold 0 or less: each round starts as soon as the one before ends.
	hold   time.Duration
	gather int
	// busy keeps a lightly loaded node (a client reading alone, a few at
	// a time) from ever being held.
	busy int
	// bound is the longest rounds can keep a read waiting: the round in
	// flight, the hold and the read's own round. A read whose deadline is
	// further away needs no timer: the rounds end first, and it looks at
	// its deadline then. 0: every deadline gets a timer.
	bound time.Duration
	done  *actors.Done
	mu    sync.Mutex
	next  *readRound
	// want is how many reads the forming round is held for (under mu):
	// the last round's, and those that joined while it was in flight.
	want int
	// kick wakes Run when a round gets its first waiter, or its want-th.
	kick chan struct{}
}

// lastRound is what regather knows of the round before.
type lastRound struct {
	reads   int
	started time.Time
}

type readRound struct {
	waiters int
	done    chan struct{}
	err     error
}

func newReadRounds(confirm func(context.Context) error, hold time.Duration, gather, busy int, bound time.Duration) *readRounds {
	return &readRounds{confirm: confirm, hold: hold, gather: max(gather, 1), busy: busy, bound: bound, done: actors.NewDone(),
		next: &readRound{done: make(chan struct{})}, want: max(gather, 1), kick: make(chan struct{}, 1)}
}

// readRoundTimeout bounds one round: a second, or ten Raft RTTs when
// those are longer (Dragonboat refuses a timeout under one RTT). A round
// that times out (no quorum answered) sends its readers to the next round
// while their own deadlines allow, so a round stuck across a leader change
// delays reads by this much at most, where one long round would hold every
// read behind it.
func readRoundTimeout(rtt time.Duration) time.Duration { return max(time.Second, 10*rtt) }

// wait returns once a round that started after the call has confirmed
// the read index and this node has applied up to it, or with the round's
// error (Dragonboat's, which mapErr knows), or ctx's as SyncRead names it;
// ErrClosed once Run has returned. deadline (zero: ctx's own) ends the
// wait as ctx's deadline would, with a timer only once it is nearer than
// bound: under load a linearizable read then costs no timer and no
// context of its own (README, Benchmarks).
func (x *readRounds) wait(ctx context.Context, deadline time.Time) error {
	for {
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return dragonboat.ErrTimeout
			}
			if left <= x.bound || x.bound <= 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, deadline)
				defer cancel() // once: ctx carries the deadline from here on
				deadline = time.Time{}
			}
		}
		x.mu.Lock()
		r := x.next
		r.waiters++
		n := r.waiters
		want := x.want
		x.mu.Unlock()
		if n == 1 || n == want {
			select {
			case x.kick <- struct{}{}:
			default:
			}
		}
		select {
		case <-r.done:
			if errors.Is(r.err, dragonboat.ErrTimeout) && ctx.Err() == nil {
				continue
			}
			return r.err
		case <-x.done.C():
			return dragonboat.ErrClosed
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return dragonboat.ErrTimeout
			}
			return dragonboat.ErrCanceled
		}
	}
}

// Run serves rounds until ctx ends; then the waiting round fails with
// ErrClosed, and so does every later wait.
func (x *readRounds) Run(ctx context.Context) error {
	defer x.done.Close()
	var last lastRound
	for {
		select {
		case <-x.kick:
			if x.hold > 0 && last.reads >= x.busy {
				x.regather(ctx, last)
			}
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			x.mu.Lock()
			r := x.next
			x.next = &readRound{done: make(chan struct{})}
			x.mu.Unlock()
			r.err = dragonboat.ErrClosed
			close(r.done)
			return nil
		}
		x.mu.Lock()
		r := x.next
		if r.waiters == 0 {
			x.mu.Unlock()
			continue // a late kick of a round already served
		}
		x.next = &readRound{done: make(chan struct{})}
		x.want = x.gather
		x.mu.Unlock()
		last = lastRound{reads: r.waiters, started: time.Now()}
		r.err = x.confirm(ctx)
		// The readers this round carried come back in a closed loop;
		// the ones already waiting are others.
		x.mu.Lock()
		x.want = min(x.gather, last.reads+x.next.waiters)
		x.mu.Unlock()
		close(r.done)
	}
}

// regather holds the forming round until want reads wait: the readers
// the last round carried, who come back in a closed loop, and those that
// joined while it was in flight (at most gather). Once they are all
// there, nobody else is known to be coming, and holding longer would only
// idle them. It holds until hold after the last round started at the
// latest, or until ctx ends.
//
// Holding for gather reads alone idled every reader between rounds
// whenever fewer than gather read at once (README, Benchmarks,
// "ReadIndex rounds wait for their readers").
func (x *readRounds) regather(ctx context.Context, last lastRound) {
	wait := time.Until(last.started.Add(x.hold))
	if wait <= 0 {
		return
	}
	x.mu.Lock()
	n, want := x.next.waiters, x.want
	x.mu.Unlock()
	if n == 0 || n >= want {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		x.mu.Lock()
		n := x.next.waiters
		x.mu.Unlock()
		if n >= want {
			return // the readers are back
		}
		select {
		case <-t.C:
			return
		case <-x.kick:
		case <-ctx.Done():
			return
		}
	}
}

// confirmReadIndex runs one ReadIndex and waits until it completes, with
// SyncRead's errors. Like SyncRead, it releases the request state only
// once Dragonboat is done with it.
func confirmReadIndex(ctx context.Context, nh *dragonboat.NodeHost, shardID uint64, timeout time.Duration) error {
	rs, err := nh.ReadIndex(shardID, timeout)
	if err != nil {
		return err
	}
	select {
	case res := <-rs.AppliedC():
		switch {
		case res.Completed():
			rs.Release()
			return nil
		case res.Rejected():
			return dragonboat.ErrRejected
		case res.Timeout():
			return dragonboat.ErrTimeout
		case res.Terminated():
			return dragonboat.ErrShardClosed
		case res.Dropped():
			return dragonboat.ErrShardNotReady
		default:
			return dragonboat.ErrAborted
		}
	case <-ctx.Done():
		return dragonboat.ErrClosed
	}
}
