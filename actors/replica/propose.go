package replica

import (
	"context"
	"errors"
	"time"

	"github.com/lni/dragonboat/v4"
	"go.uber.org/zap"

	"github.com/skiffdb/skiff/sm/cmdpb"
)

// A proposal is sent to Raft once, then again under the same request ID
// whenever it may have been lost:
//   - Raft dropped it (no leader, a leadership transfer) or refused it as
//     busy: it never entered the log, so it is sent again when a leader is
//     known, or after a backoff;
//   - a new leader became known while it was in flight: a follower
//     forwards a proposal to the leader it knows, and if that leader dies
//     before replicating it, or the new leader's log overwrites it, nobody
//     answers it (Dragonboat only times it out at its deadline);
//   - a copy forwarded by this follower is unanswered for a while: the
//     message may have been dropped on the way (resendAfter). Each copy
//     stays in flight and the first answer wins: the state machine applies
//     a request ID once and answers every later copy from its record of
//     the first (sm's dedup table), so a leader's death costs a write an
//     election, not its client's deadline.
//
// Only commands the state machine deduplicates are re-proposed while in
// flight (reproposable); the others are sent again only when dropped.
// Copies are re-sent at most every resendAfterChange, doubling, so a slow
// commit costs a few duplicate entries (answered from the record), never
// a storm.

// outcome is the answer to one copy of a proposal: the state machine's
// result, or Dragonboat's error (ErrShardNotReady for a dropped one).
type outcome struct {
	data []byte
	err  error
}

// proposeFunc sends one copy with the given timeout. Unless it returns an
// error, it later sends that copy's outcome on sink, or gives up when
// stop is closed (the caller has its answer).
type proposeFunc func(timeout time.Duration, sink chan<- outcome, stop <-chan struct{}) error

// minProposeTimeout: Dragonboat refuses a timeout under one tick.
const minProposeTimeout = 2 * time.Millisecond

// reproposable reports whether a command of type typ may be proposed again
// while a copy is in flight: the state machine answers a repeated request
// ID of these from its record instead of applying it again. A NODE entry
// applied twice could undo a later one; a strong read may just run twice.
func reproposable(typ cmdpb.Command_Type) bool {
	switch typ {
	case cmdpb.Command_TYPE_EXECUTE, cmdpb.Command_TYPE_BATCH, cmdpb.Command_TYPE_BOOT, cmdpb.Command_TYPE_QUERY:
		return true
	}
	return false
}

// Resend intervals of a copy forwarded to a leader and not answered
// (proposal.run): a forwarded proposal is a message Dragonboat may drop
// without telling anyone (a full send queue, or a circuit breaker open
// for up to 750 ms after the connection to the old leader failed, which is
// where a killed leader that restarts and wins the election is reached).
const (
	// resendAfterChange: a copy sent to a new leader that is not answered
	// this soon is sent again, up to fastResends times at this pace (the
	// breaker may stay open that long), then at a doubling interval; a
	// commit takes milliseconds.
	resendAfterChange = 250 * time.Millisecond
	fastResends       = 4
	// resendAfter: the same for a copy sent under a stable leader, where
	// a slow commit is likelier than a lost message.
	resendAfter = time.Second
	// resendMax caps the doubling interval.
	resendMax = 2 * time.Second
)

// proposal drives the copies of one command until one is answered.
type proposal struct {
	propose   proposeFunc
	leaders   *leaderWatch
	repropose bool
	// self is this node's replica ID: a copy proposed on the leader is
	// not a message that can be lost, so it is not resent on a timer.
	self uint64
	// mapErr turns Dragonboat's errors into this package's sentinels.
	mapErr func(error) error
	log    *zap.Logger
}

// retryable: the copy never entered the log; sending it again is safe.
func retryable(err error) bool {
	return errors.Is(err, dragonboat.ErrSystemBusy) || errors.Is(err, dragonboat.ErrShardNotReady)
}

