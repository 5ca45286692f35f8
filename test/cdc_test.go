package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiffdb/skiff/test/natstest"
	"github.com/skiffdb/skiff/test/testport"
	"github.com/skiffdb/skiff/test/webhook"
)

// Change data capture end to end (issue 15; API.md §1.14): real skiffd
// processes, a real webhook receiver in this process (test/webhook), a
// real NATS server with JetStream (nats_test.go).
const (
	// cdcOps is the size of the webhook exactly-once test's workload (the
	// issue: 2,000 inserts, updates and deletes); cdcNATSOps the NATS one's.
	cdcOps     = 2000
	cdcNATSOps = 500
	// cdcWorkers write concurrently, each on its own rows.
	cdcWorkers = 8
	// cdcOutage is how long the webhook answers 500 in the middle of the
	// workload (a fault injected, not a bound asserted).
	cdcOutage = 3 * time.Second
	// cdcDeliveryTimeout bounds the wait for the sink to hold the last
	// index after the workload: the leader may have to resend a backlog
	// after a kill, with -race on two cores.
	cdcDeliveryTimeout = 90 * time.Second
	// cdcWriteTimeout bounds one write of the workload; a write in flight
	// at a kill may hang until the new leader answers it.
	cdcWriteTimeout = 10 * time.Second
	// cdcServiceID is service_id in the tests' configs: in the envelope
	// and the NATS message IDs (<service_id>-<index>).
	cdcServiceID = "e2e"
)

// createItems is the table every CDC test writes: the row ID is id, and
// each type of value (TEXT, INTEGER, REAL, NULL) appears in the images.
const createItems = `["CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT, n INTEGER, f REAL)"]`

// cdcConfigJSON is a -cdc-config file's content (API.md §1.14's keys):
// small batch delay and high-water interval so that deliveries and
// pruning show within the tests; retries effectively forever with a short
// constant backoff, so that the outage never drops events (rqlite drops a
// batch after transmit_max_retries). extra adds or overrides keys.
func cdcConfigJSON(endpoint string, extra map[string]any) map[string]any {
	cfg := map[string]any{
		"endpoint":                endpoint,
		"service_id":              cdcServiceID,
		"max_batch_size":          50,
		"max_batch_delay":         "20ms",
		"high_watermark_interval": "200ms",
		"transmit_timeout":        "5s",
		"transmit_max_retries":    1000000,
		"transmit_min_backoff":    "50ms",
		"transmit_max_backoff":    "200ms",
	}
	for k, v := range extra {
		if v == nil {
			delete(cfg, k)
			continue
		}
		cfg[k] = v
	}
	return cfg
}

// writeJSONFile writes v as JSON to a new file in a test directory.
func writeJSONFile(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, name, b)
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// withFlags is a newClusterWith setup adding flags to every member.
// (newClusterWith applies setup to n1 twice; a repeated flag is harmless,
// the last value wins.)
func withFlags(flags ...string) func(*member) {
	return func(m *member) { m.args = append(m.args, flags...) }
}

// targets are the base URLs the workload's writers may use, by node ID. The
// test goroutine changes them (a killed node leaves, a restarted one comes
// back, maybe on another HTTP port); writers only read them, under mu, so
// they never touch a member's fields.
type targets struct {
	mu   sync.Mutex
	urls map[string]string
}

func newTargets(ms []*member) *targets {
	ts := &targets{urls: map[string]string{}}
	for _, m := range ms {
		ts.set(m)
	}
	return ts
}

func (ts *targets) set(m *member) {
	ts.mu.Lock()
	ts.urls[m.id] = m.baseURL()
	ts.mu.Unlock()
}

func (ts *targets) remove(m *member) {
	ts.mu.Lock()
	delete(ts.urls, m.id)
	ts.mu.Unlock()
}

func (ts *targets) pick(rng *rand.Rand) string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ids := make([]string, 0, len(ts.urls))
	for id := range ts.urls {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if len(ids) == 0 {
		return ""
	}
	return ts.urls[ids[rng.IntN(len(ids))]]
}

// execAnswer is /db/execute?raft_index's answer (API.md §1.4).
type execAnswer struct {
	Results []struct {
		LastInsertID *int64 `json:"last_insert_id"`
		RowsAffected int64  `json:"rows_affected"`
		Error        string `json:"error"`
	} `json:"results"`
	Error     string `json:"error"`
	RaftIndex uint64 `json:"raft_index"`
}

// execIndexed POSTs one parameterized statement to base's /db/execute with
// ?raft_index (API.md §1.2) and reports whether it was acknowledged, with
// the answer. A transport error, a non-200 or a request-level error is
// not an acknowledgement: the write may or may not have been applied.
func execIndexed(ctx context.Context, c *http.Client, base string, stmt []any) (execAnswer, bool, error) {
	body, err := json.Marshal([][]any{stmt})
	if err != nil {
		return execAnswer{}, false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/db/execute?raft_index", bytes.NewReader(body))
	if err != nil {
		return execAnswer{}, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return execAnswer{}, false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return execAnswer{}, false, err
	}
	if resp.StatusCode != http.StatusOK {
		return execAnswer{}, false, fmt.Errorf("%d %.200s", resp.StatusCode, b)
	}
	var a execAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return execAnswer{}, false, fmt.Errorf("not JSON: %v: %.200s", err, b)
	}
	if a.Error != "" || len(a.Results) != 1 {
		return a, false, fmt.Errorf("request error: %.200s", b)
	}
	if a.Results[0].Error == "" && a.RaftIndex == 0 {
		return a, true, fmt.Errorf("acknowledged write without raft_index (API.md §1.2): %.200s", b)
	}
	return a, true, nil
}

