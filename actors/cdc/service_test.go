package cdc

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/skiffdb/skiff/sm"
)

// receiver is a webhook that answers 500 to the first fail requests, then
// 200, and keeps the envelopes it accepted.
type receiver struct {
	fail  atomic.Int64
	mu    sync.Mutex
	got   []rqEnvelopeIn
	bodes []string
	tries atomic.Int64
}

type rqEnvelopeIn struct {
	ServiceID string `json:"service_id"`
	NodeID    string `json:"node_id"`
	Payload   []struct {
		Index     uint64            `json:"index"`
		Timestamp int64             `json:"commit_timestamp"`
		Events    []json.RawMessage `json:"events"`
	} `json:"payload"`
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.tries.Add(1)
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if rc.fail.Add(-1) >= 0 {
		http.Error(w, "receiver down", http.StatusInternalServerError)
		return
	}
	var env rqEnvelopeIn
	if err := json.Unmarshal(body, &env); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, env)
	rc.bodes = append(rc.bodes, string(body))
	rc.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// indexes is every payload index received, in order.
func (rc *receiver) indexes() []uint64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []uint64
	for _, e := range rc.got {
		for _, p := range e.Payload {
			out = append(out, p.Index)
		}
	}
	return out
}

func (rc *receiver) envelopes() []rqEnvelopeIn {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]rqEnvelopeIn(nil), rc.got...)
}

// proposer stands in for the replica: a proposal "applies" at once on the
// outbox (HighWater), unless failing.
type proposer struct {
	ob    *Outbox
	fail  atomic.Bool
	mu    sync.Mutex
	calls []uint64
}

func (p *proposer) ProposeHighWater(_ context.Context, hwm uint64) error {
	p.mu.Lock()
	p.calls = append(p.calls, hwm)
	p.mu.Unlock()
	if p.fail.Load() {
		return errors.New("no quorum")
	}
	p.ob.HighWater(hwm)
	return nil
}

func (p *proposer) proposals() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint64(nil), p.calls...)
}

func testConfig(t *testing.T, endpoint string) Config {
	return Config{Endpoint: endpoint, NodeID: "node-1", MaxBatchSize: 10, MaxBatchDelay: time.Millisecond,
		HighWatermarkInterval: 10 * time.Millisecond, TransmitTimeout: 5 * time.Second,
		TransmitMinBackoff: time.Millisecond, TransmitMaxBackoff: 4 * time.Millisecond, Logger: zaptest.NewLogger(t)}
}

// run starts s and returns a function that stops it and waits.
func run(t *testing.T, s *Service) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func captureRange(t *testing.T, ob *Outbox, from, to uint64) {
	t.Helper()
	var gs []sm.ChangeGroup
	for i := from; i <= to; i++ {
		gs = append(gs, insert(i, 0, int64(i), "row"))
		if i%7 == 0 {
			// A BATCH entry: a second request at the same index.
			gs = append(gs, insert(i, 1, int64(i)+1_000_000, "second"))
		}
	}
	if err := ob.Capture(gs); err != nil {
		t.Fatal(err)
	}
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// TestServiceWebhookRetries: the receiver fails 7 times; transmit_max_retries
// is 3, after which rqlite drops a batch. Skiff delivers every index
// exactly once, in order, in batches of at most max_batch_size indexes,
// with the groups of one index in one payload entry.
func TestServiceWebhookRetries(t *testing.T) {
	rc := &receiver{}
	rc.fail.Store(7)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ob := openOutbox(t, t.TempDir())
	cfg := testConfig(t, srv.URL+"/cdc")
	cfg.ServiceID = "svc"
	three := 3
	cfg.TransmitMaxRetries = &three
	p := &proposer{ob: ob}
	s, err := New(cfg, ob, func() bool { return true }, p)
	if err != nil {
		t.Fatal(err)
	}
	captureRange(t, ob, 1, 45)
	run(t, s)
	eventually(t, "45 indexes delivered", func() bool { return len(rc.indexes()) >= 45 })
	captureRange(t, ob, 46, 60)
	eventually(t, "60 indexes delivered", func() bool { return len(rc.indexes()) >= 60 })
	if got := rc.indexes(); !equal(got, seq(1, 60)) {
		t.Fatalf("received %v", got)
	}
	for _, env := range rc.envelopes() {
		if len(env.Payload) > 10 || env.ServiceID != "svc" || env.NodeID != "node-1" {
			t.Fatalf("envelope of %d entries, service %q node %q", len(env.Payload), env.ServiceID, env.NodeID)
		}
		for _, e := range env.Payload {
			want := 1
			if e.Index%7 == 0 {
				want = 2
			}
			if len(e.Events) != want || e.Timestamp != insert(e.Index, 0, 0, "").CommitTime {
				t.Fatalf("index %d: %d events, timestamp %d", e.Index, len(e.Events), e.Timestamp)
			}
		}
	}
	v := s.Vars().(map[string]any)
	if v["num_failed"].(int64) != 7 || v["num_retries"].(int64) != 7 || v["num_sent"].(int64) != 60 || v["bytes_sent"].(int64) <= 0 {
		t.Fatalf("vars %v", v)
	}
	st := s.Status().(map[string]any)
	if !strings.Contains(st["last_error"].(string), "500") || st["last_delivery_time"] == "" || st["last_sent_index"] != uint64(60) ||
		st["is_leader"] != true || st["leader"] != true || st["service_id"] != "svc" {
		t.Fatalf("status %v", st)
	}
	// The acknowledged index is replicated, and the outbox pruned below it.
	eventually(t, "high-water mark 60", func() bool { return ob.HighWaterMark() == 60 && ob.Stats().Groups == 0 })
	if ps := p.proposals(); len(ps) == 0 || ps[len(ps)-1] != 60 {
		t.Fatalf("proposals %v", ps)
	}
}

func TestNextDelay(t *testing.T) {
	c := Config{TransmitMinBackoff: 100 * time.Millisecond, TransmitMaxBackoff: time.Second}
	seqOf := func(c Config) []time.Duration {
		var out []time.Duration
		d := c.TransmitMinBackoff
		for a := 1; a <= 6; a++ {
			d = nextDelay(c, a, d)
			out = append(out, d)
		}
		return out
	}
	ms := time.Millisecond
	check := func(name string, got []time.Duration, want ...time.Duration) {
		t.Helper()
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: %v, want %v", name, got, want)
			}
		}
	}
	check("linear", seqOf(c), 100*ms, 100*ms, 100*ms, 100*ms, 100*ms, 100*ms)
	c.TransmitRetryPolicy = ExponentialRetryPolicy
	check("exponential", seqOf(c), 200*ms, 400*ms, 800*ms, 1000*ms, 1000*ms, 1000*ms)
	two := 2
	c.TransmitMaxRetries = &two
	c.TransmitRetryPolicy = LinearRetryPolicy
	check("linear, retries exhausted", seqOf(c), 100*ms, 1000*ms, 1000*ms, 1000*ms, 1000*ms, 1000*ms)
}

