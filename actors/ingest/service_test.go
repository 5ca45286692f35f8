package ingest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/skiffdb/skiff/actors"
	"github.com/skiffdb/skiff/actors/replica"
	"github.com/skiffdb/skiff/sm"
	"github.com/skiffdb/skiff/sm/cmdpb"
	"github.com/skiffdb/skiff/test/natstest"
)

// waitFor bounds every wait on a condition in these tests.
const waitFor = 20 * time.Second

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// client connects to url and creates stream SQL capturing subjects.
func client(t *testing.T, url string, subjects ...string) (*nats.Conn, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	return clientOpts(t, url, nil, subjects...)
}

// clientOpts is client, over TLS when tc is set.
func clientOpts(t *testing.T, url string, tc *tls.Config, subjects ...string) (*nats.Conn, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	var opts []nats.Option
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	nc, js := natstest.Connect(t, url, opts...)
	return nc, js, natstest.CreateStream(t, js, jetstream.StreamConfig{Name: "SQL", Subjects: subjects})
}

// fakeData is the replica: it applies each request ID once, answering a
// repeat from its record, as the state machine does.
type fakeData struct {
	mu       sync.Mutex
	applied  map[string]*cmdpb.Response
	order    []string // SQL applied, in order
	execIDs  [][]byte // request ID of every Execute
	queries  int
	nextID   int64
	failNext int // Executes that apply, then fail as a timeout would
	down     bool
}

func newFakeData() *fakeData { return &fakeData{applied: map[string]*cmdpb.Response{}} }

func (f *fakeData) Execute(ctx context.Context, req *cmdpb.Request) (*cmdpb.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := actors.RequestID(ctx)
	if !ok {
		return nil, fmt.Errorf("no request ID")
	}
	f.execIDs = append(f.execIDs, id)
	if f.down {
		return nil, replica.ErrNoLeader
	}
	if resp, ok := f.applied[string(id)]; ok {
		return resp, nil
	}
	resp := &cmdpb.Response{RaftIndex: uint64(len(f.applied) + 1)}
	for _, st := range req.GetStatements() {
		if strings.Contains(st.GetSql(), "FAIL") {
			resp.Results = append(resp.Results, &cmdpb.StatementResult{Error: "near \"FAIL\": syntax error"})
			continue
		}
		f.nextID++
		f.order = append(f.order, st.GetSql())
		resp.Results = append(resp.Results, &cmdpb.StatementResult{LastInsertId: f.nextID, RowsAffected: 1})
	}
	f.applied[string(id)] = resp
	if f.failNext > 0 {
		f.failNext--
		return nil, fmt.Errorf("%w: after apply", replica.ErrTimeout)
	}
	return resp, nil
}

func (f *fakeData) Query(_ context.Context, req *cmdpb.Request, _ replica.ReadOptions) (*cmdpb.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.down {
		return nil, replica.ErrNoLeader
	}
	resp := &cmdpb.Response{}
	for _, st := range req.GetStatements() {
		if !strings.HasPrefix(strings.ToUpper(st.GetSql()), "SELECT") {
			resp.Results = append(resp.Results, &cmdpb.StatementResult{Error: sm.ErrTextWriteViaQuery})
			continue
		}
		resp.Results = append(resp.Results, &cmdpb.StatementResult{IsQuery: true, Columns: []string{"n"}, Types: []string{"integer"},
			Rows: []*cmdpb.Row{{Values: []*cmdpb.Value{{V: &cmdpb.Value_I{I: 42}}}}}})
	}
	return resp, nil
}

func (f *fakeData) snapshot() (applied []string, ids [][]byte, queries int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.order...), append([][]byte(nil), f.execIDs...), f.queries
}

// run starts svc and stops it when the test ends, checking Run returns.
func run(t *testing.T, svc *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitFor):
			t.Error("Run did not return")
		}
	})
}

func testConfig(url string) Config {
	return Config{URL: url, Subject: "sql.in", AckWait: time.Second, NakDelay: 10 * time.Millisecond, MaxNakDelay: 50 * time.Millisecond,
		FetchWait: 100 * time.Millisecond, ReconnectWait: 50 * time.Millisecond, MaxInFlight: 8}
}

