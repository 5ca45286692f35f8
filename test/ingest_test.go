package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/skiffdb/skiff/test/natstest"
	"github.com/skiffdb/skiff/test/testport"
)

// SQL commands in from NATS end to end (issue 15, "In: SQL commands from
// NATS"): real skiffd processes consuming from a real JetStream stream
// (nats_test.go). A message's body is a /db/request body (API.md §1.3);
// its reply, on the subject in its Reply-To header, is the /db/request
// JSON answer (API.md §1.4).
const (
	// ingestMessages is the 10,000 messages. With -race on two
	// cores the three nodes apply a few hundred to a few thousand a second;
	// lower it here if that makes the test too slow.
	ingestMessages = 10000
	// ingestReplyEvery: every ingestReplyEvery-th message asks for a reply.
	ingestReplyEvery = 10
	// ingestTimeout bounds the wait for every message to be applied:
	// messages in flight on a killed node come back after the consumer's
	// ack wait (JetStream's default is 30 s).
	ingestTimeout = 3 * time.Minute
	// ingestSubject is the subject the ingest tests publish SQL to.
	ingestSubject = "ingest.sql"
)

// createIng has no unique key on k, so that a message applied twice shows
// as a second row with its k.
const createIng = `["CREATE TABLE ing (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT)"]`

// ingestConfigJSON is a -ingest-config file's content (actors/ingest's
// keys: url nats://host:port/SUBJECT, dead_letter_subject,
// max_deliveries, ...); extra adds or overrides keys.
func ingestConfigJSON(natsURL string, extra map[string]any) map[string]any {
	cfg := map[string]any{"url": natsURL + "/" + ingestSubject}
	for k, v := range extra {
		cfg[k] = v
	}
	return cfg
}

// replies collects the messages of a core NATS subscription by subject.
type replies struct {
	mu     sync.Mutex
	bodies map[string][]string
}

func subscribeReplies(t *testing.T, nc *nats.Conn, subject string) *replies {
	t.Helper()
	r := &replies{bodies: map[string][]string{}}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		r.mu.Lock()
		r.bodies[m.Subject] = append(r.bodies[m.Subject], string(m.Data))
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("subscribe %s: %v", subject, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return r
}

func (r *replies) get(subject string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies[subject]...)
}