// cdcLoad is what the workload's writers learnt, for the checks after it.
type cdcLoad struct {
	mu sync.Mutex
	// changedAt sums, per Raft index, the rows changed by acknowledged
	// writes at that index (a coalesced entry holds several writes; CDC
	// sends one payload entry per index with all their events).
	changedAt map[uint64]int64
	// acked, noChange, unacked, stmtErrors count writes by outcome.
	acked, noChange, unacked, stmtErrors int
	// problems are breaches of the HTTP contract in acknowledged answers.
	problems []string
	// lastErr is one unacknowledged write's error, for the log.
	lastErr string
}

func (l *cdcLoad) record(a execAnswer, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case !ok:
		l.unacked++
		if err != nil {
			l.lastErr = strings.TrimSpace(err.Error())
		}
	case err != nil:
		l.problems = append(l.problems, err.Error())
	case a.Results[0].Error != "":
		l.stmtErrors++
		if l.stmtErrors <= 5 {
			l.problems = append(l.problems, "statement error in the workload: "+a.Results[0].Error)
		}
	case a.Results[0].RowsAffected > 0:
		l.acked++
		l.changedAt[a.RaftIndex] += a.Results[0].RowsAffected
	default:
		l.noChange++
	}
}

// gate holds the writers at an op number until the test goroutine has
// injected its fault there.
type gate struct {
	at      int64
	reached chan struct{} // closed by the first writer to get there
	once    sync.Once
	open    chan struct{} // closed by the test goroutine: writers go on
}

func newGate(at int64) *gate {
	return &gate{at: at, reached: make(chan struct{}), open: make(chan struct{})}
}

// cdcWorkload runs ops inserts, updates and deletes of items through
// random targets, cdcWorkers at a time, each writer on its own ids. Its
// gates hold writers at their op numbers until opened. Nothing in it may
// fail the test (it runs outside the test goroutine); everything is
// recorded in the returned cdcLoad, complete once done is closed.
func cdcWorkload(ctx context.Context, ts *targets, ops int, gates []*gate) (*cdcLoad, <-chan struct{}) {
	l := &cdcLoad{changedAt: map[uint64]int64{}}
	done := make(chan struct{})
	var next atomic.Int64
	var wg sync.WaitGroup
	c := newClient(cdcWriteTimeout, false)
	for w := range cdcWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 15))
			nextID := int64(w + 1)
			var live []int64
			for {
				i := next.Add(1) - 1
				if i >= int64(ops) {
					return
				}
				for _, g := range gates {
					if i >= g.at {
						g.once.Do(func() { close(g.reached) })
						select {
						case <-g.open:
						case <-ctx.Done():
							return
						}
					}
				}
				var stmt []any
				p := rng.Float64()
				switch {
				case len(live) == 0 || p < 0.5:
					id := nextID
					nextID += cdcWorkers
					live = append(live, id)
					stmt = []any{"INSERT INTO items(id, v, n, f) VALUES(?, ?, ?, ?)", id, cdcText(rng), rng.IntN(1000), float64(rng.IntN(100)) + 0.5}
				case p < 0.8:
					id := live[rng.IntN(len(live))]
					stmt = []any{"UPDATE items SET v = ?, n = n + 1, f = f + 0.25 WHERE id = ?", cdcText(rng), id}
				default:
					k := rng.IntN(len(live))
					id := live[k]
					live = append(live[:k], live[k+1:]...)
					stmt = []any{"DELETE FROM items WHERE id = ?", id}
				}
				base := ts.pick(rng)
				if base == "" {
					l.record(execAnswer{}, false, errors.New("no target"))
					continue
				}
				a, ok, err := execIndexed(ctx, c, base, stmt)
				l.record(a, ok, err)
			}
		}()
	}
	go func() {
		wg.Wait()
		c.CloseIdleConnections()
		close(done)
	}()
	return l, done
}

// cdcText is a TEXT value or NULL, some with characters JSON escapes.
func cdcText(rng *rand.Rand) any {
	switch rng.IntN(8) {
	case 0:
		return nil
	case 1:
		return "a<b&c>\"q\" é"
	}
	return fmt.Sprintf("v%d", rng.IntN(1_000_000))
}

