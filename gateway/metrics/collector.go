package metrics

import (
	"context"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// Phases lists every lifecycle phase: skiff_lifecycle_phase has one series
// per phase, 1 for the current one, so a dashboard sees a phase's absence
// as 0 rather than as a missing series.
func Phases() []lifecycle.Phase {
	return []lifecycle.Phase{lifecycle.Starting, lifecycle.Opening, lifecycle.Joining, lifecycle.Recovering,
		lifecycle.Ready, lifecycle.Degraded, lifecycle.Stopping, lifecycle.Removed}
}

// metricDef is one metric the state collector exports.
type metricDef struct {
	name, help string
	typ        prometheus.ValueType
	labels     []string
}

// sectionKey maps a number in a section's published map to a metric.
type sectionKey struct {
	// fromStatus: the key is in Status(), else in Vars().
	fromStatus bool
	key        string
	def        metricDef
}

func gauge(name, help string, labels ...string) metricDef {
	return metricDef{name, help, prometheus.GaugeValue, labels}
}

func counter(name, help string) metricDef {
	return metricDef{name: name, help: help, typ: prometheus.CounterValue}
}

// stateDefs are the metrics read from the published lifecycle state, the
// queue and the SQLite files.
func stateDefs() []metricDef {
	return []metricDef{
		gauge("skiff_build_info", "Always 1; the version in a label.", "version"),
		gauge("skiff_lifecycle_phase", "1 for the node's current lifecycle phase, 0 for the others (DESIGN.md).", "phase"),
		gauge("skiff_lifecycle_phase_seconds", "Time spent in the current lifecycle phase."),
		counter("skiff_lifecycle_dropped_events_total", "Lifecycle events that arrived after lifecycle had stopped."),
		counter("skiff_lifecycle_coalesced_events_total", "Progress reports merged into a later one before lifecycle applied them."),
		gauge("skiff_raft_term", "Current Raft term."),
		gauge("skiff_raft_commit_index", "Raft commit index as this node knows it (sampled)."),
		gauge("skiff_raft_applied_index", "Last log index the state machine applied."),
		gauge("skiff_raft_last_log_index", "Last index in this node's Raft log (sampled)."),
		gauge("skiff_raft_last_snapshot_index", "Index of the latest Raft snapshot (sampled)."),
		gauge("skiff_raft_leader", "1 if this node is the Raft leader."),
		gauge("skiff_raft_leader_known", "1 if this node knows a leader."),
		counter("skiff_raft_leader_changes_total", "Leader changes this node observed."),
		gauge("skiff_raft_members", "Members of the cluster as this node last read them, by suffrage.", "suffrage"),
		gauge("skiff_raft_stats_sample_age_seconds", "Age of the replica's last sample of Raft and SQLite numbers (-1: none yet)."),
		gauge("skiff_sqlite_db_bytes", "Size of the SQLite database file."),
		gauge("skiff_sqlite_wal_bytes", "Size of the SQLite WAL file."),
		gauge("skiff_sqlite_size_bytes", "page_count * page_size of the database, WAL pages included (sampled; rqlite's sqlite3.size)."),
		gauge("skiff_recovery_open_db_bytes", "Size of the database file when it was opened."),
		gauge("skiff_recovery_target_index", "Commit index the node is catching up to."),
		gauge("skiff_recovery_replayed_entries", "Entries applied since the database was opened (or a snapshot installed)."),
		gauge("skiff_recovery_snapshot_received_bytes", "Bytes of the incoming snapshot stream on disk, not yet installed."),
		gauge("skiff_recovery_snapshot_installed_bytes", "Bytes of the snapshot being installed written so far."),
		gauge("skiff_recovery_snapshot_total_bytes", "Size of the snapshot being installed."),
		gauge("skiff_recovery_eta_seconds", "Estimated time left in the current recovery step (0: unknown)."),
		counter("skiff_snapshot_sends_total", "Snapshots streamed whole to peers."),
		counter("skiff_snapshot_sent_bytes_total", "Bytes of the snapshots streamed whole to peers."),
		counter("skiff_snapshot_receives_total", "Snapshots installed from the leader (rqlite's num_restores)."),
		counter("skiff_snapshot_received_bytes_total", "Bytes of the snapshots installed from the leader."),
		counter("skiff_snapshot_local_total", "Local Raft snapshots taken."),
		gauge("skiff_queue_pending_requests", "Queued writes (?queue) waiting to be written."),
		gauge("skiff_queue_sequence_number", "Sequence number of the last queued write persisted."),
	}
}

// sectionDefs are the numbers of the CDC and ingest sections exported, by
// section name: the same published maps /status and /debug/vars show.
func sectionDefs() map[string][]sectionKey {
	st := func(key string, d metricDef) sectionKey { return sectionKey{true, key, d} }
	vs := func(key string, d metricDef) sectionKey { return sectionKey{false, key, d} }
	return map[string][]sectionKey{
		"cdc": {
			st("backlog", gauge("skiff_cdc_backlog_groups", "Change groups captured and not yet acknowledged by the sink.")),
			st("backlog_bytes", gauge("skiff_cdc_backlog_bytes", "Bytes of the CDC backlog.")),
			st("high_watermark", gauge("skiff_cdc_high_water_mark", "Highest log index the sink acknowledged.")),
			st("last_sent_index", gauge("skiff_cdc_last_sent_index", "Highest log index sent to the sink.")),
			st("leader", gauge("skiff_cdc_transmitting", "1 while this node transmits (it leads).")),
			st("backfilling", gauge("skiff_cdc_backfilling", "1 while fetching a range this node never captured from a peer.")),
			vs("num_sent", counter("skiff_cdc_sent_total", "Changes sent to the sink.")),
			vs("num_batches", counter("skiff_cdc_batches_total", "Batches sent to the sink.")),
			vs("num_failed", counter("skiff_cdc_failures_total", "Sends to the sink that failed.")),
			vs("num_retries", counter("skiff_cdc_retries_total", "Sends to the sink retried.")),
			vs("bytes_sent", counter("skiff_cdc_sent_bytes_total", "Bytes sent to the sink.")),
			vs("gaps", counter("skiff_cdc_gaps_total", "Ranges this node found it never captured.")),
			vs("num_backfills", counter("skiff_cdc_backfills_total", "Missing ranges fetched from peers.")),
			vs("captures", counter("skiff_cdc_captures_total", "Change groups captured.")),
		},
		"ingest": {
			st("in_flight", gauge("skiff_ingest_in_flight", "NATS messages being processed.")),
			st("connected", gauge("skiff_ingest_connected", "1 while connected to NATS.")),
			vs("num_received", counter("skiff_ingest_received_total", "Deliveries fetched (a redelivery counts again).")),
			vs("num_redelivered", counter("skiff_ingest_redelivered_total", "Deliveries after the first.")),
			vs("num_applied", counter("skiff_ingest_applied_total", "Writes committed.")),
			vs("num_reads", counter("skiff_ingest_reads_total", "Read-only requests answered.")),
			vs("num_sql_errors", counter("skiff_ingest_sql_errors_total", "Requests answered with a SQL or request error.")),
			vs("num_parse_errors", counter("skiff_ingest_parse_errors_total", "Deliveries that did not parse.")),
			vs("num_dead_lettered", counter("skiff_ingest_dead_lettered_total", "Messages dead-lettered.")),
			vs("num_naks", counter("skiff_ingest_naks_total", "Deliveries nak'ed for redelivery.")),
			vs("num_acks", counter("skiff_ingest_acks_total", "Deliveries acked.")),
			vs("num_replies", counter("skiff_ingest_replies_total", "Replies published.")),
			vs("num_nats_errors", counter("skiff_ingest_nats_errors_total", "NATS errors (connect, bind, fetch, ack, publish).")),
		},
	}
}

// stateCollector reads published state at scrape time.
type stateCollector struct {
	cfg      Config
	descs    map[string]*prometheus.Desc
	types    map[string]prometheus.ValueType
	sections map[string][]sectionKey
}

func newStateCollector(cfg Config) *stateCollector {
	c := &stateCollector{cfg: cfg, descs: map[string]*prometheus.Desc{}, types: map[string]prometheus.ValueType{},
		sections: sectionDefs()}
	add := func(d metricDef) {
		c.descs[d.name] = prometheus.NewDesc(d.name, d.help, d.labels, nil)
		c.types[d.name] = d.typ
	}
	for _, d := range stateDefs() {
		add(d)
	}
	for _, keys := range c.sections {
		for _, k := range keys {
			add(k.def)
		}
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *stateCollector) emit(ch chan<- prometheus.Metric, name string, v float64, lvs ...string) {
	ch <- prometheus.MustNewConstMetric(c.descs[name], c.types[name], v, lvs...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect implements prometheus.Collector: published state only.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	st := c.cfg.State()
	c.emit(ch, "skiff_build_info", 1, c.cfg.Version)
	for _, p := range Phases() {
		c.emit(ch, "skiff_lifecycle_phase", b2f(st.Phase == p), string(p))
	}
	c.emit(ch, "skiff_lifecycle_phase_seconds", max(now.Sub(st.Since).Seconds(), 0))
	c.emit(ch, "skiff_lifecycle_dropped_events_total", float64(st.Dropped))
	c.emit(ch, "skiff_lifecycle_coalesced_events_total", float64(st.Coalesced))

	// The same agreement as /status's store.raft: the applied index and
	// term from lifecycle (fresher) raise the sampled ones.
	rs := st.Replica
	p := st.Progress
	commit := max(rs.CommitIndex, p.AppliedIndex)
	c.emit(ch, "skiff_raft_term", float64(max(st.Term, rs.Term)))
	c.emit(ch, "skiff_raft_commit_index", float64(commit))
	c.emit(ch, "skiff_raft_applied_index", float64(p.AppliedIndex))
	c.emit(ch, "skiff_raft_last_log_index", float64(max(rs.LastLogIndex, commit)))
	c.emit(ch, "skiff_raft_last_snapshot_index", float64(rs.LastSnapshotIndex))
	c.emit(ch, "skiff_raft_leader", b2f(st.IsLeader()))
	c.emit(ch, "skiff_raft_leader_known", b2f(st.LeaderReplicaID != 0))
	c.emit(ch, "skiff_raft_leader_changes_total", float64(rs.LeaderChanges))
	voters, nonvoters := 0, 0
	for _, m := range st.Members {
		if m.Voter {
			voters++
		} else {
			nonvoters++
		}
	}
	c.emit(ch, "skiff_raft_members", float64(voters), "voter")
	c.emit(ch, "skiff_raft_members", float64(nonvoters), "nonvoter")
	age := -1.0
	if !rs.SampledAt.IsZero() {
		age = max(now.Sub(rs.SampledAt).Seconds(), 0)
	}
	c.emit(ch, "skiff_raft_stats_sample_age_seconds", age)

	path := rs.SQLitePath
	if path == "" && c.cfg.DBPath != nil {
		path = c.cfg.DBPath()
	}
	var dbBytes, walBytes int64
	if path != "" {
		dbBytes, walBytes = fileSize(path), fileSize(path+"-wal")
	}
	c.emit(ch, "skiff_sqlite_db_bytes", float64(dbBytes))
	c.emit(ch, "skiff_sqlite_wal_bytes", float64(walBytes))
	c.emit(ch, "skiff_sqlite_size_bytes", float64(rs.SQLiteSize))

	c.emit(ch, "skiff_recovery_open_db_bytes", float64(p.DBBytes))
	c.emit(ch, "skiff_recovery_target_index", float64(p.TargetIndex))
	var replayed uint64
	if p.AppliedIndex > p.OpenIndex {
		replayed = p.AppliedIndex - p.OpenIndex
	}
	c.emit(ch, "skiff_recovery_replayed_entries", float64(replayed))
	c.emit(ch, "skiff_recovery_snapshot_received_bytes", float64(p.ReceivedBytes))
	c.emit(ch, "skiff_recovery_snapshot_installed_bytes", float64(p.SnapshotBytes))
	c.emit(ch, "skiff_recovery_snapshot_total_bytes", float64(p.SnapshotTotal))
	c.emit(ch, "skiff_recovery_eta_seconds", p.ETA.Seconds())

	c.emit(ch, "skiff_snapshot_sends_total", float64(st.SnapshotsSent))
	c.emit(ch, "skiff_snapshot_sent_bytes_total", float64(st.SentBytes))
	c.emit(ch, "skiff_snapshot_receives_total", float64(st.Restores))
	c.emit(ch, "skiff_snapshot_received_bytes_total", float64(st.InstalledBytes))
	c.emit(ch, "skiff_snapshot_local_total", float64(rs.Snapshots))

	if c.cfg.Queue != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.QueueTimeout)
		qs, err := c.cfg.Queue(ctx)
		cancel()
		// A queue that does not answer (stopped) leaves its series out
		// of this scrape rather than reporting a made-up depth.
		if err == nil {
			c.emit(ch, "skiff_queue_pending_requests", float64(qs.Pending))
			c.emit(ch, "skiff_queue_sequence_number", float64(qs.SequenceNumber))
		}
	}
	for _, s := range c.cfg.Sections {
		keys, ok := c.sections[s.Name]
		if !ok {
			continue
		}
		var status, vars map[string]any
		if s.Status != nil {
			status = asMap(s.Status())
		}
		if s.Vars != nil {
			vars = asMap(s.Vars())
		}
		for _, k := range keys {
			src := vars
			if k.fromStatus {
				src = status
			}
			if v, ok := number(src[k.key]); ok {
				c.emit(ch, k.def.name, v)
			}
		}
	}
}

// asMap accepts the sections' map types.
func asMap(v any) map[string]any {
	switch m := v.(type) {
	case map[string]any:
		return m
	case map[string]int64:
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[k] = x
		}
		return out
	}
	return nil
}

// number converts a published value to a sample; false for non-numbers.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case float64:
		return x, true
	case bool:
		return b2f(x), true
	}
	return 0, false
}

// fileSize is a file's size, 0 if it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
