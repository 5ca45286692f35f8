package cdc

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/bootstrap/nodetls"
)

const (
	// backfillMinBackoff and backfillMaxBackoff bound the wait between
	// two rounds of asking the voters for a missing range.
	backfillMinBackoff = 100 * time.Millisecond
	backfillMaxBackoff = 5 * time.Second
	// gapPoll bounds how long the backfill loop sleeps with no missing
	// range (a snapshot install wakes it at once).
	gapPoll = 10 * time.Second
	// fetchTimeout bounds one fetch from a peer (a stalled stream): what
	// it stored before stays, the next try asks for the rest.
	fetchTimeout = 2 * time.Minute
)

// below returns the prefix of groups (in index order) below index i.
func below(groups []Group, i uint64) []Group {
	for k, g := range groups {
		if g.Index >= i {
			return groups[:k]
		}
	}
	return groups
}

// backfillLoop runs on every node, leader or not: while the outbox reports
// a missing range it asks the other voters, one after another, with
// backoff, and stores the first complete answer. A node that installed a
// snapshot is thus ready to transmit before it ever leads.
func (s *Service) backfillLoop(ctx context.Context) {
	delay := backfillMinBackoff
	for ctx.Err() == nil {
		from, to, ok := s.ob.Missing()
		if !ok {
			s.refusedSince.Store(0)
			delay = backfillMinBackoff
			t := time.NewTimer(gapPoll)
			select {
			case <-ctx.Done():
			case <-s.ob.GapNotify():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		done, refused := s.backfillRound(ctx, from, to)
		switch {
		case done:
			s.refusedSince.Store(0)
			delay = backfillMinBackoff
			continue
		case refused:
			s.refusedSince.CompareAndSwap(0, time.Now().UnixNano())
		default:
			s.refusedSince.Store(0)
		}
		if !actors.Sleep(ctx, delay) {
			return
		}
		delay = min(2*delay, backfillMaxBackoff)
	}
}

// backfillRound asks each voter in turn for [from, to]. done: the range is
// stored (or went away); refused: every voter answered that it cannot
// supply it (none to ask counts).
func (s *Service) backfillRound(ctx context.Context, from, to uint64) (done, refused bool) {
	var peers []string
	if s.cfg.Peers != nil {
		peers = s.cfg.Peers()
	}
	refused = true
	for _, p := range peers {
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		err := fetchRange(fctx, s.client, nodetls.PeerURL(s.cfg.PeerTLS != nil, p, ""), from, to, backfillChunkBytes, s.ob.Backfill)
		cancel()
		if err == nil {
			s.numBackfills.Add(1)
			s.log.Info("fetched the CDC changes this node never captured from a peer",
				zap.String("peer", p), zap.Uint64("from", from), zap.Uint64("to", to))
			return true, false
		}
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return false, false
		}
		s.numBackfillEr.Add(1)
		if !errors.Is(err, errRefused) {
			refused = false
		}
		s.mu.Lock()
		s.backfillErr = p + ": " + err.Error()
		s.mu.Unlock()
		s.log.Debug("a peer did not supply the missing CDC range", zap.String("peer", p),
			zap.Uint64("from", from), zap.Uint64("to", to), zap.Error(err))
		// A cut-off stream stored a complete prefix; the high-water mark
		// may have moved: ask the next one for what is left.
		var ok bool
		if from, to, ok = s.ob.Missing(); !ok {
			return true, false
		}
	}
	return false, refused
}

// giveUp is called while the leader's transmitter waits at the missing
// range [from, to]: once every voter has answered that it cannot supply it
// for backfill_timeout (all of them installed snapshots past it), it logs
// the gap, counts it, and skips the range. It reports whether it did, and
// if not, the soonest it could: the transmitter sleeps that long unless a
// stored range or a role change wakes it, rather than polling.
func (s *Service) giveUp(from, to uint64) (bool, time.Duration) {
	now := time.Now()
	if s.blockedSince.IsZero() {
		s.blockedSince = now
	}
	rs := s.refusedSince.Load()
	if rs == 0 {
		// The backfill loop marks refusals from now at the earliest.
		return false, s.cfg.BackfillTimeout
	}
	since := time.Unix(0, rs)
	if s.blockedSince.After(since) {
		since = s.blockedSince
	}
	if left := s.cfg.BackfillTimeout - now.Sub(since); left > 0 {
		return false, left
	}
	if err := s.ob.skipMissing(to); err != nil {
		s.log.Error("could not skip the CDC range no voter holds", zap.Error(err))
		return false, backfillMinBackoff
	}
	s.gaps.Add(1)
	s.blockedSince = time.Time{}
	s.log.Error("CDC gap: no voter holds the changes of these indexes (every one installed a snapshot past them "+
		"before the sink acknowledged them); they are skipped and the sink never receives them",
		zap.Uint64("from", from), zap.Uint64("to", to), zap.Duration("waited", s.cfg.BackfillTimeout))
	return true, 0
}