// writeMarker writes one last row through the cluster, retrying until a
// write is acknowledged, and returns its Raft index: once the sink holds
// it, it holds every earlier index (in-order delivery).
func writeMarker(t *testing.T, ts *targets, l *cdcLoad, id int64) uint64 {
	t.Helper()
	c := newClient(cdcWriteTimeout, false)
	defer c.CloseIdleConnections()
	rng := rand.New(rand.NewPCG(uint64(id), 1))
	deadline := time.Now().Add(clusterTimeout)
	for {
		a, ok, err := execIndexed(context.Background(), c, ts.pick(rng),
			[]any{"INSERT INTO items(id, v, n, f) VALUES(?, 'marker', 0, 0.5)", id})
		l.record(a, ok, err)
		if ok && err == nil && a.Results[0].Error == "" {
			return a.RaftIndex
		}
		if time.Now().After(deadline) {
			t.Fatalf("the marker write was not acknowledged within %s: %v %+v", clusterTimeout, err, a)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tableModel is the test's copy of items, built by replaying CDC events:
// row ID -> column -> normalized value (webhook.Normalize).
type tableModel map[int64]map[string]any

// apply replays one group's events, checking each before image against
// the model and each image's id against the row IDs (rowid = id here).
func (m tableModel) apply(g webhook.Group) []string {
	var bad []string
	for i, e := range g.Events {
		where := fmt.Sprintf("index %d event %d (%s row %d->%d)", g.Index, i, e.Op, e.OldRowID, e.NewRowID)
		if e.Table != "items" {
			bad = append(bad, fmt.Sprintf("%s: table %q, want items", where, e.Table))
			continue
		}
		before, _ := webhook.Normalize(e.Before).(map[string]any)
		after, _ := webhook.Normalize(e.After).(map[string]any)
		if e.Op == "UPDATE" || e.Op == "DELETE" {
			cur, ok := m[e.OldRowID]
			switch {
			case !ok:
				bad = append(bad, fmt.Sprintf("%s: the model has no row %d (an earlier change is missing or was applied twice)", where, e.OldRowID))
			case !reflect.DeepEqual(cur, before):
				bad = append(bad, fmt.Sprintf("%s: before image %v, the model (earlier events replayed) has %v", where, before, cur))
			}
			delete(m, e.OldRowID)
		}
		if e.Op == "INSERT" || e.Op == "UPDATE" {
			if _, ok := m[e.NewRowID]; ok {
				bad = append(bad, fmt.Sprintf("%s: row %d exists in the model already", where, e.NewRowID))
			}
			if after["id"] != e.NewRowID {
				bad = append(bad, fmt.Sprintf("%s: after image id %v, want new_row_id %d", where, after["id"], e.NewRowID))
			}
			m[e.NewRowID] = after
		}
	}
	return bad
}

// selectItems is the whole table in id order, read on m at level.
const selectItems = "SELECT * FROM items ORDER BY id"

// readItems reads items on m and returns it as a model, with the body.
func readItems(m *member, level string) (tableModel, string, error) {
	r, err := m.do(m.client, http.MethodGet, "/db/query?level="+level+"&q="+url.QueryEscape(selectItems), "", nil)
	if err != nil {
		return nil, "", err
	}
	if r.status != http.StatusOK {
		return nil, "", fmt.Errorf("%s", r)
	}
	var doc struct {
		Results []struct {
			Columns []string `json:"columns"`
			Values  [][]any  `json:"values"`
			Error   string   `json:"error"`
		} `json:"results"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil || len(doc.Results) != 1 || doc.Results[0].Error != "" {
		return nil, "", fmt.Errorf("%s: %v", r, err)
	}
	out := tableModel{}
	for _, row := range doc.Results[0].Values {
		rec := map[string]any{}
		for i, col := range doc.Results[0].Columns {
			rec[col] = webhook.Normalize(row[i])
		}
		id, _ := rec["id"].(int64)
		out[id] = rec
	}
	return out, string(r.body), nil
}

// diffModels describes how got differs from want, briefly.
func diffModels(want, got tableModel) string {
	var out []string
	ids := map[int64]bool{}
	for id := range want {
		ids[id] = true
	}
	for id := range got {
		ids[id] = true
	}
	sorted := make([]int64, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for _, id := range sorted {
		if w, g := want[id], got[id]; !reflect.DeepEqual(w, g) {
			out = append(out, fmt.Sprintf("row %d: events %v, table %v", id, w, g))
			if len(out) == 10 {
				out = append(out, "...")
				break
			}
		}
	}
	return fmt.Sprintf("%d rows from the events, %d in the table; %s", len(want), len(got), strings.Join(out, "; "))
}

// checkAgainstTables requires every member's items to equal the model
// rebuilt from the events: the leader read at level strong, the others
// polled at level none until they hold what the leader holds.
func checkAgainstTables(t *testing.T, c *cluster, leader *member, model tableModel) {
	t.Helper()
	want, wantBody, err := readItems(leader, "strong")
	if err != nil {
		t.Fatalf("SELECT on the leader %s: %v", leader.id, err)
	}
	if !reflect.DeepEqual(model, want) {
		t.Errorf("the events replayed do not give the leader's table (%s): %s", leader.id, diffModels(model, want))
	}
	for _, m := range others(c.ms, leader) {
		deadline := time.Now().Add(catchUpTimeout)
		for {
			_, body, err := readItems(m, "none")
			if err == nil && body == wantBody {
				break
			}
			if time.Now().After(deadline) {
				got, _, _ := readItems(m, "none")
				t.Errorf("%s's table differs from the leader's after %s: %v; %s", m.id, catchUpTimeout, err, diffModels(want, got))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// checkDelivery checks the deduplicated stream against the workload: the
// events replayed in index order are consistent (before images match), and
// every acknowledged write that changed rows is there under its Raft index
// (no gap): an index carries at least as many events as the rows its
// acknowledged writes changed; events beyond that can only come from
// unacknowledged writes (each of which changed at most one row).
func checkDelivery(t *testing.T, delivered []webhook.Group, l *cdcLoad) tableModel {
	t.Helper()
	model := tableModel{}
	var bad []string
	eventsAt := map[uint64]int64{}
	var prev uint64
	for _, g := range delivered {
		if g.Index < prev {
			bad = append(bad, fmt.Sprintf("index %d delivered after %d", g.Index, prev))
		}
		prev = g.Index
		eventsAt[g.Index] += int64(len(g.Events))
		bad = append(bad, model.apply(g)...)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	missing := 0
	acked := make([]uint64, 0, len(l.changedAt))
	for idx := range l.changedAt {
		acked = append(acked, idx)
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i] < acked[j] })
	for _, idx := range acked {
		if n := l.changedAt[idx]; eventsAt[idx] < n {
			if missing++; missing <= 10 {
				bad = append(bad, fmt.Sprintf("raft index %d: acknowledged writes changed %d row(s) there, %d event(s) delivered (a gap)", idx, n, eventsAt[idx]))
			}
		}
	}
	var unknown int64
	for idx, n := range eventsAt {
		if extra := n - l.changedAt[idx]; extra > 0 {
			unknown += extra
		}
	}
	if unknown > int64(l.unacked) {
		bad = append(bad, fmt.Sprintf("%d events delivered beyond the acknowledged writes' changes, but only %d writes were unacknowledged", unknown, l.unacked))
	}
	t.Logf("workload: %d acknowledged writes changed rows (%d Raft indexes), %d changed none, %d unacknowledged (last error: %s), %d statement errors; delivered %d index entries, %d events from unacknowledged writes",
		l.acked, len(l.changedAt), l.noChange, l.unacked, l.lastErr, l.stmtErrors, len(delivered), unknown)
	for _, p := range l.problems {
		t.Errorf("workload: %s", p)
	}
	if missing > 10 {
		bad = append(bad, fmt.Sprintf("... %d acknowledged indexes missing in all", missing))
	}
	if len(bad) > 30 {
		bad = append(bad[:30], fmt.Sprintf("... %d problems in all", len(bad)))
	}
	for _, b := range bad {
		t.Error(b)
	}
	return model
}

// killLeader SIGKILLs the current leader, waits for the others to elect a
// new one, restarts the killed node and waits until it is ready again; it
// returns the killed node. The writers' targets leave out the killed node
// while it is down.
func killLeader(t *testing.T, c *cluster, ts *targets, onKilled func()) *member {
	t.Helper()
	old := c.waitElected(c.ms)
	ts.remove(old)
	old.sigkill()
	t.Logf("SIGKILLed the leader %s", old.id)
	if onKilled != nil {
		onKilled()
	}
	next := c.waitElected(others(c.ms, old))
	t.Logf("%s elected", next.id)
	old.start()
	old.waitReady(clusterTimeout)
	ts.set(old)
	t.Logf("%s restarted and ready", old.id)
	return old
}

// waitGate waits until a writer reached g, or the workload ended early.
func waitGate(t *testing.T, g *gate, done <-chan struct{}) {
	t.Helper()
	select {
	case <-g.reached:
	case <-done:
		t.Fatalf("the workload ended before op %d", g.at)
	case <-time.After(2 * clusterTimeout):
		t.Fatalf("no writer reached op %d within %s", g.at, 2*clusterTimeout)
	}
}

// waitDone waits for the workload's writers to finish.
func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(3 * clusterTimeout):
		t.Fatalf("the workload did not finish within %s", 3*clusterTimeout)
	}
}

// checkEnvelopes checks what every accepted POST said about its sender:
// node_id names a member (the contract: the node ID), service_id is the
// configured one; and that duplicates came only around a leadership change
// or a restart (issue 15, "Delivery semantics"): a node may re-send what
// another node delivered (a new leader resumes from the replicated
// high-water mark), or what it delivered itself before another node sent
// (a leadership change) or before it was killed (kills: the times each node
// was SIGKILLed), never what it delivered itself in its current run of
// POSTs.
func checkEnvelopes(t *testing.T, c *cluster, posts []webhook.Post, kills map[string][]time.Time) {
	t.Helper()
	ids := map[string]bool{}
	for _, m := range c.ms {
		ids[m.id] = true
	}
	// span is the indexes one POST delivered for the first time.
	type span struct {
		first, last uint64
		node        string
		run         int // which run of consecutive POSTs by one node
		at          time.Time
	}
	var spans []span
	var highest uint64
	prev, run := "", 0
	killedBetween := func(node string, from, to time.Time) bool {
		for _, k := range kills[node] {
			if k.After(from) && k.Before(to) {
				return true
			}
		}
		return false
	}
	for i, p := range posts {
		if p.Status != http.StatusOK {
			continue
		}
		if !ids[p.NodeID] || p.ServiceID != cdcServiceID {
			t.Errorf("POST of indexes %d..%d: node_id %q service_id %q, want a member's node ID %v and %q (API.md §1.14)",
				p.First, p.Last, p.NodeID, p.ServiceID, c.ids(), cdcServiceID)
			return
		}
		if p.NodeID != prev {
			prev, run = p.NodeID, run+1
		}
		if p.Duplicates > 0 {
			dupLast := min(p.Last, highest)
			for _, s := range spans {
				if s.node == p.NodeID && s.run == run && s.first <= dupLast && s.last >= p.First && !killedBetween(p.NodeID, s.at, p.At) {
					t.Errorf("POST of indexes %d..%d from %s re-sent indexes it delivered itself (%d..%d) with no leadership change or restart in between; POSTs up to it:\n%s",
						p.First, p.Last, p.NodeID, max(s.first, p.First), min(s.last, dupLast), postLog(posts[max(0, i-8):i+1], posts[0].At))
					break
				}
			}
		}
		if p.Last > highest {
			spans = append(spans, span{first: max(p.First, highest+1), last: p.Last, node: p.NodeID, run: run, at: p.At})
			highest = p.Last
		}
	}
}

// postLog lists POSTs, one a line, times relative to t0.
func postLog(posts []webhook.Post, t0 time.Time) string {
	var b strings.Builder
	for _, p := range posts {
		fmt.Fprintf(&b, "  +%s %d from %q: indexes %d..%d (%d groups, %d duplicates)\n",
			p.At.Sub(t0).Round(time.Millisecond), p.Status, p.NodeID, p.First, p.Last, p.Groups, p.Duplicates)
	}
	return b.String()
}

// TestCDCWebhookExactlyOnce is the end-to-end CDC test: 3 nodes
// with -cdc-config pointing at a JSON file (API.md §1.14) whose endpoint
// is a webhook in this process; cdcOps inserts, updates and deletes
// through random nodes with ?raft_index (API.md §1.2), while the leader is
// SIGKILLed (and restarted) twice and the webhook answers 500 for
// cdcOutage in between. After dedup by index, the receiver holds every
// change exactly once, in index order, with before images matching the
// events before them, the replay equal to every node's table, and every
// acknowledged write that changed rows under its own index; a re-sent
// index was always delivered before (no gap).
func TestCDCWebhookExactlyOnce(t *testing.T) {
	recv, err := webhook.New(webhook.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	cfg := writeJSONFile(t, "cdc.json", cdcConfigJSON(recv.URL(), nil))
	c := newClusterWith(t, 3, withFlags("-cdc-config", cfg))
	wantOK(t, "CREATE TABLE", c.leader.execute(createItems), `{"results":[{}]}`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts := newTargets(c.ms)
	gates := []*gate{newGate(cdcOps / 4), newGate(cdcOps / 2), newGate(3 * cdcOps / 4)}
	load, done := cdcWorkload(ctx, ts, cdcOps, gates)

	// kills are when each node was SIGKILLed: it may re-send, after its
	// restart, what it delivered before.
	kills := map[string][]time.Time{}
	waitGate(t, gates[0], done)
	at := time.Now()
	killed := killLeader(t, c, ts, func() { close(gates[0].open) })
	kills[killed.id] = append(kills[killed.id], at)

	waitGate(t, gates[1], done)
	recv.SetFailing(true)
	close(gates[1].open)
	t.Logf("webhook answers 500 for %s", cdcOutage)
	time.Sleep(cdcOutage)
	recv.SetFailing(false)

	waitGate(t, gates[2], done)
	at = time.Now()
	killed = killLeader(t, c, ts, func() { close(gates[2].open) })
	kills[killed.id] = append(kills[killed.id], at)
	waitDone(t, done)
	if recv.Refused() == 0 {
		t.Errorf("no POST came while the webhook answered 500 for %s: the outage tested nothing", cdcOutage)
	}

	marker := writeMarker(t, ts, load, 1<<40)
	dctx, dcancel := context.WithTimeout(context.Background(), cdcDeliveryTimeout)
	defer dcancel()
	if err := recv.WaitIndex(dctx, marker); err != nil {
		c.dumpLogs()
		t.Fatalf("the last write (raft index %d) never reached the webhook: %v", marker, err)
	}
	for _, v := range recv.Violations() {
		t.Errorf("webhook: %s", v)
	}
	posts := recv.Posts()
	checkEnvelopes(t, c, posts, kills)
	t.Logf("webhook: %d POSTs, %d answered 500, %d duplicate groups discarded", len(posts), recv.Refused(), recv.Duplicates())
	model := checkDelivery(t, recv.Delivered(), load)
	checkAgainstTables(t, c, c.waitElected(c.ms), model)
	// Every node, the restarted ones too, learns the high-water mark and
	// prunes its outbox below it.
	for _, m := range c.ms {
		waitCDC(t, m, fmt.Sprintf("high_watermark >= %d and backlog 0", marker), func(d jsonDoc) bool {
			return d.num("high_watermark") >= float64(marker) && d.num("backlog") == 0
		})
	}
}

// cdcDocTypes are the /status cdc keys and their JSON types: rqlite's
// (cdc/service.go Stats) and the contract's additions (API.md §1.14,
// issue 15: backlog, high-water mark, last error, last delivery time).
var cdcDocTypes = map[string]string{
	"node_id": "string", "dir": "string", "highwater_mark": "number", "is_leader": "bool",
	"endpoint": "string", "fifo": "object", "fifo.has_next": "bool", "fifo.length": "number",
	"service_id": "string",
	"backlog":    "number", "backlog_bytes": "number", "high_watermark": "number",
	"last_sent_index": "number", "last_error": "string", "last_delivery_time": "string", "leader": "bool",
}

// checkCDCDoc requires every /status cdc key with its type.
func checkCDCDoc(t *testing.T, m *member, st jsonDoc) {
	t.Helper()
	raw, ok := st["cdc"].(map[string]any)
	if !ok {
		t.Errorf("%s /status has no cdc object (got %v)", m.id, st["cdc"])
		return
	}
	cdc := jsonDoc(raw)
	for path, want := range cdcDocTypes {
		if v, ok := cdc.at(path); !ok || jsonKind(v) != want {
			t.Errorf("%s /status cdc.%s = %v (%s), want a %s", m.id, path, v, jsonKind(v), want)
		}
	}
	if v, _ := st.at("store.cdc.enabled"); v != true {
		s, _ := st.at("store.cdc")
		t.Errorf("%s /status store.cdc = %v, want an object with enabled true (API.md §2.1: {\"enabled\":..,\"registered\":..})", m.id, s)
	}
}

// waitCDC polls /status on m until cond holds for its cdc section.
func waitCDC(t *testing.T, m *member, what string, cond func(jsonDoc) bool) jsonDoc {
	t.Helper()
	deadline := time.Now().Add(catchUpTimeout)
	for {
		st := getDoc(t, m, "/status")
		raw, _ := st["cdc"].(map[string]any)
		if cond(jsonDoc(raw)) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(raw)
			t.Fatalf("%s: %s never held within %s; last /status cdc: %s", m.id, what, catchUpTimeout, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCDCStatus: the /status cdc section (rqlite's keys plus the
// contract's), store.cdc, and the /debug/vars cdc counters, with their
// JSON types; the leader alone transmits; once the sink acknowledged, the
// high-water mark reaches every node and the backlog is pruned to 0. The
// endpoint's credentials never show.
func TestCDCStatus(t *testing.T) {
	recv, err := webhook.New(webhook.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	endpoint := strings.Replace(recv.URL(), "http://", "http://user:s3cret@", 1)
	cfg := writeJSONFile(t, "cdc.json", cdcConfigJSON(endpoint, nil))
	c := newClusterWith(t, 3, withFlags("-cdc-config", cfg))
	wantOK(t, "CREATE TABLE", c.leader.execute(createItems), `{"results":[{}]}`)
	var last uint64
	for i := 1; i <= 10; i++ {
		a, ok, err := execIndexed(context.Background(), c.leader.client, c.leader.baseURL(),
			[]any{"INSERT INTO items(id, v, n, f) VALUES(?, 'x', 1, 1.5)", i})
		if !ok || err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		last = a.RaftIndex
	}
	ctx, cancel := context.WithTimeout(context.Background(), cdcDeliveryTimeout)
	defer cancel()
	if err := recv.WaitIndex(ctx, last); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.ms {
		st := waitCDC(t, m, fmt.Sprintf("high_watermark >= %d and backlog 0", last), func(d jsonDoc) bool {
			return d.num("high_watermark") >= float64(last) && d.num("backlog") == 0
		})
		checkCDCDoc(t, m, st)
		cdc := jsonDoc(st["cdc"].(map[string]any))
		isLeader := m == c.leader
		if v, _ := cdc.at("leader"); v != isLeader {
			t.Errorf("%s /status cdc.leader = %v, want %v (the leader alone transmits)", m.id, v, isLeader)
		}
		if v, _ := cdc.at("is_leader"); v != isLeader {
			t.Errorf("%s /status cdc.is_leader = %v, want %v", m.id, v, isLeader)
		}
		if isLeader {
			if cdc.num("last_sent_index") < float64(last) {
				t.Errorf("leader %s /status cdc.last_sent_index = %v, want >= %d", m.id, cdc["last_sent_index"], last)
			}
			if s, _ := cdc["last_delivery_time"].(string); s == "" {
				t.Errorf("leader %s /status cdc.last_delivery_time is empty after deliveries", m.id)
			}
		}
		if v := cdc["service_id"]; v != cdcServiceID {
			t.Errorf("%s /status cdc.service_id = %v, want %q", m.id, v, cdcServiceID)
		}
		if b, _ := json.Marshal(st); bytes.Contains(b, []byte("s3cret")) {
			t.Errorf("%s /status shows the endpoint's password: %s", m.id, cdc["endpoint"])
		}
		vars := getDoc(t, m, "/debug/vars")
		raw, ok := vars["cdc"].(map[string]any)
		if !ok || len(raw) == 0 {
			t.Errorf("%s /debug/vars cdc = %v, want an object of counters", m.id, vars["cdc"])
			continue
		}
		for k, v := range raw {
			if jsonKind(v) != "number" {
				t.Errorf("%s /debug/vars cdc.%s = %v (%s), want a number", m.id, k, v, jsonKind(v))
			}
		}
		if r := m.get("/status?key=cdc"); r.status != http.StatusOK || !json.Valid(r.body) || r.body[0] != '{' {
			t.Errorf("%s /status?key=cdc: %s, want the cdc object (API.md §1.2 key)", m.id, r)
		}
	}
	for _, v := range recv.Violations() {
		t.Errorf("webhook: %s", v)
	}
}

// TestCDCSinkDown: with nothing listening at the webhook's address, writes
// are acknowledged, /status and /readyz answer, the cdc backlog grows and
// the last error says why; the outbox survives a SIGKILL; once a receiver
// listens on that address it gets every change, in order, and the backlog
// is pruned to 0 (issue 15, "Bad input").
func TestCDCSinkDown(t *testing.T) {
	const inserts = 30
	addr := testport.Addr(t)
	cfg := writeJSONFile(t, "cdc.json", cdcConfigJSON("http://"+addr+"/cdc", nil))
	c := newClusterWith(t, 1, withFlags("-cdc-config", cfg))
	n := c.leader
	wantOK(t, "CREATE TABLE", n.execute(createItems), `{"results":[{}]}`)
	l := &cdcLoad{changedAt: map[uint64]int64{}}
	var last uint64
	for i := 1; i <= inserts; i++ {
		a, ok, err := execIndexed(context.Background(), n.client, n.baseURL(),
			[]any{"INSERT INTO items(id, v, n, f) VALUES(?, ?, ?, 2.5)", i, fmt.Sprintf("row%d", i), i})
		l.record(a, ok, err)
		if !ok || err != nil {
			t.Fatalf("insert %d with the sink down: %v", i, err)
		}
		last = a.RaftIndex
	}
	wantOK(t, "/readyz with the sink down", n.get("/readyz"), readyBody)
	waitCDC(t, n, fmt.Sprintf("backlog >= %d groups and a last_error", inserts), func(d jsonDoc) bool {
		s, _ := d["last_error"].(string)
		return d.num("backlog") >= inserts && s != ""
	})

	n.sigkill()
	n.start()
	n.waitReady(readyTimeout)
	waitCDC(t, n, fmt.Sprintf("backlog >= %d groups after a SIGKILL (the outbox is durable)", inserts), func(d jsonDoc) bool {
		return d.num("backlog") >= inserts
	})

	recv, err := webhook.New(webhook.Config{Addr: addr})
	if err != nil {
		t.Fatalf("the receiver cannot take the sink's address: %v", err)
	}
	defer recv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cdcDeliveryTimeout)
	defer cancel()
	if err := recv.WaitIndex(ctx, last); err != nil {
		n.dumpLogs()
		t.Fatal(err)
	}
	for _, v := range recv.Violations() {
		t.Errorf("webhook: %s", v)
	}
	model := checkDelivery(t, recv.Delivered(), l)
	checkAgainstTables(t, c, n, model)
	waitCDC(t, n, "backlog pruned to 0", func(d jsonDoc) bool { return d.num("backlog") == 0 })
}

// TestCDCBadConfig: a malformed -cdc-config refuses to start (issue 15,
// "Bad input"; API.md §1.14: refused on read replicas, as in rqlite): the
// process exits non-zero, says what is wrong naming the flag, and leaves
// no data directory behind; a member stored as a non-voter is refused too
// and starts again without the flag.
func TestCDCBadConfig(t *testing.T) {
	cases := []struct {
		name string
		// file, if set, is written and its path passed as -cdc-config;
		// else arg is.
		file, arg string
		flags     []string
		want      *regexp.Regexp
	}{
		{name: "bad JSON", file: `{"endpoint": "http://127.0.0.1:1/cdc",`, want: regexp.MustCompile(`cdc-config`)},
		{name: "unknown key", file: `{"endpoint":"http://127.0.0.1:1/cdc","no_such_key":true}`, want: regexp.MustCompile(`no_such_key`)},
		{name: "bad endpoint scheme in the file", file: `{"endpoint":"ftp://127.0.0.1:1/cdc"}`, want: regexp.MustCompile(`ftp`)},
		{name: "bad duration", file: `{"endpoint":"http://127.0.0.1:1/cdc","max_batch_delay":"soon"}`, want: regexp.MustCompile(`max_batch_delay`)},
		{name: "bad URL scheme", arg: "ftp://127.0.0.1:1/cdc", want: regexp.MustCompile(`cdc-config`)},
		{name: "NATS URL without subject", arg: "nats://127.0.0.1:1", want: regexp.MustCompile(`(?i)subject`)},
		{name: "missing file", arg: "/nonexistent/skiff-cdc.json", want: regexp.MustCompile(`skiff-cdc\.json`)},
		{name: "read replica", arg: "http://127.0.0.1:1/cdc", flags: []string{"-raft-non-voter", "-join", "127.0.0.1:1"},
			want: regexp.MustCompile(`(?i)non-?voter|read replica`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			arg := tc.arg
			if tc.file != "" {
				arg = writeFile(t, "cdc.json", []byte(tc.file))
			}
			n := newNode(t)
			n.args = append(append([]string{}, tc.flags...), "-cdc-config", arg)
			wantRefused(t, n, "cdc-config", tc.want)
		})
	}
	t.Run("stored non-voter", func(t *testing.T) {
		c := newCluster(t, 1)
		n2 := c.add("n2", "-raft-non-voter", "-join", c.leader.raftAddr)
		n2.start()
		n2.waitReady(clusterTimeout)
		c.waitMembers(c.ms, []string{"n1"}, []string{"n2"})
		n2.sigterm()
		n2.setFlags("-cdc-config", "http://127.0.0.1:1/cdc")
		p := n2.launch()
		waitExit(t, n2.node, p)
		if p.exitCode() == 0 || !n2.logContains(p.logPath, "cdc-config") {
			n2.dumpLogs()
			t.Fatalf("a node stored as a non-voter started with -cdc-config: exit %d; want a refusal naming -cdc-config", p.exitCode())
		}
		// The refusal must come before the outbox is created: an outbox on
		// a read replica is half-made state a later start would find.
		cdcDir := filepath.Join(n2.dataDir, "cdc")
		if _, err := os.Stat(cdcDir); !errors.Is(err, os.ErrNotExist) {
			var names []string
			_ = filepath.WalkDir(cdcDir, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(cdcDir, path)
					names = append(names, rel)
				}
				return nil
			})
			t.Errorf("the refused start left the outbox directory <data>/cdc behind (files: %v)", names)
		}
		n2.setFlags()
		n2.start()
		n2.waitReady(clusterTimeout)
	})
}

// waitExit waits for a process expected to refuse to start.
func waitExit(t *testing.T, n *node, p *process) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(httpUpTimeout):
		n.dumpLogs()
		t.Fatalf("still running %s after a start that must be refused", httpUpTimeout)
	}
}

// wantRefused launches n and requires a refusal: a non-zero exit, a log
// (stdout and stderr) naming flag and matching want, and no data
// directory, or an empty one, left behind.
func wantRefused(t *testing.T, n *node, flag string, want *regexp.Regexp) {
	t.Helper()
	p := n.launch()
	waitExit(t, n, p)
	out, _ := os.ReadFile(p.logPath)
	if p.exitCode() == 0 || !bytes.Contains(out, []byte(flag)) || !want.Match(out) {
		t.Errorf("exit status %d, output:\n%s\nwant a non-zero exit and a message naming -%s and matching %q", p.exitCode(), out, flag, want)
	}
	entries, err := os.ReadDir(n.dataDir)
	if err == nil && len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the refused start left %v in the data directory", names)
	}
}

// TestCDCNATSExactlyOncePerIndex: the same workload, smaller, with the
// NATS JetStream sink (-cdc-config with endpoint nats://host:port/SUBJECT;
// the stream capturing SUBJECT created first, found by subject) while the
// leader is SIGKILLed once: the stream holds exactly one message per Raft
// index that changed rows (Nats-Msg-Id <service_id>-<index> lets
// JetStream drop the re-sends), in index order, each an envelope of that
// index's groups, the events replaying to every node's table.
func TestCDCNATSExactlyOncePerIndex(t *testing.T) {
	natsURL, _ := natstest.Start(t)
	const subject = "cdc.items"
	stream := natstest.Stream(t, natsURL, "CDC", subject)
	cfg := writeJSONFile(t, "cdc.json", cdcConfigJSON(natsURL+"/"+subject, nil))
	c := newClusterWith(t, 3, withFlags("-cdc-config", cfg))
	wantOK(t, "CREATE TABLE", c.leader.execute(createItems), `{"results":[{}]}`)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts := newTargets(c.ms)
	gates := []*gate{newGate(cdcNATSOps / 2)}
	load, done := cdcWorkload(ctx, ts, cdcNATSOps, gates)
	waitGate(t, gates[0], done)
	killLeader(t, c, ts, func() { close(gates[0].open) })
	waitDone(t, done)
	marker := writeMarker(t, ts, load, 1<<40)

	var d webhook.Dedup
	var delivered []webhook.Group
	msgs := 0
	deadline := time.Now().Add(cdcDeliveryTimeout)
	for seq := uint64(1); d.Highest() < marker; {
		if time.Now().After(deadline) {
			c.dumpLogs()
			t.Fatalf("the stream never got raft index %d within %s: highest %d after %d messages", marker, cdcDeliveryTimeout, d.Highest(), msgs)
		}
		rctx, rcancel := context.WithTimeout(ctx, natsUpTimeout)
		info, err := stream.Info(rctx)
		if err != nil {
			rcancel()
			t.Fatalf("stream info: %v", err)
		}
		for ; seq <= info.State.LastSeq; seq++ {
			msg, err := stream.GetMsg(rctx, seq)
			if err != nil {
				rcancel()
				t.Fatalf("stream message %d: %v", seq, err)
			}
			msgs++
			for _, b := range checkNATSMsg(msg) {
				t.Errorf("stream message %d: %s", seq, b)
			}
			env, err := webhook.Decode(msg.Data)
			if err != nil {
				continue
			}
			dups := d.Duplicates
			fresh, bad := d.Offer(env)
			for _, b := range bad {
				t.Errorf("stream message %d: %s", seq, b)
			}
			if d.Duplicates > dups {
				t.Errorf("stream message %d (%s) repeats index %d: the stream must hold one message per index (Nats-Msg-Id dedup)",
					seq, msg.Header.Get("Nats-Msg-Id"), env.Payload[0].Index)
			}
			delivered = append(delivered, fresh...)
		}
		rcancel()
		if d.Highest() < marker {
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("stream: %d messages, highest index %d", msgs, d.Highest())
	model := checkDelivery(t, delivered, load)
	checkAgainstTables(t, c, c.waitElected(c.ms), model)
}

// checkNATSMsg checks one CDC message's shape: one Raft index per message,
// an envelope of that index's groups (API.md §1.14 envelope), and the
// header Nats-Msg-Id = <service_id>-<index>.
func checkNATSMsg(msg *jetstream.RawStreamMsg) []string {
	env, err := webhook.Decode(msg.Data)
	if err != nil {
		return []string{fmt.Sprintf("%v: %.300s", err, msg.Data)}
	}
	bad := webhook.Check(env, false)
	if len(env.Payload) == 0 {
		return bad
	}
	idx := env.Payload[0].Index
	for _, g := range env.Payload {
		if g.Index != idx {
			bad = append(bad, fmt.Sprintf("indexes %d and %d in one message; want one index per message", idx, g.Index))
			break
		}
	}
	if want, got := fmt.Sprintf("%s-%d", cdcServiceID, idx), msg.Header.Get("Nats-Msg-Id"); got != want {
		bad = append(bad, fmt.Sprintf("Nats-Msg-Id %q, want %q", got, want))
	}
	if env.ServiceID != cdcServiceID {
		bad = append(bad, fmt.Sprintf("service_id %q, want %q", env.ServiceID, cdcServiceID))
	}
	return bad
}

// TestCDCFilterRowIDsAndRollback: rqlite's table_filter and row_ids_only
// (API.md §1.14) end to end, and what must never be sent: a table the
// filter leaves out, the row images with row_ids_only, the changes of a
// transaction that rolled back (issue 15, "Capture inside apply").
func TestCDCFilterRowIDsAndRollback(t *testing.T) {
	recv, err := webhook.New(webhook.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	recv.RowIDsOnly = true
	cfg := writeJSONFile(t, "cdc.json", cdcConfigJSON(recv.URL(), map[string]any{"row_ids_only": true, "table_filter": "^keep"}))
	c := newClusterWith(t, 1, withFlags("-cdc-config", cfg))
	n := c.leader
	wantOK(t, "CREATE TABLEs", n.execute(`["CREATE TABLE keep (id INTEGER PRIMARY KEY, v TEXT)","CREATE TABLE skip (id INTEGER PRIMARY KEY, v TEXT)"]`),
		`{"results":[{},{}]}`)
	wantOK(t, "INSERTs", n.execute(`["INSERT INTO keep(id, v) VALUES(1, 'a')","INSERT INTO skip(id, v) VALUES(1, 'a')"]`),
		`{"results":[{"last_insert_id":1,"rows_affected":1},{"last_insert_id":1,"rows_affected":1}]}`)
	r := n.post("/db/execute?transaction", `["INSERT INTO keep(id, v) VALUES(2, 'rolled back')","INSERT INTO nosuch(v) VALUES(1)"]`)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "no such table: nosuch") {
		t.Fatalf("the failing transaction: %s", r)
	}
	for _, stmt := range []string{`["UPDATE keep SET v = 'b' WHERE id = 1"]`, `["DELETE FROM keep WHERE id = 1"]`} {
		// last_insert_id is the connection's (API.md §1.4), whatever the
		// rolled-back insert left there; only the change matters here.
		if r := n.execute(stmt); r.status != http.StatusOK || !strings.Contains(string(r.body), `"rows_affected":1}`) {
			t.Fatalf("%s: %s", stmt, r)
		}
	}
	a, ok, err := execIndexed(context.Background(), n.client, n.baseURL(), []any{"INSERT INTO keep(id, v) VALUES(3, 'last')"})
	if !ok || err != nil {
		t.Fatalf("last insert: %v %+v", err, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cdcDeliveryTimeout)
	defer cancel()
	if err := recv.WaitIndex(ctx, a.RaftIndex); err != nil {
		t.Fatal(err)
	}
	for _, v := range recv.Violations() {
		t.Errorf("webhook: %s", v)
	}
	var got []string
	for _, g := range recv.Delivered() {
		for _, e := range g.Events {
			got = append(got, fmt.Sprintf("%s %s %d->%d", e.Op, e.Table, e.OldRowID, e.NewRowID))
		}
	}
	want := []string{"INSERT keep 0->1", "UPDATE keep 1->1", "DELETE keep 1->0", "INSERT keep 0->3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q (table_filter ^keep, the rolled-back insert of keep 2 never sent)", got, want)
	}
}

// TestCDCStdout: -cdc-config stdout prints each batch's envelope (API.md
// §1.14) on the daemon's standard output.
func TestCDCStdout(t *testing.T) {
	c := newClusterWith(t, 1, withFlags("-cdc-config", "stdout"))
	n := c.leader
	wantOK(t, "CREATE TABLE", n.execute(createItems), `{"results":[{}]}`)
	wantOK(t, "INSERT", n.execute(`["INSERT INTO items(id, v, n, f) VALUES(7, 'x', 1, 1.5)"]`), `{"results":[{"last_insert_id":7,"rows_affected":1}]}`)
	waitLog(t, c.leader, `"events":[{"op":"INSERT","table":"items","new_row_id":7,"after":{"f":1.5,"id":7,"n":1,"v":"x"}}]`)
}