// run proposes until a copy is applied, a copy fails for good with no
// other in flight, or ctx ends.
func (p *proposal) run(ctx context.Context) ([]byte, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil, p.mapErr(context.DeadlineExceeded) // withDeadline gives every request one
	}
	stop := make(chan struct{})
	defer close(stop)
	sink := make(chan outcome)
	view, changed := p.leaders.current()
	var (
		inFlight int        // copies sent and not yet answered
		sentIn   leaderView // the leader view the last copy was sent in
		lastErr  error      // the latest failure, answered if nothing succeeds
		waiting  bool       // a retry is due (retry timer or next leader)
		backoff  = 5 * time.Millisecond
		resendIn = resendAfter
		fast     int // resends left at resendAfterChange
	)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	resend := time.NewTimer(time.Hour)
	resend.Stop()
	defer resend.Stop()
	// send sends a copy; false means give up with lastErr. Since Go 1.23
	// a Reset or Stopped timer never delivers a stale tick.
	send := func() bool {
		waiting = false
		timeout := time.Until(deadline)
		if timeout < minProposeTimeout {
			lastErr = context.DeadlineExceeded
			return inFlight > 0
		}
		err := p.propose(timeout, sink, stop)
		switch {
		case err == nil:
			inFlight++
			sentIn = view
			if p.repropose && view.leader != 0 && view.leader != p.self {
				resend.Reset(resendIn)
			} else {
				resend.Stop()
			}
			return true
		case retryable(err):
			lastErr = err
		default:
			lastErr = err
			return inFlight > 0
		}
		if inFlight == 0 {
			retry.Reset(backoff)
			backoff = min(2*backoff, retryBackoffMax)
			waiting = true
		}
		return true
	}
	if !send() {
		return nil, p.mapErr(lastErr)
	}
	for {
		select {
		case o := <-sink:
			inFlight--
			if o.err == nil {
				return o.data, nil
			}
			lastErr = o.err
			if inFlight > 0 {
				continue // another copy may still be answered
			}
			resend.Stop()
			if !retryable(o.err) {
				return nil, p.mapErr(o.err)
			}
			if view.leader == 0 || view == sentIn {
				// Dropped with no leader known (sent again as soon as one
				// is), or under the leader it was sent to (a transfer, a
				// full queue): back off.
				retry.Reset(backoff)
				backoff = min(2*backoff, retryBackoffMax)
				waiting = true
				continue
			}
			if !send() {
				return nil, p.mapErr(lastErr)
			}
		case <-changed:
			view, changed = p.leaders.current()
			if view.leader == 0 {
				continue // no one to send to; a dropped copy waits for a leader
			}
			switch {
			case waiting:
				retry.Stop()
				resendIn, fast = resendAfterChange, fastResends
				if !send() {
					return nil, p.mapErr(lastErr)
				}
			case p.repropose && inFlight > 0 && view != sentIn:
				p.log.Info("a new leader is known; proposing a write in flight to it again",
					zap.Uint64("leader", view.leader), zap.Uint64("term", view.term), zap.Int("copies_in_flight", inFlight))
				resendIn, fast = resendAfterChange, fastResends
				if !send() {
					return nil, p.mapErr(lastErr)
				}
			}
		case <-resend.C:
			// The copy forwarded to the leader may have been dropped on
			// the way: send another (the state machine applies one).
			if inFlight == 0 || view.leader == 0 || view.leader == p.self {
				continue
			}
			p.log.Info("a write forwarded to the leader is unanswered; proposing it again",
				zap.Uint64("leader", view.leader), zap.Uint64("term", view.term), zap.Duration("after", resendIn),
				zap.Int("copies_in_flight", inFlight))
			if fast > 0 {
				fast--
			} else {
				resendIn = min(2*resendIn, resendMax)
			}
			if !send() {
				return nil, p.mapErr(lastErr)
			}
		case <-retry.C:
			if waiting && !send() {
				return nil, p.mapErr(lastErr)
			}
		case <-ctx.Done():
			if waiting && lastErr != nil {
				// Every copy was dropped (no leader, say): that is the
				// answer, as it was before the deadline.
				return nil, p.mapErr(lastErr)
			}
			return nil, p.mapErr(ctx.Err())
		}
	}
}

// dragonboatPropose sends copies of b through nh, each answered on its own
// goroutine (which ends with the copy's answer or stop).
func dragonboatPropose(nh *dragonboat.NodeHost, shardID uint64, b []byte) proposeFunc {
	return func(timeout time.Duration, sink chan<- outcome, stop <-chan struct{}) error {
		rs, err := nh.Propose(nh.GetNoOPSession(shardID), b, timeout)
		if err != nil {
			return err
		}
		go func() {
			var o outcome
			select {
			case res := <-rs.AppliedC():
				o = outcomeOf(res)
				rs.Release()
			case <-stop:
				// Abandoned: Dragonboat answers it at its deadline into
				// a buffered channel nobody reads.
				return
			}
			select {
			case sink <- o:
			case <-stop:
			}
		}()
		return nil
	}
}

// outcomeOf maps a RequestResult as SyncPropose does.
func outcomeOf(res dragonboat.RequestResult) outcome {
	switch {
	case res.Completed():
		return outcome{data: res.GetResult().Data}
	case res.Rejected():
		return outcome{err: dragonboat.ErrRejected}
	case res.Timeout():
		return outcome{err: dragonboat.ErrTimeout}
	case res.Terminated():
		return outcome{err: dragonboat.ErrShardClosed}
	case res.Dropped():
		return outcome{err: dragonboat.ErrShardNotReady}
	case res.Aborted():
		return outcome{err: dragonboat.ErrAborted}
	}
	return outcome{err: dragonboat.ErrAborted}
}
