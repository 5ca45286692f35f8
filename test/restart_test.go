package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWriteReadRestart replays rqlite's Test_SingleNode sequence (API.md
// 1.4) byte for byte, stops the node with SIGTERM, restarts it on the same
// data directory and checks that the data is still there, byte for byte.
func TestWriteReadRestart(t *testing.T) {
	n := newNode(t)
	n.start()
	n.waitReady(readyTimeout)
	checkLeaderStatus(t, n)

	// API.md 1.4, from system_test/single_node_test.go::Test_SingleNode.
	wantOK(t, "CREATE TABLE foo", n.execute(`["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"]`),
		`{"results":[{}]}`)
	wantOK(t, "INSERT fiona", n.execute(`["INSERT INTO foo(name) VALUES(\"fiona\")"]`),
		`{"results":[{"last_insert_id":1,"rows_affected":1}]}`)
	wantOK(t, "INSERT INTO bar", n.execute(`["INSERT INTO bar(name) VALUES(\"fiona\")"]`),
		`{"results":[{"error":"no such table: bar"}]}`)
	wantOK(t, "INSERT blah blah", n.execute(`["INSERT blah blah"]`),
		`{"results":[{"error":"near \"blah\": syntax error"}]}`)
	const selectFiona = `{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}`
	wantOK(t, "SELECT * FROM foo", n.query("SELECT * FROM foo"), selectFiona)
	wantOK(t, "DROP TABLE bar", n.execute(`["DROP TABLE bar"]`),
		`{"results":[{"error":"no such table: bar"}]}`)
	// The quirk of API.md 1.4: DDL echoes the connection's last DML
	// counters. Shown on a scratch table, since foo must survive.
	wantOK(t, "CREATE TABLE scratch (echo quirk)", n.execute(`["CREATE TABLE scratch (x)"]`),
		`{"results":[{"last_insert_id":1,"rows_affected":1}]}`)
	wantOK(t, "DROP TABLE scratch (echo quirk)", n.execute(`["DROP TABLE scratch"]`),
		`{"results":[{"last_insert_id":1,"rows_affected":1}]}`)

	n.sigterm()
	n.start()
	n.waitReady(readyTimeout)
	checkLeaderStatus(t, n)

	wantOK(t, "SELECT after restart", n.query("SELECT * FROM foo"), selectFiona)
	wantOK(t, "SELECT level=strong after restart", n.query("SELECT * FROM foo", "level=strong"), selectFiona)
	wantOK(t, "scratch table stays dropped", n.query("SELECT * FROM scratch"),
		`{"results":[{"error":"no such table: scratch"}]}`)
	// After a restart the writer connection is new: sqlite3_changes() and
	// sqlite3_last_insert_rowid() are 0, so a fresh rqlite connection
	// answers DROP TABLE with {} rather than echoing the pre-restart
	// INSERT. An echo here would mean the log was re-applied on restart.
	wantOK(t, "DROP TABLE foo on a fresh connection", n.execute(`["DROP TABLE foo"]`), `{"results":[{}]}`)
	wantOK(t, "foo dropped", n.query("SELECT * FROM foo"), `{"results":[{"error":"no such table: foo"}]}`)
	// And the node still writes after the restart.
	wantOK(t, "CREATE TABLE foo again", n.execute(`["CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)"]`),
		`{"results":[{}]}`)
	wantOK(t, "INSERT declan", n.execute(`["INSERT INTO foo(name) VALUES(\"declan\")"]`),
		`{"results":[{"last_insert_id":1,"rows_affected":1}]}`)
	wantOK(t, "SELECT declan", n.query("SELECT * FROM foo"),
		`{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"declan"]]}]}`)
}

// checkLeaderStatus checks the /status keys rqlite clients read on a ready
// lone node (API.md 2.1): it is node "1", its own leader, and ready.
func checkLeaderStatus(t *testing.T, n *node) {
	t.Helper()
	st, err := fetchStatus(n.client, n.baseURL())
	if err != nil {
		t.Fatalf("/status: %v", err)
	}
	if st.state != "ready" || !st.ready || st.nodeID != "1" || st.leaderID != "1" || st.raftState != "Leader" || st.pid != n.proc.cmd.Process.Pid {
		t.Errorf("/status of a ready lone node: %+v; want ready, node and leader 1, raft state Leader, pid %d", st, n.proc.cmd.Process.Pid)
	}
}