// TestServiceLeadership: nothing is sent while leader() is false; when
// another leader's high-water mark moved meanwhile, sending resumes after
// it.
func TestServiceLeadership(t *testing.T) {
	for _, withChanges := range []bool{false, true} {
		name := "leadership read every leaderPoll"
		if withChanges {
			name = "woken by role changes"
		}
		t.Run(name, func(t *testing.T) { testServiceLeadership(t, withChanges) })
	}
}

// roleSignal stands in for lifecycle: set flips leadership and closes the
// channel Changed handed out.
type roleSignal struct {
	leading atomic.Bool
	mu      sync.Mutex
	ch      chan struct{}
}

func newRoleSignal() *roleSignal { return &roleSignal{ch: make(chan struct{})} }

func (r *roleSignal) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ch
}

func (r *roleSignal) set(v bool) {
	r.leading.Store(v)
	r.mu.Lock()
	close(r.ch)
	r.ch = make(chan struct{})
	r.mu.Unlock()
}

func testServiceLeadership(t *testing.T, withChanges bool) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ob := openOutbox(t, t.TempDir())
	role := newRoleSignal()
	p := &proposer{ob: ob}
	cfg := testConfig(t, srv.URL)
	if withChanges {
		cfg.RoleChanged = role.Changed
	}
	s, err := New(cfg, ob, role.leading.Load, p)
	if err != nil {
		t.Fatal(err)
	}
	captureRange(t, ob, 1, 5)
	run(t, s)
	eventually(t, "status says not leading", func() bool { return s.Status().(map[string]any)["leader"] == false })
	if n := rc.tries.Load(); n != 0 {
		t.Fatalf("a follower sent %d requests", n)
	}
	role.set(true)
	eventually(t, "1..5 delivered", func() bool { return len(rc.indexes()) == 5 })
	role.set(false)
	eventually(t, "status says not leading", func() bool { return s.Status().(map[string]any)["leader"] == false })
	captureRange(t, ob, 6, 20)
	// Another leader delivered up to 12 and replicated it.
	ob.HighWater(12)
	role.set(true)
	eventually(t, "13..20 delivered", func() bool { return len(rc.indexes()) == 13 })
	if got := rc.indexes(); !equal(got, append(seq(1, 5), seq(13, 20)...)) {
		t.Fatalf("received %v", got)
	}
}

