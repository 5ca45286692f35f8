package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/skiffdb/skiff/actors/lifecycle"
)

// fakeState is a published state with a number in every field the
// collector reads.
func fakeState(t *testing.T, phase lifecycle.Phase) *lifecycle.State {
	db := filepath.Join(t.TempDir(), "db-1.sqlite")
	if err := os.WriteFile(db, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(db+"-wal", make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	return &lifecycle.State{
		Phase: phase, Since: time.Now().Add(-time.Minute), Term: 3, LeaderReplicaID: 1,
		Identity: lifecycle.Identity{NodeID: "n1", ReplicaID: 1},
		Members:  []lifecycle.Member{{ReplicaID: 1, Voter: true}, {ReplicaID: 2, Voter: true}, {ReplicaID: 3}},
		Progress: lifecycle.Progress{
			DBBytes: 4096, AppliedIndex: 10, OpenIndex: 4, TargetIndex: 20,
			ReceivedBytes: 100, SnapshotBytes: 50, SnapshotTotal: 200, ETA: 2 * time.Second,
		},
		Replica: lifecycle.ReplicaStats{
			SampledAt: time.Now(), CommitIndex: 12, LastLogIndex: 15, LastSnapshotIndex: 8, Term: 2,
			SQLitePath: db, SQLiteSize: 36864, Snapshots: 5, LeaderChanges: 2,
		},
		Restores: 1, InstalledBytes: 200, SnapshotsSent: 2, SentBytes: 300, Dropped: 1, Coalesced: 9,
	}
}

func fakeConfig(st *lifecycle.State) Config {
	return Config{
		State:   func() *lifecycle.State { return st },
		Version: "v-test",
		Queue: func(context.Context) (QueueStats, error) {
			return QueueStats{Pending: 7, SequenceNumber: 41}, nil
		},
		Sections: []Section{
			{Name: "cdc",
				Status: func() any {
					return map[string]any{"backlog": 3, "backlog_bytes": int64(512), "high_watermark": uint64(9),
						"last_sent_index": uint64(11), "leader": true, "backfilling": false, "endpoint": "http://x"}
				},
				Vars: func() any {
					return map[string]any{"num_sent": int64(30), "num_batches": int64(6), "num_failed": int64(1),
						"num_retries": int64(2), "bytes_sent": int64(4000), "gaps": uint64(0), "num_backfills": int64(0), "captures": int64(12)}
				}},
			{Name: "ingest",
				Status: func() any { return map[string]any{"in_flight": int64(2), "connected": true, "url": "nats://x"} },
				Vars:   func() any { return map[string]int64{"num_received": 5, "num_applied": 4, "num_acks": 4} }},
			{Name: "unknown", Status: func() any { return map[string]any{"n": 1} }},
		},
	}
}

// gather returns every sample as "name{labels}" -> value (histograms by
// their count, as name_count).
func gather(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			key := mf.GetName() + labels(s.GetLabel())
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out[key] = s.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				out[key] = s.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[mf.GetName()+"_count"+labels(s.GetLabel())] = float64(s.GetHistogram().GetSampleCount())
				out[mf.GetName()+"_sum"+labels(s.GetLabel())] = s.GetHistogram().GetSampleSum()
			default:
				out[key] = s.GetUntyped().GetValue()
			}
		}
	}
	return out
}