// TestSIGKILLKeepsAcknowledgedWrites checks DESIGN.md's "Nothing
// acknowledged is lost: a 200 on a write means the entry is committed":
// concurrent writers insert distinct rows, the node is SIGKILLed while they
// write, and after a restart every acknowledged row must be there. Three
// kill/restart cycles, so that a restart of a killed node is itself killed.
func TestSIGKILLKeepsAcknowledgedWrites(t *testing.T) {
	n := newNode(t)
	n.start()
	n.waitReady(readyTimeout)
	w := newAckWriters(t, n)
	for cycle := 1; cycle <= 3; cycle++ {
		w.writeThen(cycle, "SIGKILL", n.sigkill)
		n.start()
		n.waitReady(readyTimeout)
		w.verify(cycle, "SIGKILL")
		if t.Failed() {
			return
		}
	}
}

// TestSIGTERMUnderLoad stops the node with SIGTERM while the same writers
// are busy: the shutdown must still be clean (exit status 0, bounded) and,
// as after a SIGKILL, every acknowledged write must be there on restart.
func TestSIGTERMUnderLoad(t *testing.T) {
	n := newNode(t)
	n.start()
	n.waitReady(readyTimeout)
	w := newAckWriters(t, n)
	w.writeThen(1, "SIGTERM", n.sigterm)
	n.start()
	n.waitReady(readyTimeout)
	w.verify(1, "SIGTERM")
}

// ackWriters insert distinct rows into table acks from concurrent
// goroutines and remember which inserts were acknowledged.
type ackWriters struct {
	t         *testing.T
	n         *node
	mu        sync.Mutex
	acked     map[int64]bool // ids whose INSERT answered 200 without error
	attempted map[int64]bool // every id ever sent
}

const (
	ackWriterCount = 8
	// ackWriteTime is how long the writers run before the node is
	// stopped under them.
	ackWriteTime = 2 * time.Second
)

func newAckWriters(t *testing.T, n *node) *ackWriters {
	t.Helper()
	wantOK(t, "CREATE TABLE acks", n.execute(`["CREATE TABLE acks (id INTEGER NOT NULL PRIMARY KEY, writer INTEGER, cycle INTEGER)"]`),
		`{"results":[{}]}`)
	return &ackWriters{t: t, n: n, acked: map[int64]bool{}, attempted: map[int64]bool{}}
}

// writeThen runs the writers for ackWriteTime, calls stopNode while they
// are still sending, lets them hit the stopped node briefly, then stops
// them (before a restart reuses the ports).
func (a *ackWriters) writeThen(cycle int, how string, stopNode func()) {
	t := a.t
	t.Helper()
	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		cycleAck int
	)
	client := newClient(10*time.Second, false)
	defer client.CloseIdleConnections()
	for w := range ackWriterCount {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := int64(0); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				id := int64(cycle)*10_000_000 + int64(w)*100_000 + seq
				a.mu.Lock()
				a.attempted[id] = true
				a.mu.Unlock()
				body := fmt.Sprintf(`[["INSERT INTO acks(id, writer, cycle) VALUES(?, ?, ?)", %d, %d, %d]]`, id, w, cycle)
				r, err := a.n.do(client, http.MethodPost, "/db/execute", "application/json", strings.NewReader(body))
				if err != nil {
					// Expected once the node is down; back off a little
					// so that a dead port is not hammered.
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if r.status == http.StatusOK && insertedOne(r.body) {
					a.mu.Lock()
					a.acked[id] = true
					cycleAck++
					a.mu.Unlock()
				}
			}
		}()
	}
	// Stop the writers even if stopNode fails the test.
	defer func() {
		close(stop)
		wg.Wait()
	}()
	time.Sleep(ackWriteTime)
	stopNode() // mid-stream: the writers are still sending
	time.Sleep(100 * time.Millisecond)
	a.mu.Lock()
	defer a.mu.Unlock()
	if cycleAck == 0 {
		t.Fatalf("cycle %d: no write was acknowledged in %s; the test proves nothing", cycle, ackWriteTime)
	}
	t.Logf("cycle %d: %d writes acknowledged before %s (%d in total)", cycle, cycleAck, how, len(a.acked))
}