func newService(t *testing.T, cfg Config, data Data, ready func() bool) *Service {
	t.Helper()
	if ready == nil {
		ready = func() bool { return true }
	}
	svc, err := New(cfg, data, ready, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func publish(t *testing.T, js jetstream.JetStream, body string, hdr map[string]string) uint64 {
	t.Helper()
	m := nats.NewMsg("sql.in")
	m.Data = []byte(body)
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func subscribe(t *testing.T, nc *nats.Conn, subject string) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

func next(t *testing.T, sub *nats.Subscription) *nats.Msg {
	t.Helper()
	m, err := sub.NextMsg(waitFor)
	if err != nil {
		t.Fatalf("no message on %s: %v", sub.Subject, err)
	}
	return m
}

// settled waits until the consumer has nothing pending nor unacked.
//
// The ack floor must also reach the stream's last message: right after a
// publish the consumer's info was seen to show nothing pending with the
// message not yet applied (TestNATSDownAtStart failed so once, in CI).
func settled(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	eventually(t, "every message acked", func() bool {
		ctx := context.Background()
		st, err := js.Stream(ctx, "SQL")
		if err != nil {
			return false
		}
		si, err := st.Info(ctx)
		if err != nil {
			return false
		}
		c, err := js.Consumer(ctx, "SQL", "skiff")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.AckFloor.Stream >= si.State.LastSeq &&
			info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	})
}

func vars(svc *Service) map[string]int64 { return svc.Vars().(map[string]int64) }

// A write is applied once under the message's request ID, replied with
// exactly the gateway's JSON, and acked.
func TestAppliedOnceRepliedAcked(t *testing.T) {
	url, _ := natstest.Start(t)
	nc, js, st := client(t, url, "sql.in")
	data := newFakeData()
	svc := newService(t, testConfig(url), data, nil)
	run(t, svc)
	replies := subscribe(t, nc, "reply.1")
	seq := publish(t, js, `[["INSERT INTO t(a) VALUES(?)", 1], "INSERT INTO t(a) VALUES(2)"]`,
		map[string]string{"Reply-To": "reply.1", "Nats-Msg-Id": "order-1"})
	r := next(t, replies)
	if got, want := string(r.Data), `{"results":[{"last_insert_id":1,"rows_affected":1},{"last_insert_id":2,"rows_affected":1}]}`; got != want {
		t.Fatalf("reply = %s\nwant    %s", got, want)
	}
	settled(t, js)
	applied, ids, queries := data.snapshot()
	if len(applied) != 2 || len(ids) != 1 || queries != 1 {
		t.Fatalf("applied %v, %d executes, %d queries", applied, len(ids), queries)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := requestID("SQL", info.Created, "order-1", seq); string(ids[0]) != string(want) {
		t.Fatalf("request ID %x, want %x", ids[0], want)
	}
	v := vars(svc)
	if v["num_received"] != 1 || v["num_applied"] != 1 || v["num_replies"] != 1 || v["num_acks"] != 1 || v["num_naks"] != 0 {
		t.Fatalf("vars = %v", v)
	}
	status := svc.Status().(map[string]any)
	if status["connected"] != true || status["stream"] != "SQL" || status["durable"] != "skiff" || status["bound"] != true {
		t.Fatalf("status = %v", status)
	}
}

// A write that committed but failed as a timeout does (not known to be
// applied) is nak'ed; its redelivery carries the same request ID and is
// answered from the dedup record: applied once, replied once.
func TestRedeliveryAfterCommitSameRequestID(t *testing.T) {
	url, _ := natstest.Start(t)
	nc, js, _ := client(t, url, "sql.in")
	data := newFakeData()
	data.failNext = 1
	svc := newService(t, testConfig(url), data, nil)
	run(t, svc)
	replies := subscribe(t, nc, "reply.>")
	publish(t, js, `["INSERT INTO t(a) VALUES(1)"]`, map[string]string{"Reply-To": "reply.x"})
	r := next(t, replies)
	if string(r.Data) != `{"results":[{"last_insert_id":1,"rows_affected":1}]}` {
		t.Fatalf("reply = %s", r.Data)
	}
	settled(t, js)
	applied, ids, _ := data.snapshot()
	if len(applied) != 1 || len(ids) != 2 || string(ids[0]) != string(ids[1]) {
		t.Fatalf("applied %v, request IDs %x", applied, ids)
	}
	if m, err := replies.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("second reply %s", m.Data)
	}
	if v := vars(svc); v["num_naks"] != 1 || v["num_redelivered"] != 1 || v["num_applied"] != 1 {
		t.Fatalf("vars = %v", v)
	}
}

// A node that crashes between commit and ack (nothing replied, nothing
// acked): after the ack wait the message is delivered again, with the same
// request ID, and its reply is sent then.
func TestCrashBetweenCommitAndAck(t *testing.T) {
	url, _ := natstest.Start(t)
	nc, js, _ := client(t, url, "sql.in")
	data := newFakeData()
	svc := newService(t, testConfig(url), data, nil)
	var crashed atomic.Bool
	svc.afterExecute = func(jetstream.Msg) bool { return !crashed.CompareAndSwap(false, true) }
	run(t, svc)
	replies := subscribe(t, nc, "reply.x")
	publish(t, js, `["INSERT INTO t(a) VALUES(1)"]`, map[string]string{"Reply-To": "reply.x", "Nats-Msg-Id": "m1"})
	r := next(t, replies)
	if string(r.Data) != `{"results":[{"last_insert_id":1,"rows_affected":1}]}` {
		t.Fatalf("reply = %s", r.Data)
	}
	settled(t, js)
	applied, ids, _ := data.snapshot()
	if !crashed.Load() || len(applied) != 1 || len(ids) != 2 || string(ids[0]) != string(ids[1]) {
		t.Fatalf("crashed %v, applied %v, request IDs %x", crashed.Load(), applied, ids)
	}
}

// A SQL error is a result: replied and acked, never redelivered.
func TestSQLErrorRepliedAndAcked(t *testing.T) {
	url, _ := natstest.Start(t)
	nc, js, _ := client(t, url, "sql.in")
	data := newFakeData()
	svc := newService(t, testConfig(url), data, nil)
	run(t, svc)
	replies := subscribe(t, nc, "reply.x")
	publish(t, js, `["INSERT FAIL"]`, map[string]string{"Reply-To": "reply.x"})
	if r := next(t, replies); string(r.Data) != `{"results":[{"error":"near \"FAIL\": syntax error"}]}` {
		t.Fatalf("reply = %s", r.Data)
	}
	publish(t, js, `["PRAGMA journal_mode=DELETE"]`, map[string]string{"Reply-To": "reply.x"})
	if r := next(t, replies); string(r.Data) != `{"results":[],"error":"disallowed pragma"}` {
		t.Fatalf("reply = %s", r.Data)
	}
	settled(t, js)
	if v := vars(svc); v["num_sql_errors"] != 2 || v["num_acks"] != 2 || v["num_naks"] != 0 {
		t.Fatalf("vars = %v", v)
	}
}

// Reads alone are queries, answered with rows; headers carry /db/request's
// parameters; level strong sends even a read through the log.
func TestReadsAndHeaders(t *testing.T) {
	url, _ := natstest.Start(t)
	nc, js, _ := client(t, url, "sql.in")
	data := newFakeData()
	svc := newService(t, testConfig(url), data, nil)
	run(t, svc)
	replies := subscribe(t, nc, "reply.x")
	publish(t, js, `["SELECT 42"]`, map[string]string{"Reply-To": "reply.x"})
	if r := next(t, replies); string(r.Data) != `{"results":[{"columns":["n"],"types":["integer"],"values":[[42]]}]}` {
		t.Fatalf("reply = %s", r.Data)
	}
	publish(t, js, `["SELECT 42"]`, map[string]string{"Reply-To": "reply.x", "ASSOCIATIVE": "", "raft_index": "true"})
	if r := next(t, replies); string(r.Data) != `{"results":[{"types":{"n":"integer"},"rows":[{"n":42}]}]}` {
		t.Fatalf("reply = %s", r.Data)
	}
	publish(t, js, `["INSERT INTO t VALUES(1)"]`, map[string]string{"Reply-To": "reply.x", "level": "strong", "raft_index": ""})
	if r := next(t, replies); string(r.Data) != `{"results":[{"last_insert_id":1,"rows_affected":1}],"raft_index":1}` {
		t.Fatalf("reply = %s", r.Data)
	}
	publish(t, js, `["INSERT INTO t VALUES(1)"]`, map[string]string{"Reply-To": "reply.x", "timeout": "soon"})
	settled(t, js)
	_, ids, queries := data.snapshot()
	if len(ids) != 1 || queries != 2 {
		t.Fatalf("%d executes, %d queries", len(ids), queries)
	}
}

// A body that does not parse is nak'ed until its delivery count reaches
// max_deliveries, then replied with the error, dead-lettered (with headers
// saying why and from where) and terminated; the messages after it are
// processed meanwhile.
func TestPoisonDeadLettered(t *testing.T) {
	url, _ := natstest.Start(t)
	nc, js, _ := client(t, url, "sql.in")
	data := newFakeData()
	cfg := testConfig(url)
	cfg.MaxDeliveries, cfg.DeadLetterSubject = 3, "sql.dead"
	svc := newService(t, cfg, data, nil)
	dead := subscribe(t, nc, "sql.dead")
	replies := subscribe(t, nc, "reply.poison")
	run(t, svc)
	seq := publish(t, js, `["INSERT INTO t VALUES(1)"`, map[string]string{"Reply-To": "reply.poison", "Nats-Msg-Id": "bad-1", "App": "x"})
	for i := range 5 {
		publish(t, js, fmt.Sprintf(`["INSERT INTO t VALUES(%d)"]`, i), nil)
	}
	d := next(t, dead)
	if string(d.Data) != `["INSERT INTO t VALUES(1)"` || d.Header.Get(HeaderDeadReason) != "invalid JSON body" ||
		d.Header.Get(HeaderOrigSubject) != "sql.in" || d.Header.Get(HeaderOrigStream) != "SQL" ||
		d.Header.Get(HeaderOrigSequence) != fmt.Sprint(seq) || d.Header.Get(HeaderDeliveries) != "3" || d.Header.Get("App") != "x" {
		t.Fatalf("dead letter %q, headers %v", d.Data, d.Header)
	}
	r := next(t, replies)
	if string(r.Data) != `{"results":[],"error":"invalid JSON body"}` || r.Header.Get(HeaderStatus) != "400" {
		t.Fatalf("reply %s %v", r.Data, r.Header)
	}
	settled(t, js)
	applied, _, _ := data.snapshot()
	if len(applied) != 5 {
		t.Fatalf("applied %v", applied)
	}
	if v := vars(svc); v["num_parse_errors"] != 3 || v["num_dead_lettered"] != 1 || v["num_naks"] != 2 || v["num_applied"] != 5 {
		t.Fatalf("vars = %v", v)
	}
}

// A write failing for want of a leader is delivered again until it
// applies, past max_deliveries: it is never dead-lettered.
func TestUnavailableRetriedUntilApplied(t *testing.T) {
	url, _ := natstest.Start(t)
	_, js, _ := client(t, url, "sql.in")
	data := newFakeData()
	data.down = true
	cfg := testConfig(url)
	cfg.MaxDeliveries, cfg.DeadLetterSubject = 2, "sql.dead"
	svc := newService(t, cfg, data, nil)
	run(t, svc)
	publish(t, js, `["INSERT INTO t VALUES(1)"]`, nil)
	eventually(t, "several failed deliveries", func() bool { return vars(svc)["num_naks"] >= 4 })
	data.mu.Lock()
	data.down = false
	data.mu.Unlock()
	settled(t, js)
	applied, _, _ := data.snapshot()
	if v := vars(svc); len(applied) != 1 || v["num_dead_lettered"] != 0 {
		t.Fatalf("applied %v, vars %v", applied, v)
	}
}

// While the node does not serve data nothing is fetched; once it does,
// the backlog is applied.
func TestNotReadyFetchesNothing(t *testing.T) {
	url, _ := natstest.Start(t)
	_, js, _ := client(t, url, "sql.in")
	for i := range 3 {
		publish(t, js, fmt.Sprintf(`["INSERT INTO t VALUES(%d)"]`, i), nil)
	}
	data := newFakeData()
	var ready atomic.Bool
	svc := newService(t, testConfig(url), data, ready.Load)
	run(t, svc)
	eventually(t, "the consumer bound", func() bool { return svc.Status().(map[string]any)["bound"] == true })
	idle := svc.idle.Load()
	eventually(t, "a few idle turns", func() bool { return svc.idle.Load() >= idle+3 })
	c, err := js.Consumer(context.Background(), "SQL", "skiff")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 0 || info.NumPending != 3 || vars(svc)["num_received"] != 0 || svc.Status().(map[string]any)["fetching"] != false {
		t.Fatalf("fetched while not ready: %+v, vars %v", info, vars(svc))
	}
	ready.Store(true)
	settled(t, js)
	if applied, _, _ := data.snapshot(); len(applied) != 3 {
		t.Fatalf("applied %v", applied)
	}
}

// NATS down when the service starts: it waits (status says why, Run does
// not fail), connects when the server comes up, and proceeds.
func TestNATSDownAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	data := newFakeData()
	svc := newService(t, testConfig(fmt.Sprintf("nats://127.0.0.1:%d", port)), data, nil)
	run(t, svc)
	eventually(t, "a connection error in /status", func() bool {
		st := svc.Status().(map[string]any)
		// idle: the loop is waiting for the connection (on the client's
		// event, so once: it does not poll).
		return st["connected"] == false && st["last_error"] != "" && svc.idle.Load() >= 1
	})
	// While NATS stays down the loop does not turn: it waits for the
	// client's reconnection event (the old loop turned every 100 ms).
	// The wait is the condition under test, not a synchronisation.
	turns := svc.idle.Load()
	time.Sleep(500 * time.Millisecond)
	if got := svc.idle.Load(); got != turns {
		t.Fatalf("the loop turned %d times in 500 ms with NATS down: it polls", got-turns)
	}
	url, _ := natstest.Start(t, natstest.Port(port))
	_, js, _ := client(t, url, "sql.in")
	publish(t, js, `["INSERT INTO t VALUES(1)"]`, nil)
	settled(t, js)
	if applied, _, _ := data.snapshot(); len(applied) != 1 {
		t.Fatalf("applied %v", applied)
	}
	if st := svc.Status().(map[string]any); st["connected"] != true {
		t.Fatalf("status %v", st)
	}
}

// A NATS server restarting under the service (same store): it reconnects
// and the messages published meanwhile are applied.
func TestNATSRestart(t *testing.T) {
	url, ns := natstest.Start(t)
	_, js, _ := client(t, url, "sql.in")
	data := newFakeData()
	svc := newService(t, testConfig(url), data, nil)
	run(t, svc)
	publish(t, js, `["INSERT INTO t VALUES(1)"]`, nil)
	settled(t, js)
	ns.Shutdown()
	eventually(t, "disconnected in /status", func() bool { return svc.Status().(map[string]any)["connected"] == false })
	ns.Restart()
	_, js2 := natstest.Connect(t, url)
	publish(t, js2, `["INSERT INTO t VALUES(2)"]`, nil)
	// A restarted server's consumer info can show nothing pending before
	// it counts the new message: wait for the apply, then for the ack.
	eventually(t, "second message applied", func() bool { applied, _, _ := data.snapshot(); return len(applied) >= 2 })
	settled(t, js2)
	if applied, _, _ := data.snapshot(); len(applied) != 2 {
		t.Fatalf("applied %v", applied)
	}
}

// Many messages, processed concurrently: each applied exactly once.
func TestManyMessagesOnceEach(t *testing.T) {
	url, _ := natstest.Start(t)
	_, js, _ := client(t, url, "sql.in")
	data := newFakeData()
	data.failNext = 20 // some apply but answer as timeouts: redelivered
	svc := newService(t, testConfig(url), data, nil)
	run(t, svc)
	const n = 300
	for i := range n {
		publish(t, js, fmt.Sprintf(`["INSERT INTO t VALUES(%d)"]`, i), nil)
	}
	settled(t, js)
	applied, _, _ := data.snapshot()
	seen := map[string]bool{}
	for _, a := range applied {
		if seen[a] {
			t.Fatalf("%q applied twice", a)
		}
		seen[a] = true
	}
	if len(seen) != n {
		t.Fatalf("applied %d of %d", len(seen), n)
	}
}

// TestWaitReconnected: the loop's wait for NATS ends on a status event or
// the context, and a closed channel (which only RemoveStatusListener does)
// is reported rather than read in a spin.
func TestWaitReconnected(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name     string
		ctx      context.Context
		ch       func() chan nats.Status
		wantOpen bool
	}{
		{"an event", context.Background(), func() chan nats.Status {
			ch := make(chan nats.Status, 1)
			ch <- nats.CONNECTED
			return ch
		}, true},
		{"context ended", cancelled, func() chan nats.Status { return make(chan nats.Status) }, true},
		{"closed", context.Background(), func() chan nats.Status {
			ch := make(chan nats.Status)
			close(ch)
			return ch
		}, false},
		{"no channel: a poll", cancelled, func() chan nats.Status { return nil }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch := tc.ch()
			if got := waitReconnected(tc.ctx, ch); got != tc.wantOpen {
				t.Fatalf("waitReconnected = %v, want %v", got, tc.wantOpen)
			}
			drainStatus(ch) // returns, closed or not
		})
	}
	// drainStatus empties what is buffered.
	ch := make(chan nats.Status, 3)
	ch <- nats.CONNECTED
	ch <- nats.CONNECTED
	drainStatus(ch)
	if len(ch) != 0 {
		t.Fatalf("%d events left", len(ch))
	}
}