func labels(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

func TestCollectorPublishedState(t *testing.T) {
	m, err := New(fakeConfig(fakeState(t, lifecycle.Recovering)))
	if err != nil {
		t.Fatal(err)
	}
	got := gather(t, m)
	want := map[string]float64{
		`skiff_build_info{version="v-test"}`:                 1,
		`skiff_lifecycle_phase{phase="recovering"}`:          1,
		`skiff_lifecycle_phase{phase="ready"}`:               0,
		`skiff_lifecycle_phase{phase="starting"}`:            0,
		`skiff_lifecycle_dropped_events_total`:               1,
		`skiff_lifecycle_coalesced_events_total`:             9,
		`skiff_raft_term`:                                    3,
		`skiff_raft_commit_index`:                            12,
		`skiff_raft_applied_index`:                           10,
		`skiff_raft_last_log_index`:                          15,
		`skiff_raft_last_snapshot_index`:                     8,
		`skiff_raft_leader`:                                  1,
		`skiff_raft_leader_known`:                            1,
		`skiff_raft_leader_changes_total`:                    2,
		`skiff_raft_members{suffrage="voter"}`:               2,
		`skiff_raft_members{suffrage="nonvoter"}`:            1,
		`skiff_sqlite_db_bytes`:                              4096,
		`skiff_sqlite_wal_bytes`:                             1000,
		`skiff_sqlite_size_bytes`:                            36864,
		`skiff_recovery_open_db_bytes`:                       4096,
		`skiff_recovery_target_index`:                        20,
		`skiff_recovery_replayed_entries`:                    6,
		`skiff_recovery_snapshot_received_bytes`:             100,
		`skiff_recovery_snapshot_installed_bytes`:            50,
		`skiff_recovery_snapshot_total_bytes`:                200,
		`skiff_recovery_eta_seconds`:                         2,
		`skiff_snapshot_sends_total`:                         2,
		`skiff_snapshot_sent_bytes_total`:                    300,
		`skiff_snapshot_receives_total`:                      1,
		`skiff_snapshot_received_bytes_total`:                200,
		`skiff_snapshot_local_total`:                         5,
		`skiff_queue_pending_requests`:                       7,
		`skiff_queue_sequence_number`:                        41,
		`skiff_cdc_backlog_groups`:                           3,
		`skiff_cdc_backlog_bytes`:                            512,
		`skiff_cdc_high_water_mark`:                          9,
		`skiff_cdc_last_sent_index`:                          11,
		`skiff_cdc_transmitting`:                             1,
		`skiff_cdc_backfilling`:                              0,
		`skiff_cdc_sent_total`:                               30,
		`skiff_cdc_batches_total`:                            6,
		`skiff_cdc_failures_total`:                           1,
		`skiff_cdc_retries_total`:                            2,
		`skiff_cdc_sent_bytes_total`:                         4000,
		`skiff_cdc_captures_total`:                           12,
		`skiff_ingest_in_flight`:                             2,
		`skiff_ingest_connected`:                             1,
		`skiff_ingest_received_total`:                        5,
		`skiff_ingest_applied_total`:                         4,
		`skiff_ingest_acks_total`:                            4,
		`skiff_raft_proposal_duration_seconds_count`:         0,
		`skiff_sm_statements_applied_total`:                  0,
		`skiff_raft_read_index_round_failures_total`:         0,
		`skiff_raft_read_index_round_duration_seconds_count`: 0,
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s missing", k)
			continue
		}
		if g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	if ps := got["skiff_lifecycle_phase_seconds"]; ps < 59 || ps > 600 {
		t.Errorf("skiff_lifecycle_phase_seconds = %v, want about 60", ps)
	}
	// Keys that are not numbers (endpoint, url) and unknown sections add
	// nothing; a section's missing key leaves its series out.
	for k := range got {
		if strings.Contains(k, "unknown") || strings.Contains(k, "endpoint") {
			t.Errorf("unexpected series %s", k)
		}
	}
	if _, ok := got["skiff_ingest_naks_total"]; ok {
		t.Error("skiff_ingest_naks_total present though the section has no num_naks")
	}
	// The Go and process collectors are registered.
	for _, k := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing (Go/process collector)", k)
		}
	}
}

// TestPhaseGaugeEveryPhase: one series per phase, exactly one at 1, in
// every phase, and a zero State (before anything happened) is served too.
func TestPhaseGaugeEveryPhase(t *testing.T) {
	for _, ph := range Phases() {
		st := &lifecycle.State{Phase: ph, Since: time.Now()}
		m, err := New(Config{State: func() *lifecycle.State { return st }})
		if err != nil {
			t.Fatal(err)
		}
		got := gather(t, m)
		ones := 0
		for _, p := range Phases() {
			v, ok := got[`skiff_lifecycle_phase{phase="`+string(p)+`"}`]
			if !ok {
				t.Fatalf("%s: no series for phase %s", ph, p)
			}
			if v == 1 {
				ones++
				if p != ph {
					t.Errorf("in %s, phase %s is 1", ph, p)
				}
			}
		}
		if ones != 1 {
			t.Errorf("in %s: %d phases at 1", ph, ones)
		}
		if got["skiff_raft_stats_sample_age_seconds"] != -1 {
			t.Errorf("sample age before any sample: %v, want -1", got["skiff_raft_stats_sample_age_seconds"])
		}
		if _, ok := got["skiff_queue_pending_requests"]; ok {
			t.Error("queue series without a queue")
		}
	}
}