// TestServiceHighWaterRetry: a failed proposal is retried at the next
// interval; an unchanged acknowledged index is not proposed again.
func TestServiceHighWaterRetry(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ob := openOutbox(t, t.TempDir())
	p := &proposer{ob: ob}
	p.fail.Store(true)
	s, err := New(testConfig(t, srv.URL), ob, func() bool { return true }, p)
	if err != nil {
		t.Fatal(err)
	}
	captureRange(t, ob, 1, 3)
	run(t, s)
	eventually(t, "two failed proposals", func() bool { return len(p.proposals()) >= 2 })
	p.fail.Store(false)
	eventually(t, "hwm 3", func() bool { return ob.HighWaterMark() == 3 })
	n := len(p.proposals())
	// A few intervals pass (the receiver is asked nothing new); the
	// number of proposals stays.
	captureRange(t, ob, 4, 4)
	eventually(t, "hwm 4", func() bool { return ob.HighWaterMark() == 4 })
	ps := p.proposals()
	if len(ps) != n+1 || ps[len(ps)-1] != 4 {
		t.Fatalf("proposals %v (had %d)", ps, n)
	}
	if v := s.Vars().(map[string]any); v["num_hwm_failed"].(int64) < 2 || v["num_hwm_proposed"].(int64) != 2 {
		t.Fatalf("vars %v", v)
	}
}

// TestServiceStdout: one JSON line per batch.
func TestServiceStdout(t *testing.T) {
	ob := openOutbox(t, t.TempDir())
	var mu sync.Mutex
	var buf bytes.Buffer
	cfg := testConfig(t, StdoutEndpoint)
	cfg.Stdout = writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(b) })
	cfg.MaxBatchSize = 100
	s, err := New(cfg, ob, func() bool { return true }, &proposer{ob: ob})
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Capture([]sm.ChangeGroup{insert(3, 0, 7, "fiona")}); err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	eventually(t, "a line", func() bool { mu.Lock(); defer mu.Unlock(); return strings.HasSuffix(buf.String(), "\n") })
	stop()
	want := `{"node_id":"node-1","payload":[{"index":3,"commit_timestamp":1757892884812606,"events":[{"op":"INSERT","table":"users","new_row_id":7,"after":{"id":7,"name":"fiona"}}]}]}` + "\n"
	if buf.String() != want {
		t.Fatalf("stdout %q, want %q", buf.String(), want)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// TestServiceWebhookTLS: an https webhook verified with tls.ca_cert_file.
func TestServiceWebhookTLS(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewTLSServer(rc)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ob := openOutbox(t, t.TempDir())
	cfg := testConfig(t, srv.URL)
	cfg.TLS.CACertFile = ca
	s, err := New(cfg, ob, func() bool { return true }, &proposer{ob: ob})
	if err != nil {
		t.Fatal(err)
	}
	captureRange(t, ob, 1, 3)
	run(t, s)
	eventually(t, "delivered over TLS", func() bool { return len(rc.indexes()) == 3 })
}

// TestServiceStatusAnyTime: Status and Vars answer before Run, and after
// Run and the outbox closed.
func TestServiceStatusAnyTime(t *testing.T) {
	ob := openOutbox(t, t.TempDir())
	cfg := testConfig(t, "https://user:secret@example.com/cdc")
	cfg.Dir = "/data/cdc"
	s, err := New(cfg, ob, func() bool { return false }, &proposer{ob: ob})
	if err != nil {
		t.Fatal(err)
	}
	st := s.Status().(map[string]any)
	if st["endpoint"] != "https://example.com/cdc" || st["dir"] != "/data/cdc" || st["node_id"] != "node-1" ||
		st["leader"] != false || st["backlog"] != int64(0) || st["fifo"].(map[string]any)["has_next"] != false {
		t.Fatalf("status %v", st)
	}
	if _, ok := st["service_id"]; ok {
		t.Fatal("service_id shown while empty")
	}
	_ = s.Vars()
	stop := run(t, s)
	stop()
	ob.Close()
	_ = s.Status()
	_ = s.Vars()
}

// TestServiceFinalHighWater: a leader stopping proposes what it delivered
// since the last interval.
func TestServiceFinalHighWater(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ob := openOutbox(t, t.TempDir())
	p := &proposer{ob: ob}
	cfg := testConfig(t, srv.URL)
	cfg.HighWatermarkInterval = time.Hour
	s, err := New(cfg, ob, func() bool { return true }, p)
	if err != nil {
		t.Fatal(err)
	}
	captureRange(t, ob, 1, 5)
	stop := run(t, s)
	eventually(t, "delivered", func() bool { return s.lastSent.Load() == 5 })
	if len(p.proposals()) != 0 {
		t.Fatalf("proposals before the interval: %v", p.proposals())
	}
	stop()
	if ps := p.proposals(); len(ps) != 1 || ps[0] != 5 {
		t.Fatalf("proposals at stop: %v", ps)
	}
}
