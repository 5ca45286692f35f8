package ingest

import (
	"sync"
	"sync/atomic"
	"time"
)

// counters are the /debug/vars numbers; every field is written by the
// handlers and read by Status and Vars at any time.
type counters struct {
	received     atomic.Int64 // deliveries fetched (a redelivery counts again)
	redelivered  atomic.Int64 // of which were deliveries after the first
	applied      atomic.Int64 // writes committed (first apply or answered from the dedup record)
	reads        atomic.Int64 // read-only requests answered
	sqlErrors    atomic.Int64 // requests answered with a SQL or request-level error
	parseErrors  atomic.Int64 // deliveries whose body or headers did not parse
	deadLettered atomic.Int64 // messages published to the dead-letter subject (or terminated without one)
	naks         atomic.Int64 // deliveries nak'ed for redelivery
	acks         atomic.Int64 // deliveries acked
	replies      atomic.Int64 // replies published
	errors       atomic.Int64 // NATS errors: connect, bind, fetch, ack, publish
	inFlight     atomic.Int64 // messages being processed now
}

// health is what /status says about the connection; guarded by mu.
type health struct {
	mu        sync.Mutex
	stream    string
	bound     bool
	lastError string
	errorTime time.Time
}

func (h *health) setError(err error) {
	h.mu.Lock()
	h.lastError, h.errorTime = err.Error(), time.Now()
	h.mu.Unlock()
}

func (h *health) setBound(stream string, bound bool) {
	h.mu.Lock()
	if stream != "" {
		h.stream = stream
	}
	h.bound = bound
	h.mu.Unlock()
}

// Status is the /status "ingest" section. It never blocks on NATS: it reads
// published values only.
func (s *Service) Status() any {
	s.health.mu.Lock()
	stream, bound, lastErr, errTime := s.health.stream, s.health.bound, s.health.lastError, s.health.errorTime
	s.health.mu.Unlock()
	st := map[string]any{
		"enabled":             true,
		"url":                 redact(s.cfg.URL),
		"subject":             s.cfg.Subject,
		"stream":              stream,
		"durable":             s.cfg.Durable,
		"dead_letter_subject": s.cfg.DeadLetterSubject,
		"max_in_flight":       s.cfg.MaxInFlight,
		"max_deliveries":      s.cfg.MaxDeliveries,
		"ack_wait":            s.cfg.AckWait.String(),
		"connected":           s.connected.Load(),
		"bound":               bound,
		"fetching":            s.fetching.Load(),
		"last_error":          lastErr,
		"in_flight":           s.c.inFlight.Load(),
	}
	if !errTime.IsZero() {
		st["last_error_time"] = errTime.UTC().Format(time.RFC3339Nano)
	}
	for k, v := range s.vars() {
		st[k] = v
	}
	return st
}

// Vars is the /debug/vars "ingest" section.
func (s *Service) Vars() any { return s.vars() }

func (s *Service) vars() map[string]int64 {
	c := &s.c
	return map[string]int64{
		"num_received":      c.received.Load(),
		"num_redelivered":   c.redelivered.Load(),
		"num_applied":       c.applied.Load(),
		"num_reads":         c.reads.Load(),
		"num_sql_errors":    c.sqlErrors.Load(),
		"num_parse_errors":  c.parseErrors.Load(),
		"num_dead_lettered": c.deadLettered.Load(),
		"num_naks":          c.naks.Load(),
		"num_acks":          c.acks.Load(),
		"num_replies":       c.replies.Load(),
		"num_nats_errors":   c.errors.Load(),
	}
}
