package cdc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skiffdb/skiff/actors"
)

const (
	// leaderPoll is how often a node that does not lead (or has nothing
	// to send) looks at its leadership again: leader() is published state
	// without a change channel, and this bounds a new leader's takeover.
	leaderPoll = 100 * time.Millisecond
	// maxBatchBytes bounds one batch's events in memory (an index larger
	// than this alone is still sent whole).
	maxBatchBytes = 8 << 20
	// hwmProposeTimeout bounds one high-water proposal.
	hwmProposeTimeout = 10 * time.Second
	// hwmFinalTimeout bounds the last proposal of a leader stopping (it
	// delays the node's shutdown; a failure costs only duplicates).
	hwmFinalTimeout = 2 * time.Second
)

// HighWaterProposer replicates the acknowledged index (the replica).
type HighWaterProposer interface {
	ProposeHighWater(ctx context.Context, hwm uint64) error
}

// Service is the CDC transmitter actor: while leader() is true it sends
// the outbox's groups after the high-water mark, in index order, and
// replicates what the sink acknowledged.
type Service struct {
	cfg    Config
	ob     *Outbox
	leader func() bool
	hwm    HighWaterProposer
	log    *zap.Logger
	sink   sink

	// Published for Status/Vars (any goroutine).
	leading                       atomic.Bool
	lastSent, proposed            atomic.Uint64
	numSent, numBatches, numFail  atomic.Int64
	numRetries, bytesSent, gaps   atomic.Int64
	numHWM, numHWMFail, numDupAck atomic.Int64
	mu                            sync.Mutex
	lastErr                       string
	lastDelivery                  time.Time

	// Backfill (backfill.go). backfilling: the transmitter waits at a
	// missing range; refusedSince (unix nanoseconds, 0: not so): since
	// when every voter asked answered that it cannot supply the range.
	client                      *http.Client
	backfilling                 atomic.Bool
	refusedSince                atomic.Int64
	numBackfills, numBackfillEr atomic.Int64
	backfillErr                 string // under mu

	// Run's own.
	next uint64
	// blockedSince is when the transmitter began waiting at a missing
	// range (zero: it is not).
	blockedSince time.Time
}

// New returns a Service for cfg (its defaults applied and validated)
// sending from ob. leader says whether this node leads (lifecycle's
// published state); hwm replicates the acknowledged index.
func New(cfg Config, ob *Outbox, leader func() bool, hwm HighWaterProposer) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ob == nil || leader == nil || hwm == nil {
		return nil, fmt.Errorf("%w: New needs an outbox, a leader function and a high-water proposer", ErrInvalidConfig)
	}
	s := &Service{cfg: cfg, ob: ob, leader: leader, hwm: hwm, log: cfg.Logger, client: cfg.PeerClient}
	if s.client == nil {
		s.client = defaultPeerClient(cfg.PeerTLS)
	}
	sent := func(n int) { s.bytesSent.Add(int64(n)) }
	switch cfg.Kind() {
	case SinkStdout:
		s.sink = &stdout{w: cfg.Stdout, serviceID: cfg.ServiceID, nodeID: cfg.NodeID, bytesSent: sent}
	case SinkNATS:
		n, err := newNATSSink(cfg, sent, func() { s.numDupAck.Add(1) })
		if err != nil {
			return nil, err
		}
		s.sink = n
	default:
		w, err := newWebhook(cfg, sent)
		if err != nil {
			return nil, err
		}
		s.sink = w
	}
	s.lastSent.Store(ob.Acked())
	s.proposed.Store(ob.HighWaterMark())
	return s, nil
}

// Run transmits until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	defer s.sink.close()
	defer s.leading.Store(false)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.highWaterLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		s.backfillLoop(ctx)
	}()
	defer wg.Wait()
	s.next = max(s.ob.Acked(), s.ob.HighWaterMark()) + 1
	s.log.Info("CDC service started", zap.String("endpoint", redactedEndpoint(s.cfg.Endpoint)),
		zap.Uint64("from", s.next), zap.String("node_id", s.cfg.NodeID))
	var firstSeen time.Time
	for ctx.Err() == nil {
		// Taken before leadership is read: a change in between closes it.
		changed := s.roleChanged()
		lead := s.leader()
		s.leading.Store(lead)
		if !lead {
			firstSeen, s.blockedSince = time.Time{}, time.Time{}
			s.backfilling.Store(false)
			s.wait(ctx, s.idle(), changed)
			continue
		}
		from := max(s.next, s.ob.HighWaterMark()+1)
		groups, err := s.ob.Range(from, s.cfg.MaxBatchSize, maxBatchBytes)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			return err
		}
		// Read after Range: a snapshot install records its missing range
		// before anything past it is captured, so groups past a range
		// this read does not see cannot be in the batch.
		if mf, mt, ok := s.ob.Missing(); ok && mt >= from {
			groups = below(groups, mf)
			if len(groups) == 0 {
				// Everything before the range was sent: wait for the
				// backfill, never skip into it (unless no voter can
				// supply it for backfill_timeout).
				firstSeen = time.Time{}
				s.backfilling.Store(true)
				if skipped, retry := s.giveUp(mf, mt); !skipped {
					s.wait(ctx, retry, changed) // backfill_timeout runs
				}
				continue
			}
		}
		s.backfilling.Store(false)
		s.blockedSince = time.Time{}
		if len(groups) == 0 {
			firstSeen = time.Time{}
			s.wait(ctx, s.idle(), changed)
			continue
		}
		es := entries(groups)
		if len(es) < s.cfg.MaxBatchSize {
			// A partial batch waits up to max_batch_delay to fill, as
			// rqlite's batcher does.
			if firstSeen.IsZero() {
				firstSeen = time.Now()
			}
			if left := s.cfg.MaxBatchDelay - time.Since(firstSeen); left > 0 {
				s.wait(ctx, left, changed)
				continue
			}
		}
		firstSeen = time.Time{}
		s.send(ctx, es)
	}
	return nil
}