// verify checks, on the restarted node, that every acknowledged row is
// present and that no row appeared that nobody sent.
func (a *ackWriters) verify(cycle int, how string) {
	t := a.t
	t.Helper()
	// level=strong goes through the log (API.md 1.8): the read sees
	// everything committed, whatever the local apply state.
	r := a.n.query("SELECT id FROM acks ORDER BY id", "level=strong")
	if r.status != http.StatusOK {
		t.Fatalf("cycle %d: SELECT ids: %s", cycle, r)
	}
	present := parseIDs(t, r.body)
	a.mu.Lock()
	defer a.mu.Unlock()
	var missing, phantom []int64
	for id := range a.acked {
		if !present[id] {
			missing = append(missing, id)
		}
	}
	for id := range present {
		if !a.attempted[id] {
			phantom = append(phantom, id)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	sort.Slice(phantom, func(i, j int) bool { return phantom[i] < phantom[j] })
	if len(missing) > 0 {
		t.Errorf("cycle %d: %d acknowledged rows lost after %s and restart, e.g. %v", cycle, len(missing), how, missing[:min(10, len(missing))])
	}
	if len(phantom) > 0 {
		t.Errorf("cycle %d: %d rows present that no writer sent, e.g. %v", cycle, len(phantom), phantom[:min(10, len(phantom))])
	}
	if len(present) < len(a.acked) {
		t.Errorf("cycle %d: %d rows present, fewer than the %d acknowledged", cycle, len(present), len(a.acked))
	}
	t.Logf("cycle %d: %d rows present, %d acknowledged", cycle, len(present), len(a.acked))
}

// insertedOne reports whether an /db/execute answer says that its single
// statement inserted one row, with no error anywhere.
func insertedOne(body []byte) bool {
	var resp struct {
		Results []struct {
			RowsAffected int64  `json:"rows_affected"`
			Error        string `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return false
	}
	return resp.Error == "" && len(resp.Results) == 1 && resp.Results[0].Error == "" && resp.Results[0].RowsAffected == 1
}

// parseIDs reads the single integer column of a /db/query answer.
func parseIDs(t *testing.T, body []byte) map[int64]bool {
	t.Helper()
	var resp struct {
		Results []struct {
			Values [][]int64 `json:"values"`
			Error  string    `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("SELECT ids: %v: %.300s", err, body)
	}
	if resp.Error != "" || len(resp.Results) != 1 || resp.Results[0].Error != "" {
		t.Fatalf("SELECT ids: %.300s", body)
	}
	ids := make(map[int64]bool, len(resp.Results[0].Values))
	for _, row := range resp.Results[0].Values {
		if len(row) != 1 {
			t.Fatalf("SELECT ids: row %v has %d columns", row, len(row))
		}
		if ids[row[0]] {
			t.Fatalf("SELECT ids: id %d twice", row[0])
		}
		ids[row[0]] = true
	}
	return ids
}

// TestCrashAfterSQLiteCommit kills the node (sm/after-commit=crash) after a
// batch committed in SQLite and before Dragonboat learned it was applied:
// at restart Dragonboat hands the entry over again, and the applied index
// stored in the same SQLite transaction must make the state machine skip
// it. The row the crashed request wrote is there exactly once (DESIGN.md
// "Applied index in the same transaction"; rqlite#2747 is this bug).
func TestCrashAfterSQLiteCommit(t *testing.T) {
	n := newNode(t)
	empty := ""
	n.failpoints = &empty
	n.start()
	n.waitReady(readyTimeout)
	wantOK(t, "create", n.execute(`["CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)"]`), `{"results":[{}]}`)
	wantOK(t, "insert a", n.execute(`["INSERT INTO t(v) VALUES('a')"]`), `{"results":[{"last_insert_id":1,"rows_affected":1}]}`)
	r, err := n.do(n.client, http.MethodPut, "/debug/failpoints/sm/after-commit", "text/plain", strings.NewReader("crash"))
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("set failpoint: %v %v", r, err)
	}
	// No answer: the process dies under the request.
	if r, err := n.do(n.client, http.MethodPost, "/db/execute", "application/json", strings.NewReader(`["INSERT INTO t(v) VALUES('b')"]`)); err == nil {
		t.Fatalf("insert b answered %s; the node should have crashed", r)
	}
	select {
	case <-n.proc.done:
	case <-time.After(killTimeout):
		t.Fatal("no crash")
	}
	n.failpoints = &empty
	n.start()
	n.waitReady(readyTimeout)
	wantOK(t, "rows after the crash", n.query("SELECT id, v FROM t ORDER BY id"),
		`{"results":[{"columns":["id","v"],"types":["integer","text"],"values":[[1,"a"],[2,"b"]]}]}`)
	// And the next write follows on: the sequence was not disturbed.
	wantOK(t, "insert c", n.execute(`["INSERT INTO t(v) VALUES('c')"]`), `{"results":[{"last_insert_id":3,"rows_affected":1}]}`)
}
