package cdc

import "time"

// Status is the /status "cdc" section: rqlite's CDC service keys (node_id,
// dir, highwater_mark, is_leader, endpoint, fifo, service_id) and Skiff's.
// It reads published values only: safe at any time, before Run and after.
func (s *Service) Status() any {
	st := s.ob.Stats()
	s.mu.Lock()
	lastErr, lastDelivery, backfillErr := s.lastErr, s.lastDelivery, s.backfillErr
	s.mu.Unlock()
	missFrom, missTo, _ := s.ob.Missing()
	delivery := ""
	if !lastDelivery.IsZero() {
		delivery = lastDelivery.UTC().Format(time.RFC3339Nano)
	}
	m := map[string]any{
		"node_id":        s.cfg.NodeID,
		"dir":            s.cfg.Dir,
		"highwater_mark": st.HighWater,
		"is_leader":      s.leading.Load(),
		"endpoint":       redactedEndpoint(s.cfg.Endpoint),
		"fifo": map[string]any{
			"has_next": st.Groups > 0,
			"length":   st.Groups,
		},
		"backlog":            st.Groups,
		"backlog_bytes":      st.Bytes,
		"backlog_first":      st.First,
		"backlog_last":       st.Last,
		"high_watermark":     st.HighWater,
		"snapshot_floor":     st.Floor,
		"last_sent_index":    s.lastSent.Load(),
		"last_error":         lastErr,
		"last_delivery_time": delivery,
		"leader":             s.leading.Load(),
		"gaps":               s.gaps.Load(),
		// The range this node never captured (a snapshot install) and is
		// fetching from a peer (0 and 0: none); backfilling: the
		// transmitter waits for it.
		"missing_from":   missFrom,
		"missing_to":     missTo,
		"backfilling":    s.backfilling.Load(),
		"backfill_error": backfillErr,
	}
	if s.cfg.ServiceID != "" {
		m["service_id"] = s.cfg.ServiceID
	}
	return m
}

// Vars is the /debug/vars "cdc" counters.
func (s *Service) Vars() any {
	st := s.ob.Stats()
	var avg int64
	if st.Captures > 0 {
		avg = st.CaptureNanos / st.Captures
	}
	return map[string]any{
		"num_sent":            s.numSent.Load(),
		"num_batches":         s.numBatches.Load(),
		"num_failed":          s.numFail.Load(),
		"num_retries":         s.numRetries.Load(),
		"bytes_sent":          s.bytesSent.Load(),
		"num_hwm_proposed":    s.numHWM.Load(),
		"num_hwm_failed":      s.numHWMFail.Load(),
		"num_nats_duplicates": s.numDupAck.Load(),
		"gaps":                s.gaps.Load(),
		"num_backfills":       s.numBackfills.Load(),
		"num_backfill_failed": s.numBackfillEr.Load(),
		// rqlite's cdc-service names: Skiff never drops.
		"sent_events":            s.numBatches.Load(),
		"retries":                s.numRetries.Load(),
		"dropped_failed_to_send": 0,
		"backlog":                st.Groups,
		"backlog_bytes":          st.Bytes,
		"captures":               st.Captures,
		"capture_avg_ns":         avg,
	}
}