// A queue that does not answer leaves its series out of the scrape,
// which still answers within the bound.
func TestQueueNotAnswering(t *testing.T) {
	cfg := fakeConfig(fakeState(t, lifecycle.Stopping))
	cfg.QueueTimeout = 20 * time.Millisecond
	cfg.Queue = func(ctx context.Context) (QueueStats, error) {
		<-ctx.Done()
		return QueueStats{}, ctx.Err()
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := gather(t, m)
	if _, ok := got["skiff_queue_pending_requests"]; ok {
		t.Error("queue depth reported from a queue that did not answer")
	}
	if got[`skiff_lifecycle_phase{phase="stopping"}`] != 1 {
		t.Error("phase missing")
	}
}

func TestInstruments(t *testing.T) {
	m, err := New(fakeConfig(fakeState(t, lifecycle.Ready)))
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveHTTP("/db/query", 200, time.Millisecond)
	m.ObserveHTTP("/db/query", 200, 2*time.Millisecond)
	m.ObserveHTTP("/db/execute", 503, time.Millisecond)
	m.ObserveHTTP("other", 999, time.Millisecond)
	m.Proposed(3*time.Millisecond, 5, nil)
	m.Proposed(time.Second, 1, errors.New("timeout"))
	m.ReadRound(time.Millisecond, nil)
	m.ReadRound(time.Millisecond, errors.New("no leader"))
	m.Applied(time.Millisecond, 3, 7)
	got := gather(t, m)
	want := map[string]float64{
		`skiff_http_request_duration_seconds_count{code="200",route="/db/query"}`:   2,
		`skiff_http_request_duration_seconds_count{code="503",route="/db/execute"}`: 1,
		`skiff_http_request_duration_seconds_count{code="other",route="other"}`:     1,
		`skiff_raft_proposal_duration_seconds_count`:                                2,
		`skiff_raft_proposal_writes_count`:                                          2,
		`skiff_raft_proposal_writes_sum`:                                            6,
		`skiff_raft_proposal_failures_total`:                                        1,
		`skiff_raft_read_index_round_duration_seconds_count`:                        2,
		`skiff_raft_read_index_round_failures_total`:                                1,
		`skiff_sm_apply_duration_seconds_count`:                                     1,
		`skiff_sm_apply_batch_entries_sum`:                                          3,
		`skiff_sm_statements_applied_total`:                                         7,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// A nil *Metrics (metrics off) observes nothing and does not panic.
	var off *Metrics
	off.ObserveHTTP("/status", 200, time.Millisecond)
	off.Proposed(time.Millisecond, 1, nil)
	off.ReadRound(time.Millisecond, nil)
	off.Applied(time.Millisecond, 1, 1)
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no State: %v, want ErrInvalidConfig", err)
	}
	st := func() *lifecycle.State { return &lifecycle.State{} }
	if _, err := New(Config{State: st, QueueTimeout: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("negative timeout: %v, want ErrInvalidConfig", err)
	}
	if _, err := New(Config{State: st, Sections: []Section{{}}}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("unnamed section: %v, want ErrInvalidConfig", err)
	}
	if c := (Config{State: st}).WithDefaults(); c.QueueTimeout != DefaultQueueTimeout || c.Version == "" {
		t.Errorf("defaults: %+v", c)
	}
}

// TestPromtoolCheck runs `promtool check metrics` (Prometheus' own lint:
// names, units, types, help) on the handler's real output.
func TestPromtoolCheck(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install it as the repo's setup does (.ci/run: apt-get install -y prometheus)")
	}
	m, err := New(fakeConfig(fakeState(t, lifecycle.Ready)))
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveHTTP("/db/query", 200, time.Millisecond)
	m.Proposed(time.Millisecond, 2, nil)
	m.ReadRound(time.Millisecond, nil)
	m.Applied(time.Millisecond, 2, 2)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d %v", resp.StatusCode, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
	for _, s := range []string{"skiff_lifecycle_phase", "skiff_http_request_duration_seconds_bucket", "go_goroutines", "process_"} {
		if !bytes.Contains(body, []byte(s)) {
			t.Errorf("output lacks %s", s)
		}
	}
}

// BenchmarkInstruments is the hot-path cost of each event-time instrument
// (one call per request, proposal, round or apply batch).
func BenchmarkInstruments(b *testing.B) {
	m, err := New(Config{State: func() *lifecycle.State { return &lifecycle.State{} }})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("http", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			m.ObserveHTTP("/db/query", 200, time.Millisecond)
		}
	})
	b.Run("proposal", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			m.Proposed(time.Millisecond, 8, nil)
		}
	})
	b.Run("apply", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			m.Applied(time.Millisecond, 8, 8)
		}
	})
}

// BenchmarkScrape is one /metrics scrape's cost (published state only).
func BenchmarkScrape(b *testing.B) {
	st := &lifecycle.State{Phase: lifecycle.Ready}
	m, err := New(Config{State: func() *lifecycle.State { return st }})
	if err != nil {
		b.Fatal(err)
	}
	h := m.Handler()
	b.ReportAllocs()
	for range b.N {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