// wait polls until every subject has a message, and returns the ones
// still missing at the deadline.
func (r *replies) wait(subjects []string, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, s := range subjects {
			if len(r.get(s)) == 0 {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ingCounts reads COUNT(*) and COUNT(DISTINCT k) of ing on m at level none.
func ingCounts(m *member) (rows, keys int, err error) {
	r, err := m.do(m.client, http.MethodGet, "/db/query?level=none&q="+url.QueryEscape("SELECT COUNT(*), COUNT(DISTINCT k) FROM ing"), "", nil)
	if err != nil {
		return 0, 0, err
	}
	var doc struct {
		Results []struct {
			Values [][]int `json:"values"`
			Error  string  `json:"error"`
		} `json:"results"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &doc) != nil || len(doc.Results) != 1 || len(doc.Results[0].Values) != 1 {
		return 0, 0, fmt.Errorf("%s", r)
	}
	return doc.Results[0].Values[0][0], doc.Results[0].Values[0][1], nil
}

// waitIngCount polls m until ing holds want rows with want distinct keys;
// more rows than keys (a message applied twice) fails at once.
func waitIngCount(t *testing.T, m *member, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		rows, keys, err := ingCounts(m)
		if err == nil {
			if rows != keys {
				dup := m.query("SELECT k, COUNT(*) FROM ing GROUP BY k HAVING COUNT(*) > 1 LIMIT 10", "level=none")
				t.Fatalf("%s: %d rows for %d distinct keys: messages applied more than once (keys, copies: %s)", m.id, rows, keys, dup.body)
			}
			if rows == want {
				return
			}
			last = fmt.Sprintf("%d rows", rows)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: ing never held %d rows within %s; last: %s", m.id, want, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// insertReply is the exact reply to one INSERT (API.md §1.4).
var insertReply = regexp.MustCompile(`^\{"results":\[\{"last_insert_id":(\d+),"rows_affected":1\}\]\}$`)

// TestIngestExactlyOnce is the ingest test: 3 nodes with
// -ingest-config nats://host:port/SUBJECT (the stream capturing SUBJECT
// created first; durable consumer "skiff" shared by the nodes); 10,000
// messages, each an INSERT with its own key k, half with a Nats-Msg-Id
// and half without (the request ID is then the stream sequence), every
// tenth with a Reply-To header; the leader is SIGKILLed while they are
// applied, and restarted. Every node ends with exactly one row per key,
// and every message whose publish was acked and that asked for a reply
// got rqlite's JSON answer naming its own row.
func TestIngestExactlyOnce(t *testing.T) {
	natsURL, _ := natstest.Start(t)
	natstest.Stream(t, natsURL, "INGEST", ingestSubject)
	c := newClusterWith(t, 3, withFlags("-ingest-config", natsURL+"/"+ingestSubject))
	wantOK(t, "CREATE TABLE", c.leader.execute(createIng), `{"results":[{}]}`)
	nc, js := natstest.Connect(t, natsURL)
	rs := subscribeReplies(t, nc, "ingreply.>")

	ctx, cancel := context.WithTimeout(context.Background(), ingestTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, ingestMessages+1)
	publish := func(from, to int) {
		for k := from; k <= to; k++ {
			body, _ := json.Marshal([][]any{{"INSERT INTO ing(k, v) VALUES(?, ?)", k, "m" + strconv.Itoa(k)}})
			msg := nats.NewMsg(ingestSubject)
			msg.Data = body
			if k%2 == 1 {
				msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("ing-%d", k))
			}
			if k%ingestReplyEvery == 0 {
				msg.Header.Set("Reply-To", fmt.Sprintf("ingreply.%d", k))
			}
			f, err := js.PublishMsgAsync(msg)
			if err != nil {
				t.Fatalf("publish %d: %v", k, err)
			}
			futures[k] = f
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-ctx.Done():
			t.Fatalf("publishes %d..%d not acked: %v", from, to, ctx.Err())
		}
	}
	third := ingestMessages / 3
	publish(1, third)
	// Kill the leader once the nodes are applying: messages in flight on
	// every node then fail their commit, and come back.
	deadline := time.Now().Add(ingestTimeout)
	for {
		if rows, _, err := ingCounts(c.leader); err == nil && rows >= third/4 {
			break
		}
		if time.Now().After(deadline) {
			c.dumpLogs()
			t.Fatalf("no ingested row shows on the leader within %s", ingestTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	killed := c.waitElected(c.ms)
	killed.sigkill()
	t.Logf("SIGKILLed the leader %s while ingesting", killed.id)
	publish(third+1, 2*third)
	next := c.waitElected(others(c.ms, killed))
	t.Logf("%s elected", next.id)
	publish(2*third+1, ingestMessages)
	killed.start()
	killed.waitReady(clusterTimeout)

	acked := 0
	var wantReplies []string
	for k := 1; k <= ingestMessages; k++ {
		select {
		case <-futures[k].Ok():
			acked++
			if k%ingestReplyEvery == 0 {
				wantReplies = append(wantReplies, fmt.Sprintf("ingreply.%d", k))
			}
		case err := <-futures[k].Err():
			t.Errorf("publish %d failed: %v (the stream is local; it must take every message)", k, err)
		}
	}
	t.Logf("%d publishes acked", acked)
	for _, m := range c.ms {
		waitIngCount(t, m, acked, ingestTimeout)
	}
	if missing := rs.wait(wantReplies, catchUpTimeout); len(missing) > 0 {
		t.Errorf("%d of %d replies never came (e.g. %v)", len(missing), len(wantReplies), missing[:min(5, len(missing))])
	}
	ids := ingIDs(t, c.leader)
	bad, extra := 0, 0
	for _, subj := range wantReplies {
		k, _ := strconv.Atoi(strings.TrimPrefix(subj, "ingreply."))
		got := rs.get(subj)
		extra += max(0, len(got)-1)
		for _, body := range got {
			m := insertReply.FindStringSubmatch(body)
			if m == nil || m[1] != strconv.FormatInt(ids[k], 10) {
				if bad++; bad <= 10 {
					t.Errorf("reply to message %d: %s, want {\"results\":[{\"last_insert_id\":%d,\"rows_affected\":1}]} (its row's id)", k, body, ids[k])
				}
			}
		}
	}
	t.Logf("%d replies expected, %d repeated (a redelivery answered from the dedup record)", len(wantReplies), extra)
	for _, m := range c.ms {
		if st := getDoc(t, m, "/status"); jsonKind(st["ingest"]) != "object" {
			t.Errorf("%s /status ingest = %v, want an object (issue 15)", m.id, st["ingest"])
		}
		if b, err := json.Marshal(getDoc(t, m, "/debug/vars")["ingest"]); err == nil {
			t.Logf("%s /debug/vars ingest: %s", m.id, b)
		}
	}
}

// ingIDs maps each k of ing to its row id, read on m at level strong.
func ingIDs(t *testing.T, m *member) map[int]int64 {
	t.Helper()
	r := m.query("SELECT id, k FROM ing", "level=strong")
	var doc struct {
		Results []struct {
			Values [][]int64 `json:"values"`
		} `json:"results"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &doc) != nil || len(doc.Results) != 1 {
		t.Fatalf("SELECT id, k FROM ing on %s: %.300s", m.id, r)
	}
	out := map[int]int64{}
	for _, row := range doc.Results[0].Values {
		out[int(row[1])] = row[0]
	}
	return out
}

// TestIngestPoisonAndErrors: a message whose SQL fails is answered with
// its error and does not hold up the next; a message that cannot be parsed
// goes to the dead-letter subject after max_deliveries (a JSON
// -ingest-config) and the messages after it are applied; the transaction
// header wraps the statements (a failed one rolls the others back).
func TestIngestPoisonAndErrors(t *testing.T) {
	natsURL, _ := natstest.Start(t)
	natstest.Stream(t, natsURL, "INGEST", ingestSubject)
	natstest.Stream(t, natsURL, "DEAD", "dead.ingest")
	cfg := writeJSONFile(t, "ingest.json", ingestConfigJSON(natsURL, map[string]any{
		"dead_letter_subject": "dead.ingest", "max_deliveries": 2,
	}))
	c := newClusterWith(t, 1, withFlags("-ingest-config", cfg))
	wantOK(t, "CREATE TABLE", c.leader.execute(`["CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT)"]`), `{"results":[{}]}`)
	nc, js := natstest.Connect(t, natsURL)
	rs := subscribeReplies(t, nc, "preply.>")
	dead := subscribeReplies(t, nc, "dead.ingest")

	ctx, cancel := context.WithTimeout(context.Background(), natsUpTimeout)
	defer cancel()
	send := func(body, reply string, hdr map[string]string) {
		t.Helper()
		msg := nats.NewMsg(ingestSubject)
		msg.Data = []byte(body)
		if reply != "" {
			msg.Header.Set("Reply-To", reply)
		}
		for k, v := range hdr {
			msg.Header.Set(k, v)
		}
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("publish %q: %v", body, err)
		}
	}
	const poison = `this is not a /db/request body`
	send(`[["INSERT INTO nosuch(v) VALUES('x')"]]`, "preply.sqlerror", nil)
	send(poison, "preply.poison", nil)
	send(`[["INSERT INTO p(v) VALUES('after-poison')"]]`, "preply.after", nil)
	send(`[["INSERT INTO p(v) VALUES('tx')"],["INSERT INTO nosuch(v) VALUES('x')"]]`, "preply.tx", map[string]string{"transaction": "true"})

	if missing := rs.wait([]string{"preply.sqlerror", "preply.after", "preply.tx"}, catchUpTimeout); len(missing) > 0 {
		c.dumpLogs()
		t.Fatalf("no reply on %v within %s", missing, catchUpTimeout)
	}
	wantReply := func(subj, want string) {
		t.Helper()
		for _, got := range rs.get(subj) {
			if got != want {
				t.Errorf("reply on %s: %s, want %s (the /db/request answer, API.md §1.4)", subj, got, want)
			}
		}
	}
	wantReply("preply.sqlerror", `{"results":[{"error":"no such table: nosuch"}]}`)
	wantReply("preply.after", `{"results":[{"last_insert_id":1,"rows_affected":1}]}`)
	for _, got := range rs.get("preply.tx") {
		if !strings.Contains(got, `"error":"no such table: nosuch"`) {
			t.Errorf("reply to the transaction: %s, want the second statement's error", got)
		}
	}
	if missing := dead.wait([]string{"dead.ingest"}, catchUpTimeout); len(missing) > 0 {
		c.dumpLogs()
		t.Fatalf("the unparsable message never reached the dead-letter subject within %s", catchUpTimeout)
	}
	if got := dead.get("dead.ingest"); got[0] != poison {
		t.Errorf("dead letter %q, want the message's body %q", got[0], poison)
	}
	// The consumer is not wedged behind the poison message.
	send(`[["INSERT INTO p(v) VALUES('after-dead-letter')"]]`, "preply.last", nil)
	if missing := rs.wait([]string{"preply.last"}, catchUpTimeout); len(missing) > 0 {
		t.Fatalf("no reply to a message published after the dead letter within %s", catchUpTimeout)
	}
	wantOK(t, "table p", c.leader.query("SELECT v FROM p ORDER BY id", "level=strong"),
		`{"results":[{"columns":["v"],"types":["text"],"values":[["after-poison"],["after-dead-letter"]]}]}`)
	if got := rs.get("preply.poison"); len(got) > 0 {
		t.Logf("the poison message was answered: %v", got)
	}
}

// TestIngestBadConfig: a malformed -ingest-config refuses to start
// (issue 15, "Bad input") with a message naming the flag, leaving no data
// directory behind.
func TestIngestBadConfig(t *testing.T) {
	cases := []struct {
		name, file, arg string
		want            *regexp.Regexp
	}{
		{name: "bad JSON", file: `{"url": "nats://127.0.0.1:1/x",`, want: regexp.MustCompile(`ingest-config`)},
		{name: "unknown key", file: `{"url":"nats://127.0.0.1:1/x","no_such_key":true}`, want: regexp.MustCompile(`no_such_key`)},
		{name: "not a NATS URL", arg: "http://127.0.0.1:1/x", want: regexp.MustCompile(`ingest-config`)},
		{name: "no subject", arg: "nats://127.0.0.1:1", want: regexp.MustCompile(`(?i)subject`)},
		{name: "bad max_deliveries", file: `{"url":"nats://127.0.0.1:1/x","max_deliveries":-3}`, want: regexp.MustCompile(`max_deliveries`)},
		{name: "missing file", arg: "/nonexistent/skiff-ingest.json", want: regexp.MustCompile(`skiff-ingest\.json`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			arg := tc.arg
			if tc.file != "" {
				arg = writeFile(t, "ingest.json", []byte(tc.file))
			}
			n := newNode(t)
			n.args = []string{"-ingest-config", arg}
			wantRefused(t, n, "ingest-config", tc.want)
		})
	}
}

// TestIntegrationsNATSDown: with the NATS server of both -ingest-config
// and -cdc-config unreachable (nothing listening), a node starts, becomes
// ready, acknowledges writes and answers /status, whose cdc section shows
// the backlog growing and whose ingest section is there (issue 15: an
// unreachable NATS server never blocks writes or status).
func TestIntegrationsNATSDown(t *testing.T) {
	down := "nats://" + testport.Addr(t)
	c := newClusterWith(t, 1, withFlags("-ingest-config", down+"/"+ingestSubject, "-cdc-config", down+"/cdc.items"))
	n := c.leader
	wantOK(t, "CREATE TABLE", n.execute(createItems), `{"results":[{}]}`)
	for i := 1; i <= 5; i++ {
		a, ok, err := execIndexed(context.Background(), n.client, n.baseURL(),
			[]any{"INSERT INTO items(id, v, n, f) VALUES(?, 'x', 1, 1.5)", i})
		if !ok || err != nil {
			t.Fatalf("insert %d with NATS down: %v %+v", i, err, a)
		}
	}
	wantOK(t, "/readyz with NATS down", n.get("/readyz"), readyBody)
	waitCDC(t, n, "backlog >= 5", func(d jsonDoc) bool { return d.num("backlog") >= 5 })
	if st := getDoc(t, n, "/status"); jsonKind(st["ingest"]) != "object" {
		t.Errorf("/status ingest = %v, want an object", st["ingest"])
	}
}