// wait returns after d (never, when d is 0), on a capture, when changed
// is closed (leadership may have moved), or when ctx ends.
func (s *Service) wait(ctx context.Context, d time.Duration, changed <-chan struct{}) {
	var expired <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-ctx.Done():
	case <-s.ob.Notify():
	case <-changed:
	case <-expired:
	}
}

// roleChanged is Config.RoleChanged's channel; nil (never ready) without one.
func (s *Service) roleChanged() <-chan struct{} {
	if s.cfg.RoleChanged == nil {
		return nil
	}
	return s.cfg.RoleChanged()
}

// idle is how long an idle transmitter waits before reading leadership
// again: for ever when a role change wakes it, leaderPoll otherwise.
func (s *Service) idle() time.Duration {
	if s.cfg.RoleChanged != nil {
		return 0
	}
	return leaderPoll
}

// send delivers es, retrying until the sink takes it, ctx ends, or this
// node stops leading. It never skips: where rqlite drops the batch after
// transmit_max_retries, Skiff keeps trying at transmit_max_backoff.
func (s *Service) send(ctx context.Context, es []entry) {
	delay := s.cfg.TransmitMinBackoff
	for attempt := 1; ; attempt++ {
		tctx, cancel := context.WithTimeout(ctx, s.cfg.TransmitTimeout)
		n, err := s.sink.deliver(tctx, es)
		cancel()
		if n > 0 {
			s.acked(es[:n])
			es = es[n:]
		}
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.numFail.Add(1)
		s.setErr(err.Error())
		if s.cfg.TransmitMaxRetries != nil && attempt == *s.cfg.TransmitMaxRetries {
			s.log.Warn("CDC delivery failed transmit_max_retries times; rqlite would drop the batch, Skiff keeps retrying at transmit_max_backoff",
				zap.Int("attempts", attempt), zap.Uint64("first_index", es[0].index), zap.Error(err))
		} else {
			s.log.Debug("CDC delivery failed; retrying", zap.Int("attempt", attempt), zap.Error(err))
		}
		delay = nextDelay(s.cfg, attempt, delay)
		s.numRetries.Add(1)
		if !actors.Sleep(ctx, delay) || !s.leader() {
			return
		}
	}
}

// nextDelay is the wait after failed try number attempt, the previous
// wait being prev: rqlite's policies (linear: transmit_min_backoff;
// exponential: doubled before each wait, up to transmit_max_backoff), and
// transmit_max_backoff once transmit_max_retries tries failed.
func nextDelay(c Config, attempt int, prev time.Duration) time.Duration {
	switch {
	case c.TransmitMaxRetries != nil && attempt >= *c.TransmitMaxRetries:
		return c.TransmitMaxBackoff
	case c.TransmitRetryPolicy == ExponentialRetryPolicy:
		return min(2*prev, c.TransmitMaxBackoff)
	}
	return c.TransmitMinBackoff
}

// acked records a delivered prefix.
func (s *Service) acked(es []entry) {
	last := es[len(es)-1].index
	s.next = last + 1
	s.lastSent.Store(last)
	s.numSent.Add(int64(len(es)))
	s.numBatches.Add(1)
	s.mu.Lock()
	s.lastDelivery = time.Now()
	s.mu.Unlock()
	if err := s.ob.SetAcked(last); err != nil && !errors.Is(err, ErrClosed) {
		s.log.Warn("could not record the acknowledged CDC index", zap.Uint64("index", last), zap.Error(err))
	}
}

// setErr records the last delivery error; it stays after a recovery
// (last_delivery_time says whether deliveries resumed since).
func (s *Service) setErr(e string) {
	s.mu.Lock()
	s.lastErr = e
	s.mu.Unlock()
}

// highWaterLoop replicates the acknowledged index every
// high_watermark_interval while this node leads and the index moved; a
// leader stopping proposes it one last time (as rqlite's Stop does), so
// that the next leader re-sends less.
func (s *Service) highWaterLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.HighWatermarkInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), hwmFinalTimeout)
			s.proposeHighWater(fctx)
			cancel()
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, hwmProposeTimeout)
		s.proposeHighWater(pctx)
		cancel()
	}
}

func (s *Service) proposeHighWater(ctx context.Context) {
	acked := s.lastSent.Load()
	if !s.leader() || acked <= s.proposed.Load() || acked <= s.ob.HighWaterMark() {
		return
	}
	if err := s.hwm.ProposeHighWater(ctx, acked); err != nil {
		s.numHWMFail.Add(1)
		s.log.Warn("could not replicate the CDC high-water mark; retried next interval", zap.Uint64("hwm", acked), zap.Error(err))
		return
	}
	s.numHWM.Add(1)
	s.proposed.Store(acked)
}
